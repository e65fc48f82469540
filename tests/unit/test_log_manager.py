"""LogManager: partitions of a data directory, checkpoints, clean-shutdown marker, maintain()."""

from __future__ import annotations

from pathlib import Path

import pytest

from strom.log.checkpoint import LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT, read_offsets
from strom.log.config import LogConfig
from strom.log.errors import InvalidTopicError, PartitionExistsError
from strom.log.log_manager import (
    CLEAN_SHUTDOWN_FILE,
    INITIAL_TASK_DELAY_MS,
    DataDirLockedError,
    LogManager,
)
from strom.protocol.records import BatchBuilder, iter_batches
from tests.support.clock import FakeClock


def batch(n: int, ts: int, tag: int = 0) -> bytes:
    builder = BatchBuilder()
    for i in range(n):
        builder.append(b"key-%d" % i, b"value-%d-%d" % (tag, i), ts)
    return builder.build()


def manager(path: Path, clock: FakeClock, **cfg: object) -> LogManager:
    return LogManager(
        path,
        default_config=LogConfig(**cfg),  # type: ignore[arg-type]
        clock=clock,
    )


def test_partitions_survive_a_clean_restart_without_recovery(tmp_path: Path):
    clock = FakeClock()
    logs = manager(tmp_path, clock, segment_bytes=500)
    orders = logs.create("orders", 0)
    payments = logs.create("pay.ments_v2", 3)
    for i in range(10):
        orders.append(batch(2, clock.now, i))
    payments.append(batch(1, clock.now))
    logs.close()
    assert (tmp_path / CLEAN_SHUTDOWN_FILE).exists()
    assert read_offsets(tmp_path / RECOVERY_POINT_CHECKPOINT) == {("orders", 0): 20, ("pay.ments_v2", 3): 1}

    again = manager(tmp_path, clock, segment_bytes=500)
    assert not (tmp_path / CLEAN_SHUTDOWN_FILE).exists()
    parts = again.partitions()
    assert sorted(parts) == [("orders", 0), ("pay.ments_v2", 3)]
    assert parts[("orders", 0)].next_offset == 20
    assert parts[("orders", 0)].recovered_segments == 0
    assert parts[("pay.ments_v2", 3)].next_offset == 1
    again.close()


def test_unclean_restart_recovers_only_from_the_recovery_point(tmp_path: Path):
    clock = FakeClock()
    logs = manager(tmp_path, clock, segment_bytes=500)
    part = logs.create("orders", 0)
    for i in range(20):
        part.append(batch(2, clock.now, i))
    assert len(part.segments_snapshot()) > 3
    part.flush()
    part.append(batch(2, clock.now, 99))  # not flushed: beyond the recovery point
    logs.checkpoint()
    # Simulate a crash: no close(), so no clean-shutdown marker; release the directory lock by hand.
    import fcntl
    import os

    fcntl.flock(logs._lock_fd, fcntl.LOCK_UN)
    os.close(logs._lock_fd)
    again = manager(tmp_path, clock, segment_bytes=500)
    recovered = again.get("orders", 0)
    assert recovered is not None
    assert recovered.next_offset == 42
    assert recovered.recovered_segments == 1
    again.close()


def test_a_data_dir_can_be_opened_only_once(tmp_path: Path):
    clock = FakeClock()
    logs = manager(tmp_path, clock)
    with pytest.raises(DataDirLockedError):
        manager(tmp_path, clock)
    logs.close()
    manager(tmp_path, clock).close()


def test_create_refuses_duplicates_and_bad_topic_names(tmp_path: Path):
    logs = manager(tmp_path, FakeClock())
    logs.create("t", 0)
    with pytest.raises(PartitionExistsError):
        logs.create("t", 0)
    for bad in ("", ".", "..", "a/b", "x" * 250, "spaces here"):
        with pytest.raises(InvalidTopicError):
            logs.create(bad, 0)
    logs.close()


def test_delete_removes_the_partition_directory(tmp_path: Path):
    clock = FakeClock()
    logs = manager(tmp_path, clock)
    part = logs.create("gone", 0)
    part.append(batch(3, clock.now))
    assert logs.delete("gone", 0)
    assert not logs.delete("gone", 0)
    assert not any(p.name.startswith("gone-") for p in tmp_path.iterdir())
    logs.close()
    assert "gone" not in (tmp_path / RECOVERY_POINT_CHECKPOINT).read_text()


def test_maintain_applies_time_retention_with_an_injected_clock(tmp_path: Path):
    clock = FakeClock()
    logs = manager(tmp_path, clock, segment_bytes=400, retention_ms=60_000, file_delete_delay_ms=0)
    part = logs.create("events", 0)
    for i in range(12):
        part.append(batch(2, clock.now - 120_000, i))  # two minutes old
    part.append(batch(2, clock.now, 99))  # fresh
    before = len(part.segments_snapshot())
    assert before > 2
    clock.now += INITIAL_TASK_DELAY_MS  # the first retention check; the fresh batch is still within 60 s
    logs.maintain(clock.now)
    segs = part.segments_snapshot()
    assert len(segs) == 1
    assert part.log_start_offset == segs[0].base_offset == 24
    assert read_offsets(tmp_path / LOG_START_OFFSET_CHECKPOINT) == {("events", 0): 24}
    values = [r.value for b in iter_batches(part.read_bytes(24, 1 << 20)) for r in b.records()]
    assert values == [b"value-99-0", b"value-99-1"]
    logs.close()


