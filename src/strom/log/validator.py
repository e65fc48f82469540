"""Every produce-time rule of a partition log, checked in one place before anything is written (Kafka's
LogValidator, with the request-level rules of ProduceRequest.validateRecords in front).

`validate_append` answers with the first rule an append breaks, in this order:

1. for records a client sent with Produce (the request version is given): magic 2 only and exactly one
   batch per partition (INVALID_RECORD), zstd only from Produce v7 (UNSUPPORTED_COMPRESSION_TYPE), and no
   transactional batch (INVALID_TXN_STATE): without a transaction coordinator nothing would ever end the
   transaction, and its open first offset would hold the last stable offset back for good;
2. each batch as received: magic, length, truncation, CRC-32C, codec id, record count and offset deltas
   (the `CorruptRecordError` subclasses of strom.protocol);
3. the topic's `compression.type`, for client records: a batch written with another codec is rebuilt with
   the topic's, its records decoded and checked on the way (INVALID_RECORD); base offset, producer
   id/epoch/sequence, flags and timestamps are kept, so idempotence works as for a batch stored as sent;
4. sizes, of the batches as they will be stored: `max.message.bytes` per batch (MESSAGE_TOO_LARGE) and
   `segment.bytes` for the whole append (RECORD_LIST_TOO_LARGE);
5. on a compacted topic, a key on every record (INVALID_RECORD);
6. under CreateTime, `message.timestamp.after.max.ms` and `.before.max.ms` (INVALID_TIMESTAMP); under
   LogAppendTime every batch is stamped with the broker clock instead.
Producer state (sequences, epochs, transactions) comes after, in the partition, against its own state.

Cost, the reason for one module: the batch headers are walked once and each incoming batch's CRC is
computed once (`walk_batches`); records are decoded only where a rule needs them (recompression, keys on a
compacted topic, the before.max.ms bound), and a rebuilt or stamped batch gets its new CRC computed once.
Offsets are assigned when the validated append is written, by patching a copy of each 61-byte header
outside the CRC; the payload itself is never copied unless it is rebuilt or stamped.
"""

from __future__ import annotations

import dataclasses

from strom.log.config import LogConfig
from strom.log.errors import InvalidTimestampError, RecordBatchTooLargeError, RecordListTooLargeError
from strom.log.producer_state import InvalidTxnStateError
from strom.log.segment import NO_TIMESTAMP, BatchInfo
from strom.protocol.compression import Compression
from strom.protocol.errors import InvalidRecordError, UnsupportedCompressionError, UnsupportedMagicError
from strom.protocol.records import (
    HEADER_SIZE,
    BatchWalk,
    RecordBatch,
    RecordSpan,
    rebuild_batch,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    walk_batches,
)

Buffer = bytes | bytearray | memoryview

FIRST_ZSTD_PRODUCE_VERSION = 7
_LONG_MAX = 2**63 - 1
_LONG_MIN = -(2**63)


@dataclasses.dataclass(slots=True)
class ValidatedAppend:
    """An append that passed every rule: the batches as they will be stored (as received, rebuilt with the
    topic's codec, or stamped with the append time), their total size, how many offsets they take, their
    newest timestamp, and the LogAppendTime stamp (NO_TIMESTAMP under CreateTime). Read-only by convention:
    a frozen dataclass costs four times as much to build, and one is built per append."""

    batches: list[RecordBatch]
    size: int
    offset_count: int
    max_timestamp: int
    append_time: int

    def assign_offsets(self, first_offset: int, leader_epoch: int) -> tuple[list[Buffer], list[BatchInfo]]:
        """The buffers to write, with consecutive offsets from `first_offset`, and each batch's index facts.

        Only the 12 header bytes outside the CRC change, so each batch is written as a patched copy of its
        header followed by its body untouched: the caller's bytes are neither copied nor modified.
        """
        buffers: list[Buffer] = []
        infos = []
        offset = first_offset
        for batch in self.batches:
            view = batch.buffer
            head = bytearray(view[:HEADER_SIZE])
            set_base_offset(head, offset)
            set_partition_leader_epoch(head, leader_epoch)
            buffers.append(head)
            buffers.append(view[HEADER_SIZE:])
            last = offset + batch.last_offset_delta
            infos.append(BatchInfo(batch.size_in_bytes, last, batch.max_timestamp))
            offset = last + 1
        return buffers, infos


