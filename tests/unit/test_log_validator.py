"""strom.log.validator: the order of the produce-time rules, target compression, and its cost (one header
walk and one CRC verification per batch, counted with hooks on the functions the validator calls)."""

from __future__ import annotations

import struct
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cramjam
import pytest
from crc32c import crc32c

import strom.log.validator as validator
import strom.protocol.records as records
from strom.log.config import LogConfig
from strom.log.errors import RecordBatchTooLargeError
from strom.log.partition import Partition
from strom.log.producer_state import InvalidTxnStateError
from strom.log.validator import validate_append
from strom.protocol.error_codes import ErrorCode
from strom.protocol.errors import (
    CrcMismatchError,
    DecompressedTooLargeError,
    InvalidRecordError,
    TruncatedBatchError,
    UnsupportedCompressionError,
    UnsupportedMagicError,
)
from strom.protocol.records import BatchBuilder, Compression, TimestampType, iter_batches
from strom.protocol.varint import write_varint

NOW = 1_700_000_000_000


def batch(
    n: int = 3,
    *,
    key: bytes | None = b"k",
    compression: Compression = Compression.NONE,
    transactional: bool = False,
) -> bytes:
    builder = BatchBuilder(
        compression=compression,
        producer_id=7 if transactional else -1,
        producer_epoch=0 if transactional else -1,
        base_sequence=0 if transactional else -1,
        is_transactional=transactional,
    )
    for i in range(n):
        builder.append(key, b"value-%d" % i * 10, NOW - 10 + i, [("h", b"%d" % i)])
    return builder.build()


def bad_crc(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF])


class Counter:
    """Wraps a function and counts its calls."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.fn(*args, **kwargs)


class Costs:
    """Header walks (`walk_batches` as the validator calls it, and `iter_batches`) and CRC-32C passes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.walks = Counter(validator.walk_batches)
        self.iter_batches = Counter(records.iter_batches)
        self.crc = Counter(records.crc32c)
        monkeypatch.setattr(validator, "walk_batches", self.walks)
        monkeypatch.setattr(records, "iter_batches", self.iter_batches)
        monkeypatch.setattr(records, "crc32c", self.crc)

    def since_reset(self) -> tuple[int, int, int]:
        return self.walks.calls, self.iter_batches.calls, self.crc.calls

    def reset(self) -> None:
        self.walks.calls = self.iter_batches.calls = self.crc.calls = 0


@pytest.fixture
def costs(monkeypatch: pytest.MonkeyPatch) -> Costs:
    return Costs(monkeypatch)


# -- cost --------------------------------------------------------------------------------------------


def test_a_produce_into_a_recompressing_topic_walks_the_headers_once_and_checks_the_crc_once(
    tmp_path: Path, costs: Costs
) -> None:
    part = Partition.open(tmp_path / "t-0", LogConfig(compression_type="gzip"), clock=lambda: NOW)
    plain, gzipped = batch(5), batch(5, compression=Compression.GZIP)
    costs.reset()
    part.append(plain, produce_version=9)
    # One walk over the headers; one CRC verifying the batch as received, one written for the rebuilt batch.
    assert costs.since_reset() == (1, 0, 2)
    costs.reset()
    part.append(gzipped, produce_version=9)  # already gzip: stored as sent
    assert costs.since_reset() == (1, 0, 1)
    stored = list(iter_batches(part.read_bytes(0, 1 << 20)))
    assert [b.compression for b in stored] == [Compression.GZIP] * 2


def test_a_rebuilt_batch_is_stamped_for_log_append_time_as_it_is_built(tmp_path: Path, costs: Costs) -> None:
    config = LogConfig(compression_type="lz4", message_timestamp_type="LogAppendTime")
    part = Partition.open(tmp_path / "t-0", config, clock=lambda: NOW)
    payload = batch(4)
    costs.reset()
    assert part.append(payload, produce_version=9).log_append_time == NOW
    assert costs.since_reset() == (1, 0, 2)
    (stored,) = list(iter_batches(part.read_bytes(0, 1 << 20)))
    stored.validate()
    assert (stored.compression, stored.timestamp_type) == (Compression.LZ4, TimestampType.LOG_APPEND_TIME)
    assert [(r.offset, r.key, r.timestamp) for r in stored.records()] == [(i, b"k", NOW) for i in range(4)]


