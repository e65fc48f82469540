"""Behaviour of strom.log.Partition: append, read, roll, lookup by timestamp, reopen, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from strom.log.config import LogConfig
from strom.log.errors import (
    InvalidTimestampError,
    LogClosedError,
    OffsetOutOfRangeError,
    PartitionOfflineError,
    RecordBatchTooLargeError,
    RecordListTooLargeError,
)
from strom.log.partition import Partition
from strom.protocol.error_codes import ErrorCode
from strom.protocol.errors import (
    CrcMismatchError,
    InvalidBatchLengthError,
    InvalidRecordError,
    TruncatedBatchError,
    UnsupportedMagicError,
)
from strom.protocol.records import BatchBuilder, Compression, TimestampType, iter_batches
from tests.support.clock import FakeClock


def batch(
    n: int = 3,
    ts: int = 1_000,
    *,
    key: bytes | None = b"k",
    value_size: int = 20,
    compression: Compression = Compression.NONE,
    tag: int = 0,
) -> bytes:
    builder = BatchBuilder(compression=compression)
    for i in range(n):
        builder.append(key, b"%d-%d:" % (tag, i) + b"v" * value_size, ts + i)
    return builder.build()


def records(data: bytes) -> list[tuple[int, bytes | None]]:
    return [(r.offset, r.value) for b in iter_batches(data, allow_truncated_tail=True) for r in b.records()]


def all_records(part: Partition, start: int = 0) -> list[tuple[int, bytes | None]]:
    out: list[tuple[int, bytes | None]] = []
    offset = max(start, part.log_start_offset)
    while offset < part.next_offset:
        chunk = records(part.read_bytes(offset, 1 << 20))
        chunk = [r for r in chunk if r[0] >= offset]
        if not chunk:
            break
        out.extend(chunk)
        offset = chunk[-1][0] + 1
    return out


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def open_part(path: Path, clock: FakeClock, **cfg: object) -> Partition:
    return Partition.open(path / "orders-0", LogConfig(**cfg), clock=clock)  # type: ignore[arg-type]


def test_append_assigns_consecutive_offsets_and_read_returns_the_same_records(
    tmp_path: Path, clock: FakeClock
):
    part = open_part(tmp_path, clock)
    first = part.append(batch(3, tag=1))
    second = part.append(batch(2, tag=2, compression=Compression.GZIP))
    assert (first.base_offset, first.last_offset) == (0, 2)
    assert (second.base_offset, second.last_offset) == (3, 4)
    assert part.next_offset == 5
    got = all_records(part)
    assert [o for o, _ in got] == [0, 1, 2, 3, 4]
    assert got[3][1] == b"2-0:" + b"v" * 20


def test_append_does_not_modify_the_callers_buffer(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock)
    part.append(batch(1))
    payload = bytearray(batch(2))
    before = bytes(payload)
    part.append(payload)
    assert bytes(payload) == before


def test_read_starts_at_the_batch_holding_the_offset(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock)
    for i in range(5):
        part.append(batch(4, tag=i))
    data = part.read_bytes(9, 1 << 20)
    first = next(iter_batches(data))
    assert first.base_offset == 8 and first.last_offset == 11


def test_read_outside_the_log_raises_offset_out_of_range_and_at_the_end_is_empty(
    tmp_path: Path, clock: FakeClock
):
    part = open_part(tmp_path, clock)
    part.append(batch(3))
    assert part.read(3, 1000).size == 0
    with pytest.raises(OffsetOutOfRangeError, match="outside"):
        part.read(4, 1000)


def test_read_returns_the_first_batch_whole_even_when_larger_than_max_bytes(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock)
    part.append(batch(10, value_size=200))
    part.append(batch(10, value_size=200))
    sl = part.read(0, 10)
    assert sl.position == 0
    only = list(iter_batches(sl.read()))
    assert len(only) == 1 and only[0].size_in_bytes == sl.size
    assert part.read(0, 10, min_one=False).size == 10


def test_read_stops_before_max_offset(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock)
    for i in range(3):
        part.append(batch(2, tag=i))
    got = records(part.read_bytes(0, 1 << 20, max_offset=4))
    assert [o for o, _ in got] == [0, 1, 2, 3]
    assert part.read(4, 1000, max_offset=4).size == 0


def test_slice_is_sendfile_ready(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock)
    part.append(batch(3))
    sl = part.read(0, 1 << 20)
    import os

    assert os.pread(sl.fileno(), sl.size, sl.position) == sl.read()


def test_segments_roll_on_segment_bytes_with_kafka_file_names(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock, segment_bytes=1000)
    for i in range(20):
        part.append(batch(3, tag=i))
    segs = part.segments_snapshot()
    assert len(segs) > 3
    assert all(s.size <= 1000 for s in segs)
    names = sorted(p.name for p in (tmp_path / "orders-0").glob("*.log"))
    assert names[0] == "00000000000000000000.log"
    assert names == [f"{s.base_offset:020d}.log" for s in segs]
    assert [o for o, _ in all_records(part)] == list(range(60))


def test_segment_rolls_when_record_timestamps_span_segment_ms(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock, segment_ms=1000)
    part.append(batch(1, ts=10_000))
    part.append(batch(1, ts=10_900))
    assert len(part.segments_snapshot()) == 1
    part.append(batch(1, ts=11_001))
    assert [s.base_offset for s in part.segments_snapshot()] == [0, 2]


def test_compacted_segment_rolls_within_max_compaction_lag_ms(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock, cleanup_policy=frozenset({"compact"}), max_compaction_lag_ms=500)
    part.append(batch(1, ts=10_000))
    part.append(batch(1, ts=10_400))
    part.append(batch(1, ts=10_501))
    assert [s.base_offset for s in part.segments_snapshot()] == [0, 2]


def test_segment_rolls_when_the_offset_index_is_full(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock, segment_index_bytes=16, index_interval_bytes=0)
    for i in range(6):
        part.append(batch(1, tag=i))
    segs = part.segments_snapshot()
    assert len(segs) >= 2
    assert all(len(s.offset_index) <= 2 for s in segs)


def test_append_larger_than_max_message_bytes_is_refused(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock, max_message_bytes=200)
    with pytest.raises(RecordBatchTooLargeError, match=r"max\.message\.bytes=200"):
        part.append(batch(10, value_size=100))
    assert part.next_offset == 0


def test_append_larger_than_a_segment_is_refused(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock, segment_bytes=300)
    with pytest.raises(RecordListTooLargeError, match=r"segment\.bytes=300") as info:
        part.append(batch(10, value_size=100))
    assert info.value.error_code == ErrorCode.RECORD_LIST_TOO_LARGE
    assert part.next_offset == 0


def _corrupt(data: bytes, pos: int, value: bytes) -> bytes:
    return data[:pos] + value + data[pos + len(value) :]


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (lambda b: _corrupt(b, len(b) - 1, bytes([b[-1] ^ 0xFF])), CrcMismatchError),
        (lambda b: _corrupt(b, 8, (10).to_bytes(4, "big")), InvalidBatchLengthError),
        (lambda b: _corrupt(b, 16, b"\x01"), UnsupportedMagicError),
        (lambda b: b[:-5], TruncatedBatchError),
    ],
    ids=["crc", "length", "magic", "truncated"],
)
def test_bad_batches_raise_specific_errors_and_append_nothing(
    tmp_path: Path, clock: FakeClock, damage, error
):
    part = open_part(tmp_path, clock)
    part.append(batch(2))
    size = part.size_in_bytes
    good = batch(2, tag=9)
    with pytest.raises(error):
        part.append(damage(good))
    with pytest.raises(error):
        part.append(good + damage(good))  # a bad second batch refuses the whole append
    assert part.next_offset == 2 and part.size_in_bytes == size
    part.append(good)
    part.close()
    reopened = Partition.open(tmp_path / "orders-0", LogConfig(), clock=clock)
    assert reopened.truncated_bytes == 0
    assert [o for o, _ in all_records(reopened)] == [0, 1, 2, 3]


def test_create_time_bounds_refuse_records_too_far_from_the_broker_clock(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock, message_timestamp_before_max_ms=86_400_000)
    with pytest.raises(InvalidTimestampError, match=r"after\.max\.ms=3600000") as ahead:
        part.append(batch(2, ts=clock.now + 3_600_001))
    assert ahead.value.error_code == ErrorCode.INVALID_TIMESTAMP
    with pytest.raises(InvalidTimestampError, match=r"before\.max\.ms=86400000"):
        part.append(batch(2, ts=clock.now - 86_400_001))
    assert part.next_offset == 0
    part.append(batch(2, ts=clock.now + 3_600_000 - 1))
    part.append(batch(2, ts=clock.now - 86_400_000))
    assert part.next_offset == 4


def test_keyless_records_on_a_compacted_log_are_refused(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock, cleanup_policy=frozenset({"compact"}))
    with pytest.raises(InvalidRecordError, match="requires a key"):
        part.append(batch(2, key=None))
    part.append(batch(2, key=b"k"))
    assert part.next_offset == 2


def test_log_append_time_stamps_batches_with_the_broker_clock(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock, message_timestamp_type="LogAppendTime")
    result = part.append(batch(3, ts=5))
    assert result.log_append_time == clock.now
    (stored,) = list(iter_batches(part.read_bytes(0, 1 << 20)))
    stored.validate()
    assert stored.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert {r.timestamp for r in stored.records()} == {clock.now}


def test_offsets_for_timestamp_finds_the_first_record_at_or_after(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock, segment_bytes=600, index_interval_bytes=50)
    for i in range(30):
        part.append(batch(2, ts=1000 + 10 * i, tag=i))
    assert part.offsets_for_timestamp(1000) == (0, 1000)
    assert part.offsets_for_timestamp(1001) == (1, 1001)
    assert part.offsets_for_timestamp(1002) == (2, 1010)
    assert part.offsets_for_timestamp(1150) == (30, 1150)
    assert part.offsets_for_timestamp(99_999) is None
    assert part.offsets_for_timestamp(-1) == (60, -1)
    assert part.offsets_for_timestamp(-2) == (0, -1)
    assert part.offsets_for_timestamp(-3) == (59, 1291)


def test_reopen_after_close_keeps_every_record_without_recovery_truncation(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock, segment_bytes=700)
    for i in range(12):
        part.append(batch(3, tag=i))
    before = all_records(part)
    part.close()
    with pytest.raises(LogClosedError):
        part.append(batch(1))
    again = Partition.open(
        tmp_path / "orders-0", LogConfig(segment_bytes=700), clock=clock, clean_shutdown=True
    )
    assert again.recovered_segments == 0
    assert all_records(again) == before
    assert again.append(batch(1)).base_offset == 36


def test_corrupt_index_is_rebuilt_not_trusted(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock, segment_bytes=2000, index_interval_bytes=100)
    for i in range(30):
        part.append(batch(3, tag=i))
    before = all_records(part)
    part.close()
    index = tmp_path / "orders-0" / "00000000000000000000.index"
    raw = bytearray(index.read_bytes())
    assert len(raw) >= 16
    raw[4:8] = (7).to_bytes(4, "big")  # second half of entry 0: a position that is not a batch start
    index.write_bytes(bytes(raw))
    again = Partition.open(
        tmp_path / "orders-0",
        LogConfig(segment_bytes=2000, index_interval_bytes=100),
        clock=clock,
        clean_shutdown=True,
    )
    assert all_records(again) == before
    seg = again.segments_snapshot()[0]
    for i in range(len(seg.offset_index)):
        offset, position = seg.offset_index.entry(i)
        assert seg.find(offset) == (position, seg.find(offset)[1])  # type: ignore[index]


def test_missing_indexes_are_rebuilt(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock, segment_bytes=2000, index_interval_bytes=100)
    for i in range(30):
        part.append(batch(3, tag=i))
    before = all_records(part)
    part.close()
    for f in (tmp_path / "orders-0").glob("*index"):
        f.unlink()
    again = Partition.open(
        tmp_path / "orders-0",
        LogConfig(segment_bytes=2000, index_interval_bytes=100),
        clock=clock,
        clean_shutdown=True,
    )
    assert all_records(again) == before
    assert len(again.segments_snapshot()[0].offset_index) > 0
    assert again.offsets_for_timestamp(1002) == (2, 1002)


def test_leader_epoch_is_stamped_and_checkpointed(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock)
    part.append(batch(2), leader_epoch=0)
    part.append(batch(2), leader_epoch=3)
    stored = list(iter_batches(part.read_bytes(0, 1 << 20)))
    assert [b.partition_leader_epoch for b in stored] == [0, 3]
    assert part.end_offset_for_epoch(0) == (0, 2)
    assert part.end_offset_for_epoch(3) == (3, 4)
    text = (tmp_path / "orders-0" / "leader-epoch-checkpoint").read_text()
    assert text == "0\n2\n0 0\n3 2\n"


def _damage_offset_index_order(raw: bytearray) -> bytearray:
    raw[0:8], raw[8:16] = raw[8:16], raw[0:8]  # first two entries swapped: offsets decrease
    return raw


@pytest.mark.parametrize(
    ("suffix", "damage"),
    [
        (".index", lambda raw: raw[:-3]),  # torn entry
        (".index", _damage_offset_index_order),
        (".index", lambda raw: raw[:-4] + (10**8).to_bytes(4, "big")),  # position beyond the log
        (".timeindex", lambda raw: raw[:-12] + raw[:12]),  # timestamps no longer increase
        (".timeindex", lambda raw: raw[:-5]),
        (".txnindex", lambda raw: bytearray(b"\x00\x07" + bytes(40))),
    ],
    ids=[
        "torn-index",
        "unordered-index",
        "index-past-end",
        "unordered-timeindex",
        "torn-timeindex",
        "bad-txnindex",
    ],
)
def test_every_kind_of_index_damage_leads_to_a_rebuild(tmp_path: Path, clock: FakeClock, suffix, damage):
    config = LogConfig(segment_bytes=2000, index_interval_bytes=100)
    part = Partition.open(tmp_path / "orders-0", config, clock=clock)
    for i in range(30):
        part.append(batch(3, ts=1000 + 3 * i, tag=i))
    before = all_records(part)
    part.close()
    target = tmp_path / "orders-0" / f"00000000000000000000{suffix}"
    raw = bytearray(target.read_bytes()) if target.exists() else bytearray()
    target.write_bytes(bytes(damage(raw)))
    again = Partition.open(tmp_path / "orders-0", config, clock=clock, clean_shutdown=True)
    assert all_records(again) == before
    assert again.offsets_for_timestamp(1031) == (31, 1031)
    assert again.aborted_transactions(0, 100) == []
    seg = again.segments_snapshot()[0]
    assert len(seg.offset_index) > 0
    for i in range(len(seg.offset_index)):
        offset, position = seg.offset_index.entry(i)
        found = seg.find(offset)
        assert found is not None and found[0] == position


def test_short_writes_are_continued(tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch):
    import os

    real_writev = os.writev

    def dribble(fd: int, buffers: list[bytes]) -> int:  # the kernel may write less than asked
        first = memoryview(buffers[0]).cast("B")
        return real_writev(fd, [first[: max(1, len(first) // 3)]])

    part = open_part(tmp_path, clock)
    monkeypatch.setattr(os, "writev", dribble)
    part.append(batch(3, tag=1))
    part.append(batch(2, tag=2))
    monkeypatch.undo()
    assert [o for o, _ in all_records(part)] == [0, 1, 2, 3, 4]


def test_a_failed_write_leaves_the_log_as_it_was(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
):
    import errno
    import os

    real_writev = os.writev
    part = open_part(tmp_path, clock)
    part.append(batch(2, tag=1))
    size = part.size_in_bytes

    def disk_full_midway(fd: int, buffers: list[bytes]) -> int:
        real_writev(fd, [memoryview(buffers[0]).cast("B")[:30]])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", disk_full_midway)
    with pytest.raises(PartitionOfflineError, match="No space") as failed:  # KAFKA_STORAGE_ERROR
        part.append(batch(3, tag=2))
    assert isinstance(failed.value.__cause__, OSError)
    monkeypatch.undo()
    assert part.size_in_bytes == size and part.next_offset == 2
    assert os.path.getsize(part.active_segment.log_path) == size
    # The partition is offline for writes until it is opened again (Kafka's log-dir failure handling).
    with pytest.raises(PartitionOfflineError):
        part.append(batch(1, tag=3))
    with pytest.raises(PartitionOfflineError):
        part.close()
    again = Partition.open(tmp_path / "orders-0", LogConfig(), clock=clock)
    assert again.truncated_bytes == 0
    assert again.append(batch(1, tag=3)).base_offset == 2
    assert [o for o, _ in all_records(again)] == [0, 1, 2]


def test_an_index_entry_that_passed_the_sample_check_but_lies_is_caught_on_use(
    tmp_path: Path, clock: FakeClock
):
    one = batch(3)
    config = LogConfig(index_interval_bytes=len(one))  # an entry every second batch: offsets 8, 14, 20, ...
    part = Partition.open(tmp_path / "orders-0", config, clock=clock)
    for _ in range(200):
        part.append(one)
    part.close()
    index = tmp_path / "orders-0" / "00000000000000000000.index"
    raw = bytearray(index.read_bytes())
    entries = len(raw) // 8
    victim = 7  # the load-time sample checks every entries // 32-th entry, the first and the last
    assert victim % (entries // 32) and 0 < victim < entries - 1
    rel = int.from_bytes(raw[8 * victim : 8 * victim + 4], "big")
    assert rel == 6 * victim + 8
    # The entry now claims offset rel-4, which lies in the batch before the one at its position: trusted,
    # a read at rel-4 would start at the later batch and skip two records.
    raw[8 * victim : 8 * victim + 4] = (rel - 4).to_bytes(4, "big")
    index.write_bytes(bytes(raw))
    again = Partition.open(tmp_path / "orders-0", config, clock=clock, clean_shutdown=True)
    target = rel - 4
    first = next(iter_batches(again.read_bytes(target, 100)))
    assert first.base_offset <= target <= first.last_offset


def test_a_lying_time_index_entry_is_caught_on_use(tmp_path: Path, clock: FakeClock):
    config = LogConfig(index_interval_bytes=1)
    part = Partition.open(tmp_path / "orders-0", config, clock=clock)
    for i in range(100):
        part.append(batch(1, ts=1000 + 10 * i, tag=i))
    part.close()
    timeindex = tmp_path / "orders-0" / "00000000000000000000.timeindex"
    raw = bytearray(timeindex.read_bytes())
    victim = 40
    ts = int.from_bytes(raw[12 * victim : 12 * victim + 8], "big")
    offset = int.from_bytes(raw[12 * victim + 8 : 12 * victim + 12], "big")
    assert (ts, offset) == (1000 + 10 * offset, offset)
    raw[12 * victim : 12 * victim + 8] = (ts - 9).to_bytes(8, "big")  # still increasing, but wrong
    timeindex.write_bytes(bytes(raw))
    again = Partition.open(tmp_path / "orders-0", config, clock=clock, clean_shutdown=True)
    assert again.offsets_for_timestamp(ts - 5) == (offset, ts)


def test_a_zero_or_negative_max_bytes_without_min_one_reads_nothing(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock)
    part.append(batch(3))
    assert part.read(0, 0, min_one=False).size == 0
    assert part.read(0, -5, min_one=False).read() == b""
    assert part.read(0, -5).size == len(batch(3))  # min_one still returns the first batch whole


def test_segment_jitter_shortens_the_time_roll(tmp_path: Path, clock: FakeClock):
    part = open_part(tmp_path, clock, segment_ms=1000, segment_jitter_ms=900)
    jitter = part.active_segment.jitter_ms
    assert 0 <= jitter < 900
    part.append(batch(1, ts=10_000))
    part.append(batch(1, ts=10_000 + 1000 - jitter))
    assert len(part.segments_snapshot()) == 1
    part.append(batch(1, ts=10_000 + 1001 - jitter))
    assert len(part.segments_snapshot()) == 2


def test_indexes_of_a_cleanly_closed_log_are_loaded_on_first_use(tmp_path: Path, clock: FakeClock):
    config = LogConfig(segment_bytes=1000, index_interval_bytes=100)
    part = Partition.open(tmp_path / "orders-0", config, clock=clock)
    for i in range(20):
        part.append(batch(3, tag=i))
    before = all_records(part)
    part.close()
    again = Partition.open(tmp_path / "orders-0", config, clock=clock, clean_shutdown=True)
    segments = again.segments_snapshot()
    assert len(segments) > 3
    assert all(s._oi is None and s._ti is None for s in segments)  # only the files' last entries were read
    assert again.next_offset == 60 and again.offsets_for_timestamp(-3) == (2, 1002)
    again.read(4, 100)
    assert segments[0]._oi is not None and all(s._oi is None for s in segments[1:-1])
    assert all_records(again) == before
