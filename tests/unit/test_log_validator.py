"""strom.log.validator: the order of the produce-time rules, target compression, and its cost (one header
walk and one CRC verification per batch, counted with hooks on the functions the validator calls)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import strom.log.validator as validator
import strom.protocol.records as records
from strom.log.config import LogConfig
from strom.log.errors import RecordBatchTooLargeError
from strom.log.partition import Partition
from strom.log.producer_state import InvalidTxnStateError
from strom.log.validator import validate_append
from strom.protocol.errors import (
    CrcMismatchError,
    InvalidRecordError,
    TruncatedBatchError,
    UnsupportedCompressionError,
    UnsupportedMagicError,
)
from strom.protocol.records import BatchBuilder, Compression, TimestampType, iter_batches

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