def test_delete_records_before_is_checkpointed_and_survives_restart(tmp_path: Path):
    clock = FakeClock()
    logs = manager(tmp_path, clock, segment_bytes=400)
    part = logs.create("events", 0)
    for i in range(12):
        part.append(batch(2, clock.now, i))
    assert part.delete_records_before(7) == 7
    logs.maintain(clock.now)
    logs.close()
    again = manager(tmp_path, clock, segment_bytes=400)
    reopened = again.get("events", 0)
    assert reopened is not None
    assert reopened.log_start_offset == 7
    assert reopened.segments_snapshot()[0].base_offset <= 7
    again.close()


def test_maintain_compacts_compacted_partitions(tmp_path: Path):
    clock = FakeClock()
    logs = manager(tmp_path, clock, cleanup_policy=frozenset({"compact"}), segment_bytes=600)
    part = logs.create("table", 0)
    for i in range(20):
        part.append(batch(3, clock.now, i))  # keys key-0..key-2 rewritten 20 times
    part.roll()
    before = part.size_in_bytes
    logs.maintain(clock.now)
    assert part.size_in_bytes < before / 3
    latest: dict[bytes | None, list[bytes | None]] = {}
    offset = part.log_start_offset
    while offset < part.next_offset:  # a read covers one segment; walk them all
        got = list(iter_batches(part.read_bytes(offset, 1 << 22), allow_truncated_tail=True))
        for b in got:
            for r in b.records():
                latest.setdefault(r.key, []).append(r.value)
        offset = got[-1].next_offset
    assert latest == {b"key-%d" % i: [b"value-19-%d" % i] for i in range(3)}
    logs.close()


def test_delete_records_is_durable_at_once(tmp_path: Path):
    clock = FakeClock()
    logs = manager(tmp_path, clock, segment_bytes=400)
    part = logs.create("events", 0)
    for i in range(12):
        part.append(batch(2, clock.now, i))
    part.delete_records_before(9)
    # Crash right after DeleteRecords answered: no maintain(), no close().
    assert read_offsets(tmp_path / LOG_START_OFFSET_CHECKPOINT) == {("events", 0): 9}
    import fcntl
    import os

    fcntl.flock(logs._lock_fd, fcntl.LOCK_UN)
    os.close(logs._lock_fd)
    again = manager(tmp_path, clock, segment_bytes=400)
    reopened = again.get("events", 0)
    assert reopened is not None and reopened.log_start_offset == 9
    again.close()


def test_maintenance_stats_count_what_retention_deleted(tmp_path: Path):
    clock = FakeClock()
    logs = manager(tmp_path, clock, segment_bytes=400, retention_ms=60_000, file_delete_delay_ms=0)
    part = logs.create("events", 0)
    for i in range(12):
        part.append(batch(2, clock.now - 120_000, i))
    part.append(batch(2, clock.now, 99))
    segments = part.segments_snapshot()
    expired = [s for s in segments if s.next_offset <= 24]
    expired_bytes = sum(s.size for s in expired)
    clock.now += INITIAL_TASK_DELAY_MS
    logs.maintain(clock.now)
    stats = logs.maintenance_stats
    assert stats.retention_segments_deleted == len(expired) > 1
    assert stats.retention_bytes_deleted == expired_bytes
    assert part.size_in_bytes == sum(s.size for s in segments) - expired_bytes
    logs.maintain(clock.now, force=True)  # nothing more to delete: the totals stay
    assert stats.retention_segments_deleted == len(expired)
    assert stats.cleaner_passes == 0
    logs.close()


def test_maintenance_stats_count_what_the_cleaner_read_and_wrote(tmp_path: Path):
    clock = FakeClock()
    logs = manager(tmp_path, clock, cleanup_policy=frozenset({"compact"}), segment_bytes=600)
    part = logs.create("table", 0)
    for i in range(20):
        part.append(batch(3, clock.now, i))
    part.roll()
    before = part.size_in_bytes
    logs.maintain(clock.now)
    stats = logs.maintenance_stats
    assert stats.cleaner_passes == 1
    assert stats.cleaner_bytes_read == before  # every segment but the empty active one was recopied
    assert stats.cleaner_bytes_written == part.size_in_bytes < before / 3
    assert stats.last_recopy_ratio == stats.cleaner_bytes_written / stats.cleaner_bytes_read
    assert stats.max_dirty_ratio == 1.0  # nothing was clean before the pass
    assert stats.last_clean_seconds > 0
    assert stats.last_buffer_utilization > 0  # three keys in the map
    assert stats.uncleanable_partitions == 0
    logs.maintain(clock.now)  # looks again at once: nothing dirty is left
    assert stats.cleaner_passes == 1
    assert stats.max_dirty_ratio == 0.0
    logs.close()