def validate_append(
    records: Buffer,
    config: LogConfig,
    now: int,
    *,
    produce_version: int | None = None,
    topic: str = "",
    partition: int = 0,
) -> ValidatedAppend:
    """Check `records` (one or more RecordBatch v2) against every rule above; raise the first one broken.

    `produce_version` is the Produce request version when a client sent the records: the request rules and
    the topic's compression.type apply only then (the broker's own appends, such as committed offsets, are
    stored as built). `topic` and `partition` name the log in error messages. `records` is not modified.
    """
    walk = walk_batches(records)
    if produce_version is not None:
        _check_request(walk, produce_version, len(records))
    batches = walk.checked()
    append_time = now if config.log_append_time else NO_TIMESTAMP
    # The record spans of each batch rebuilt with the topic's codec (None for a batch stored as received).
    rebuilt: list[list[RecordSpan] | None] | None = None
    if produce_version is not None:
        codec = config.target_compression
        if codec is not None:
            batches, rebuilt = _recompress(batches, codec, append_time)

    max_message_bytes = config.max_message_bytes
    size = offset_count = 0
    max_timestamp = _LONG_MIN
    for batch in batches:
        batch_size = batch.size_in_bytes
        if batch_size > max_message_bytes:
            raise RecordBatchTooLargeError(
                f"record batch of {batch_size} bytes exceeds max.message.bytes={max_message_bytes}"
            )
        size += batch_size
        offset_count += batch.last_offset_delta + 1
        max_timestamp = max(max_timestamp, batch.max_timestamp)
    if size > config.segment_bytes:
        raise RecordListTooLargeError(f"append of {size} bytes exceeds segment.bytes={config.segment_bytes}")
    if config.compact:
        _require_keys(batches, rebuilt, topic, partition)
    if append_time == NO_TIMESTAMP:
        _check_timestamps(batches, now, config)
    else:
        # A rebuilt batch was stamped as it was built; any other gets a stamped private copy.
        batches = [
            batch if rebuilt is not None and rebuilt[i] is not None else _stamped(batch, append_time)
            for i, batch in enumerate(batches)
        ]
        max_timestamp = append_time
    return ValidatedAppend(batches, size, offset_count, max_timestamp, append_time)


def _check_request(walk: BatchWalk, api_version: int, length: int) -> None:
    """Kafka's rules for Produce v3+ (ProduceRequest.validateRecords), which come before any batch check,
    and strom's refusal of transactional batches until it has a transaction coordinator."""
    if not length:
        raise InvalidRecordError("the produce request holds no record batch")
    if walk.legacy_magic:
        raise UnsupportedMagicError("produce v3+ accepts only record batches of magic 2")
    if walk.batch_count != 1:
        raise InvalidRecordError(
            f"produce v3+ takes exactly one record batch per partition, got {walk.batch_count}"
        )
    if walk.zstd and api_version < FIRST_ZSTD_PRODUCE_VERSION:
        raise UnsupportedCompressionError(f"zstd batches need produce v7+, got v{api_version}")
    if walk.transactional:
        raise InvalidTxnStateError("transactional produce is not supported yet")


def _recompress(
    batches: list[RecordBatch], codec: Compression, append_time: int
) -> tuple[list[RecordBatch], list[list[RecordSpan] | None]]:
    """`batches` with each one written with another codec rebuilt with `codec` (and stamped with
    `append_time` unless it is NO_TIMESTAMP), and the record spans of each rebuilt batch (None for a batch
    kept as it is), which the key rule reads instead of decoding the batch again."""
    stamp = None if append_time == NO_TIMESTAMP else append_time
    out = []
    spans: list[list[RecordSpan] | None] = []
    for batch in batches:
        if batch.compression is codec:
            out.append(batch)
            spans.append(None)
            continue
        data, batch_spans = batch.record_spans()  # decompressed with the producer's codec; records checked
        out.append(
            RecordBatch(rebuild_batch(batch, data, batch_spans, compression=codec, log_append_time=stamp))
        )
        spans.append(batch_spans)
    return out, spans


def _stamped(batch: RecordBatch, append_time: int) -> RecordBatch:
    """A private copy of `batch` stamped for LogAppendTime (its CRC recomputed once)."""
    copy = bytearray(batch.buffer)
    set_log_append_time(copy, append_time)
    return RecordBatch(copy)


def _require_keys(
    batches: list[RecordBatch], rebuilt: list[list[RecordSpan] | None] | None, topic: str, partition: int
) -> None:
    """Kafka refuses keyless records on compacted topics (INVALID_RECORD); control batches are exempt.
    The records of a batch rebuilt with the topic's codec were already located (`rebuilt`)."""
    for index, batch in enumerate(batches):
        if batch.is_control:
            continue
        batch_spans = rebuilt[index] if rebuilt is not None else None
        if batch_spans is None:
            _, batch_spans = batch.record_spans()
        for span in batch_spans:
            if span.key is None:
                raise InvalidRecordError(
                    f"compacted topic {topic} (partition {partition}) requires a key on every record; "
                    f"the record at offset delta {span.offset_delta} has none"
                )


def _check_timestamps(batches: list[RecordBatch], now: int, config: LogConfig) -> None:
    """Kafka's CreateTime bounds. The batch max timestamp bounds every record from above (header only); the
    lower bound needs each record's timestamp, so records are decoded only when that bound is configured."""
    after, before = config.message_timestamp_after_max_ms, config.message_timestamp_before_max_ms
    for batch in batches:
        if batch.is_control:
            continue
        if batch.max_timestamp - now > after:
            raise InvalidTimestampError(
                f"record timestamp {batch.max_timestamp} is {batch.max_timestamp - now} ms ahead of the "
                f"broker clock; message.timestamp.after.max.ms={after}"
            )
        if before < _LONG_MAX:
            oldest = min(r.timestamp for r in batch.records())
            if now - oldest > before:
                raise InvalidTimestampError(
                    f"record timestamp {oldest} is {now - oldest} ms behind the broker clock; "
                    f"message.timestamp.before.max.ms={before}"
                )
