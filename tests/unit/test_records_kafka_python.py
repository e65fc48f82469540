"""Cross-check RecordBatch v2 against an independent implementation: kafka-python's record layer.

kafka-python is a real client (pinned in dev dependencies); its `DefaultRecordBatchBuilder` writes the
batches it produces to brokers, and its `DefaultRecordBatch` parses what brokers send it. Only the codecs
kafka-python can use without extra packages (none, gzip) are exercised here.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from strom.protocol.records import BatchBuilder, Compression, RecordBatch, walk_batches

records_st = st.lists(
    st.tuples(
        st.one_of(st.none(), st.binary(max_size=100)),
        st.one_of(st.none(), st.binary(max_size=500)),
        st.integers(0, 2**41),
        st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=20)), max_size=2),
    ),
    min_size=1,
    max_size=15,
)


@settings(max_examples=40, deadline=None)
@given(records=records_st, codec=st.sampled_from([Compression.NONE, Compression.GZIP]))
def test_batches_written_by_kafka_python_are_read(records: list, codec: Compression) -> None:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=int(codec),
        is_transactional=False,
        producer_id=33,
        producer_epoch=2,
        base_sequence=7,
        batch_size=1 << 24,
    )
    for offset, (key, value, timestamp, headers) in enumerate(records):
        builder.append(offset, timestamp, key, value, headers)
    raw = bytes(builder.build())
    (batch,) = walk_batches(raw).checked()
    assert batch.compression in (codec, Compression.NONE)  # kafka-python skips codecs that do not shrink
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (33, 2, 7)
    got = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in batch.records()]
    assert got == [(i, t, k, v, list(h)) for i, (k, v, t, h) in enumerate(records)]


@settings(max_examples=40, deadline=None)
@given(records=records_st, codec=st.sampled_from([Compression.NONE, Compression.GZIP]))
def test_batches_built_by_strom_are_read_by_kafka_python(records: list, codec: Compression) -> None:
    builder = BatchBuilder(
        base_offset=500, compression=codec, producer_id=4, producer_epoch=1, base_sequence=0
    )
    for key, value, timestamp, headers in records:
        builder.append(key, value, timestamp, headers)
    raw = builder.build()
    theirs = DefaultRecordBatch(bytearray(raw))
    assert theirs.validate_crc()
    assert theirs.base_offset == 500
    assert theirs.producer_id == 4
    got = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in theirs]
    assert got == [(500 + i, t, k, v, list(h)) for i, (k, v, t, h) in enumerate(records)]
    assert RecordBatch(raw).next_offset == 500 + len(records)


def test_a_gzip_batch_from_kafka_python_decompresses() -> None:
    builder = DefaultRecordBatchBuilder(2, int(Compression.GZIP), False, -1, -1, -1, 1 << 24)
    for offset in range(100):
        builder.append(offset, 1000 + offset, b"key", b"compressible value " * 10, [])
    (batch,) = walk_batches(bytes(builder.build())).checked()
    assert batch.compression is Compression.GZIP
    assert [r.offset for r in batch.records()] == list(range(100))