def test_several_batches_without_compression_walk_once_with_one_crc_each(costs: Costs) -> None:
    payload = batch(2) + batch(3, compression=Compression.SNAPPY) + batch(1)
    costs.reset()
    valid = validate_append(payload, LogConfig(), NOW)
    assert costs.since_reset() == (1, 0, 3)
    assert (valid.size, valid.offset_count) == (len(payload), 6)


# -- request rules come first, then the batches as received ------------------------------------------


@pytest.mark.parametrize(
    ("payload", "version", "error"),
    [
        (b"", 9, InvalidRecordError),
        (bytes(10), 9, InvalidRecordError),  # no header at all: zero batches
        (bad_crc(batch()) + batch(), 9, InvalidRecordError),  # two batches, before the CRC is looked at
        (batch() + batch()[:30], 9, InvalidRecordError),  # a truncated second batch still counts
        (batch()[:40], 9, TruncatedBatchError),  # one truncated batch: its own failure
        (bad_crc(batch(compression=Compression.ZSTD)), 6, UnsupportedCompressionError),
        (bad_crc(batch(compression=Compression.ZSTD)), 7, CrcMismatchError),
        (batch(transactional=True)[:40], 9, InvalidTxnStateError),
        (bad_crc(batch(transactional=True)), 9, InvalidTxnStateError),
        (batch()[:16] + b"\x01" + batch()[17:], 9, UnsupportedMagicError),
    ],
    ids=[
        "empty",
        "no-header",
        "two-batches",
        "truncated-second",
        "truncated",
        "zstd-v6",
        "zstd-v7",
        "truncated-txn",
        "txn",
        "magic-1",
    ],
)
def test_request_rules_answer_before_the_batch_checks(payload: bytes, version: int, error: type) -> None:
    with pytest.raises(error):
        validate_append(payload, LogConfig(), NOW, produce_version=version)


def test_without_a_produce_version_only_the_log_rules_apply() -> None:
    assert validate_append(batch() + batch(), LogConfig(), NOW).offset_count == 6
    assert validate_append(batch(transactional=True), LogConfig(), NOW).offset_count == 3
    with pytest.raises(CrcMismatchError):
        validate_append(bad_crc(batch()) + batch(), LogConfig(), NOW)
    with pytest.raises(TruncatedBatchError):
        validate_append(batch()[:40], LogConfig(), NOW)
    # The broker's own appends are stored as built whatever the topic's compression.type says.
    (kept,) = validate_append(batch(), LogConfig(compression_type="gzip"), NOW).batches
    assert kept.compression is Compression.NONE


# -- the rules after recompression ---------------------------------------------------------------------


def test_sizes_are_of_the_batches_as_stored() -> None:
    gzipped, plain = batch(50, compression=Compression.GZIP), batch(50)
    limit = (len(gzipped) + len(plain)) // 2
    validate_append(gzipped, LogConfig(max_message_bytes=limit), NOW, produce_version=9)
    with pytest.raises(RecordBatchTooLargeError):  # too large once stored uncompressed
        config = LogConfig(max_message_bytes=limit, compression_type="uncompressed")
        validate_append(gzipped, config, NOW, produce_version=9)
    config = LogConfig(max_message_bytes=limit, compression_type="gzip")
    (stored,) = validate_append(plain, config, NOW, produce_version=9).batches  # fits once compressed
    assert stored.size_in_bytes <= limit


def test_keyless_records_are_refused_on_a_compacted_recompressing_topic() -> None:
    config = LogConfig(cleanup_policy=frozenset({"compact"}), compression_type="zstd")
    with pytest.raises(InvalidRecordError, match="requires a key"):
        validate_append(batch(key=None), config, NOW, produce_version=9)
    (stored,) = validate_append(batch(), config, NOW, produce_version=9).batches
    assert stored.compression is Compression.ZSTD


