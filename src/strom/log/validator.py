"""Every produce-time rule of a partition log, checked in one place before anything is written (Kafka's
LogValidator, with the request-level rules of ProduceRequest.validateRecords in front).

`validate_append` answers with the first rule an append breaks, in this order:

1. for records a client sent with Produce (the request version is given): magic 2 only and exactly one
   batch per partition (INVALID_RECORD), zstd only from Produce v7 (UNSUPPORTED_COMPRESSION_TYPE), and no
   transactional batch (INVALID_TXN_STATE): without a transaction coordinator nothing would ever end the
   transaction, and its open first offset would hold the last stable offset back for good;
2. each batch as received: magic, length, truncation, CRC-32C, codec id, record count and offset deltas
   (the `CorruptRecordError` subclasses of strom.protocol);
2b. for client records, the records inside each batch, on every topic as Kafka's LogValidator: the block
   is decompressed into a buffer bounded by `max.message.bytes` x MAX_COMPRESSION_RATIO (MESSAGE_TOO_LARGE
   past it, so a decompression bomb stops at the bound); then every record's length, varints,
   key/value/header lengths and offset delta, and the record count (INVALID_RECORD); and under CreateTime
   no record timestamp above the header's maxTimestamp (INVALID_RECORD: the time index trusts that field);
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
computed once (`walk_batches`); a client's records are decompressed once and scanned once (`check_records`,
no allocation per record), and that one pass also answers the key rule and the timestamp bounds; a rebuilt
or stamped batch gets its new CRC computed once.
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
    RecordsCheck,
    RecordSpan,
    TimestampType,
    check_records,
    rebuild_batch,
    scan_spans,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    walk_batches,
)

Buffer = bytes | bytearray | memoryview

FIRST_ZSTD_PRODUCE_VERSION = 7
# A compressed batch within max.message.bytes may hold more than that uncompressed (Kafka stores it); this
# bounds how much more. Real record data compresses 3-15x with any of Kafka's codecs, so 32x leaves room
# for very repetitive data while a decompression bomb (1 GiB from 35 KB of zstd) stops at 32 MiB by default.
MAX_COMPRESSION_RATIO = 32
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
    # What checking a client's records found, per batch (None for the broker's own appends).
    checks: list[RecordsCheck] | None = None
    if produce_version is not None:
        limit = config.max_message_bytes * MAX_COMPRESSION_RATIO
        contents = [_checked_records(batch, limit) for batch in batches]
        checks = [check for _, check in contents]
        codec = config.target_compression
        if codec is not None:
            batches, rebuilt = _recompress(batches, contents, codec, append_time)

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
        _require_keys(batches, rebuilt, checks, topic, partition)
    if append_time == NO_TIMESTAMP:
        _check_timestamps(batches, checks, now, config)
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


def _checked_records(batch: RecordBatch, limit: int) -> tuple[bytes | memoryview, RecordsCheck]:
    """The records block of a client's batch (decompressed into at most `limit` bytes) and what checking
    its records found. An uncompressed block is checked where it lies, without a copy."""
    if batch.compression is Compression.NONE:
        data: bytes | memoryview = batch.buffer[HEADER_SIZE:]
    else:
        data = batch.records_data(limit)
    check = check_records(data, batch.record_count)
    if not batch.is_control and batch.timestamp_type is TimestampType.CREATE_TIME:
        newest = batch.base_timestamp + check.max_timestamp_delta
        if batch.record_count and newest > batch.max_timestamp:
            raise InvalidRecordError(
                f"record batch declares maxTimestamp {batch.max_timestamp} but holds a record stamped "
                f"{newest}; the time index and retention rely on that field"
            )
    return data, check


def _recompress(
    batches: list[RecordBatch],
    contents: list[tuple[bytes | memoryview, RecordsCheck]],
    codec: Compression,
    append_time: int,
) -> tuple[list[RecordBatch], list[list[RecordSpan] | None]]:
    """`batches` with each one written with another codec rebuilt with `codec` (and stamped with
    `append_time` unless it is NO_TIMESTAMP) from its already checked records block (`contents`), and the
    record spans of each rebuilt batch (None for a batch kept as it is)."""
    stamp = None if append_time == NO_TIMESTAMP else append_time
    out = []
    spans: list[list[RecordSpan] | None] = []
    for batch, (block, _) in zip(batches, contents, strict=True):
        if batch.compression is codec:
            out.append(batch)
            spans.append(None)
            continue
        data = bytes(block)
        batch_spans = scan_spans(data, batch.record_count)
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
    batches: list[RecordBatch],
    rebuilt: list[list[RecordSpan] | None] | None,
    checks: list[RecordsCheck] | None,
    topic: str,
    partition: int,
) -> None:
    """Kafka refuses keyless records on compacted topics (INVALID_RECORD); control batches are exempt.
    A client's records were already scanned (`checks`); the broker's own batches are decoded here."""
    for index, batch in enumerate(batches):
        if batch.is_control:
            continue
        if checks is not None:
            keyless = checks[index].first_keyless
        else:
            _, batch_spans = batch.record_spans()
            keyless = next((span.offset_delta for span in batch_spans if span.key is None), -1)
        if keyless >= 0:
            raise InvalidRecordError(
                f"compacted topic {topic} (partition {partition}) requires a key on every record; "
                f"the record at offset delta {keyless} has none"
            )


def _check_timestamps(
    batches: list[RecordBatch], checks: list[RecordsCheck] | None, now: int, config: LogConfig
) -> None:
    """Kafka's CreateTime bounds. The batch max timestamp bounds every record from above (header only; a
    client's records were checked against it); the lower bound needs the oldest record's timestamp, which
    checking a client's records found, and which the broker's own batches are decoded for."""
    after, before = config.message_timestamp_after_max_ms, config.message_timestamp_before_max_ms
    for index, batch in enumerate(batches):
        if batch.is_control:
            continue
        if batch.max_timestamp - now > after:
            raise InvalidTimestampError(
                f"record timestamp {batch.max_timestamp} is {batch.max_timestamp - now} ms ahead of the "
                f"broker clock; message.timestamp.after.max.ms={after}"
            )
        if before < _LONG_MAX:
            if checks is not None:
                oldest = batch.base_timestamp + checks[index].min_timestamp_delta
            else:
                oldest = min(r.timestamp for r in batch.records())
            if now - oldest > before:
                raise InvalidTimestampError(
                    f"record timestamp {oldest} is {now - oldest} ms behind the broker clock; "
                    f"message.timestamp.before.max.ms={before}"
                )
