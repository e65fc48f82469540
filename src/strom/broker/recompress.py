"""Topic `compression.type`: rewrite produced batches with the topic's codec before they are appended.

Kafka's rule: `producer` (the default) keeps whatever codec the producer chose; `uncompressed`, `gzip`,
`snappy`, `lz4` or `zstd` make the broker store every batch with that codec, recompressing a batch written
with another one. Only the records block changes: base offset, producer id/epoch/sequence, flags and
timestamps are kept, so idempotence and offsets work as for a batch stored as sent.

A batch is validated in full (CRC-32C over the bytes as received, then every record decoded) before it is
rewritten: the fresh CRC of the rewritten batch must never hide corruption in what the client sent.
"""

from __future__ import annotations

from collections.abc import Mapping

from strom.broker.config import BrokerConfig
from strom.protocol.compression import Compression
from strom.protocol.records import RecordBatch, rebuild_batch, validate_batches

PRODUCER = "producer"
# Kafka's compression.type values besides `producer`; `uncompressed` is the codec called `none` on the wire.
CODECS: dict[str, Compression] = {
    "uncompressed": Compression.NONE,
    "gzip": Compression.GZIP,
    "snappy": Compression.SNAPPY,
    "lz4": Compression.LZ4,
    "zstd": Compression.ZSTD,
}
_ATTRIBUTES_POS = 21
_CODEC_MASK = 0x07


def target_codec(config: BrokerConfig, overrides: Mapping[str, str]) -> Compression | None:
    """The codec a topic stores its batches with, or None when the producer's codec is kept."""
    name = overrides.get("compression.type") or config.raw("compression.type") or PRODUCER
    return CODECS.get(name)


def recompress(records: bytes, codec: Compression) -> bytes:
    """`records` with every batch stored with `codec`; batches already using it are kept as they are.

    Raises the CorruptRecordError subclass that names what is wrong with a batch (its `error_code` is the
    Kafka error to answer with).
    """
    batches = validate_batches(records)
    if all(batch.compression is codec for batch in batches):
        return records
    out = []
    for batch in batches:
        if batch.compression is codec:
            out.append(bytes(batch.buffer))
            continue
        data, spans = batch.record_spans()  # decompressed with the producer's codec; records checked
        header = bytearray(batch.buffer)
        attributes = int.from_bytes(header[_ATTRIBUTES_POS : _ATTRIBUTES_POS + 2], "big", signed=True)
        attributes = (attributes & ~_CODEC_MASK) | int(codec)
        header[_ATTRIBUTES_POS : _ATTRIBUTES_POS + 2] = attributes.to_bytes(2, "big", signed=True)
        # rebuild_batch takes the header fields (now naming the target codec) from the batch and the records
        # from `data`/`spans`, compresses them with the header's codec and computes the new CRC.
        out.append(rebuild_batch(RecordBatch(header), data, spans))
    return b"".join(out)