def test_assigning_offsets_patches_header_copies_and_leaves_the_payload_alone() -> None:
    payload = batch(2) + batch(3)
    valid = validate_append(payload, LogConfig(), NOW)
    buffers, infos = valid.assign_offsets(100, leader_epoch=4)
    written = b"".join(bytes(b) for b in buffers)
    assert [(b.base_offset, b.last_offset, b.partition_leader_epoch) for b in iter_batches(written)] == [
        (100, 101, 4),
        (102, 104, 4),
    ]
    assert [info.last_offset for info in infos] == [101, 104]
    assert [b.base_offset for b in iter_batches(payload)] == [0, 0]


def test_a_retried_batch_on_a_log_append_time_topic_answers_with_its_original_append_time(
    tmp_path: Path,
) -> None:
    now = [NOW]
    part = Partition.open(
        tmp_path / "t-0", LogConfig(message_timestamp_type="LogAppendTime"), clock=lambda: now[0]
    )
    builder = BatchBuilder(producer_id=5, producer_epoch=0, base_sequence=0)
    builder.append(b"k", b"v", NOW - 1_000)
    sent = builder.build()
    first = part.append(sent, produce_version=9)
    now[0] += 5_000
    retry = part.append(sent, produce_version=9)
    # The batch is stamped before producer state sees it (as Kafka's LogValidator runs before its producer
    # state checks), so the duplicate answers with the time the original was appended.
    assert (retry.duplicate, retry.base_offset, retry.log_append_time) == (True, 0, NOW)
    assert first.log_append_time == NOW


# -- the records inside each batch, on every topic (Kafka's LogValidator) -----------------------------


def reframed(data: bytes, block: bytes | None = None, *, count: int | None = None) -> bytes:
    """`data`'s header around another records block and/or record count, with length and CRC made
    consistent again: a batch that passes every header check and lies only inside."""
    out = bytearray(data[: records.HEADER_SIZE] + (data[records.HEADER_SIZE :] if block is None else block))
    struct.pack_into(">i", out, records.LENGTH_OFFSET, len(out) - records.LOG_OVERHEAD)
    if count is not None:
        struct.pack_into(">i", out, records.RECORDS_COUNT_OFFSET, count)
        struct.pack_into(">i", out, records.LAST_OFFSET_DELTA_OFFSET, count - 1)
    struct.pack_into(">I", out, records.CRC_OFFSET, crc32c(bytes(out[records.ATTRIBUTES_OFFSET :])))
    return bytes(out)


def records_block(data: bytes) -> bytes:
    return data[records.HEADER_SIZE :]


def one_record(offset_delta: int = 0, timestamp_delta: int = 0) -> bytes:
    builder = BatchBuilder()
    builder.append(b"k", b"v", NOW, offset_delta=offset_delta)
    built = bytearray(records_block(builder.build()))
    built[2] = write_varint(timestamp_delta)[0]  # length, attributes, then the timestamp delta
    return bytes(built)


LYING_BATCHES = {
    "count-above-records": reframed(batch(3), count=4),
    "count-below-records": reframed(batch(3), count=2),
    "garbage-records": reframed(batch(3), b"\xff" * 40),
    "record-length-past-block": reframed(batch(1), b"\x7e" + records_block(batch(1))[1:]),
    "overlong-varint": reframed(batch(1), b"\x80" * 11 + b"\x00"),
    "offset-deltas-repeat": reframed(batch(1), one_record() + one_record(), count=2),
    "record-after-max-timestamp": reframed(batch(1), one_record(timestamp_delta=20)),
    "lz4-garbage": reframed(batch(3, compression=Compression.LZ4), b"\x04\x22\x4d\x18" + b"\xab" * 64),
    "zstd-garbage": reframed(batch(3, compression=Compression.ZSTD), b"\x28\xb5\x2f\xfd" + b"\xab" * 64),
    "snappy-garbage": reframed(batch(3, compression=Compression.SNAPPY), b"\xff" * 64),
    "gzip-count-lies": reframed(batch(3, compression=Compression.GZIP), count=5),
}


@pytest.mark.parametrize("payload", LYING_BATCHES.values(), ids=LYING_BATCHES.keys())
def test_a_batch_whose_records_lie_is_refused_with_invalid_record_and_nothing_is_stored(
    tmp_path: Path, payload: bytes
) -> None:
    iter_batches(payload).__next__().validate()  # header and CRC are consistent: only the records lie
    part = Partition.open(tmp_path / "t-0", LogConfig(), clock=lambda: NOW)
    with pytest.raises(InvalidRecordError) as refused:
        part.append(payload, produce_version=9)
    assert refused.value.error_code is ErrorCode.INVALID_RECORD
    assert part.next_offset == 0
    assert part.read_bytes(0, 1 << 20) == b""


def test_a_batch_with_a_bad_crc_answers_corrupt_message() -> None:
    with pytest.raises(CrcMismatchError) as refused:
        validate_append(bad_crc(batch()), LogConfig(), NOW, produce_version=9)
    assert refused.value.error_code is ErrorCode.CORRUPT_MESSAGE


def test_a_compressed_batch_is_checked_once_decompressed_and_stored_as_sent(
    tmp_path: Path, costs: Costs
) -> None:
    part = Partition.open(tmp_path / "t-0", LogConfig(), clock=lambda: NOW)
    lz4 = batch(5, compression=Compression.LZ4)
    costs.reset()
    part.append(lz4, produce_version=9)
    assert costs.since_reset() == (1, 0, 1)  # checking the records costs no extra walk and no CRC
    (stored,) = iter_batches(part.read_bytes(0, 1 << 20))
    assert stored.compression is Compression.LZ4


def zstd_bomb(size: int) -> bytes:
    """A zstd frame of `size` zero bytes, compressed chunk by chunk so building it stays small."""
    compressor = cramjam.zstd.Compressor()
    chunk = bytes(64 << 20)
    for _ in range(size // len(chunk)):
        compressor.compress(chunk)
    return bytes(compressor.finish())


def test_a_decompression_bomb_is_refused_at_the_bound_without_decompressing_it_all(tmp_path: Path) -> None:
    frame = zstd_bomb(1152 << 20)  # 1.1 GiB of zeros in about 35 KB
    assert len(frame) < 40_000
    payload = reframed(batch(1, compression=Compression.ZSTD), frame)
    part = Partition.open(tmp_path / "t-0", LogConfig(), clock=lambda: NOW)
    tracemalloc.start()
    started = time.thread_time()
    try:
        with pytest.raises(DecompressedTooLargeError) as refused:
            part.append(payload, produce_version=9)
        spent = time.thread_time() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.error_code is ErrorCode.MESSAGE_TOO_LARGE
    bound = LogConfig().max_message_bytes * validator.MAX_COMPRESSION_RATIO
    assert peak < bound + (8 << 20)  # the bounded buffer, not the gigabyte
    assert spent < 0.1  # no event-loop stall: the output stops at the bound
    assert part.next_offset == 0


def test_a_compressed_batch_larger_than_max_message_bytes_uncompressed_but_within_the_ratio_is_stored(
    tmp_path: Path,
) -> None:
    builder = BatchBuilder(compression=Compression.ZSTD)
    builder.append(b"k", bytes(4 << 20), NOW)  # 4 MiB of zeros: a few hundred bytes compressed
    part = Partition.open(tmp_path / "t-0", LogConfig(), clock=lambda: NOW)
    assert part.append(builder.build(), produce_version=9).base_offset == 0
    with pytest.raises(DecompressedTooLargeError):
        validate_append(builder.build(), LogConfig(max_message_bytes=100_000), NOW, produce_version=9)
