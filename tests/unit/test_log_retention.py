"""Retention (retention.ms, retention.bytes, log start offset), delayed deletion, flush policy, configs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from strom.log.config import InvalidConfigError, LogConfig
from strom.log.partition import Partition
from strom.log.retention import SegmentStats, deletable_count
from strom.protocol.compression import Compression
from strom.protocol.records import BatchBuilder, iter_batches
from tests.support.clock import FakeClock


def batch(ts: int, tag: int = 0) -> bytes:
    builder = BatchBuilder()
    for i in range(4):
        builder.append(b"k", b"%d-%d" % (tag, i) + b"." * 80, ts)
    return builder.build()


def filled(tmp_path: Path, clock: FakeClock, batches: int, ts: int, **cfg: object) -> Partition:
    part = Partition.open(tmp_path / "ret-0", LogConfig(segment_bytes=1000, **cfg), clock=clock)  # type: ignore[arg-type]
    for i in range(batches):
        part.append(batch(ts, i))
    return part


def test_retention_bytes_deletes_whole_oldest_segments_and_never_the_active_one(tmp_path: Path):
    clock = FakeClock()
    part = filled(tmp_path, clock, 30, clock.now, retention_bytes=2500, file_delete_delay_ms=0)
    sizes_before = [s.size for s in part.segments_snapshot()]
    part.apply_retention(clock.now)
    segs = part.segments_snapshot()
    assert part.size_in_bytes >= 2500
    assert part.size_in_bytes - segs[0].size < 2500  # deleting one more would go below retention.bytes
    assert len(segs) < len(sizes_before) and segs[-1] is part.active_segment
    assert part.log_start_offset == segs[0].base_offset
    assert sum(sizes_before) - part.size_in_bytes == sum(sizes_before[: len(sizes_before) - len(segs)])


def test_retention_ms_uses_record_timestamps_not_file_times(tmp_path: Path):
    clock = FakeClock()
    part = filled(tmp_path, clock, 20, clock.now - 10_000, retention_ms=60_000, file_delete_delay_ms=0)
    assert part.apply_retention(clock.now) == 0  # records are 10 s old
    clock.now += 50_001
    deleted = part.apply_retention(clock.now)
    assert deleted > 0
    # Everything expired: the partition rolled first, so the old active segment could go too.
    assert part.size_in_bytes == 0 and part.log_start_offset == part.next_offset == 80
    assert part.append(batch(clock.now)).base_offset == 80


def test_retention_ms_minus_one_keeps_everything(tmp_path: Path):
    clock = FakeClock()
    part = filled(tmp_path, clock, 20, 0, retention_ms=-1)
    assert part.apply_retention(clock.now) == 0


def test_compact_only_policy_ignores_time_and_size_retention(tmp_path: Path):
    clock = FakeClock()
    part = filled(
        tmp_path, clock, 20, 0, retention_ms=1, retention_bytes=1, cleanup_policy=frozenset({"compact"})
    )
    assert part.apply_retention(clock.now) == 0
    assert part.delete_records_before(30) == 30  # DeleteRecords works on any policy
    assert part.segments_snapshot()[0].base_offset > 0


def test_deleted_segments_stay_readable_until_file_delete_delay_ms(tmp_path: Path):
    clock = FakeClock()
    part = filled(tmp_path, clock, 20, clock.now, file_delete_delay_ms=60_000)
    in_flight = part.read(0, 10_000)  # a Fetch handed this slice to the network layer
    part.delete_records_before(40)
    first_log = tmp_path / "ret-0" / "00000000000000000000.log"
    assert not first_log.exists() and first_log.with_name(first_log.name + ".deleted").exists()
    assert next(iter_batches(in_flight.read())).base_offset == 0  # still readable
    part.maintain(clock.now + 59_999)
    assert first_log.with_name(first_log.name + ".deleted").exists()
    part.maintain(clock.now + 60_000)
    assert not list((tmp_path / "ret-0").glob("*.deleted"))


def test_flush_messages_advances_the_recovery_point(tmp_path: Path):
    clock = FakeClock()
    part = filled(tmp_path, clock, 0, 0, flush_messages=8)
    part.append(batch(1))
    assert part.recovery_point == 0
    part.append(batch(1))
    assert part.recovery_point == 8


def test_flush_ms_is_applied_by_maintain(tmp_path: Path):
    clock = FakeClock()
    part = filled(tmp_path, clock, 0, 0, flush_ms=1000)
    part.append(batch(clock.now))
    part.maintain(clock.now + 999)
    assert part.recovery_point == 0
    part.maintain(clock.now + 1000)
    assert part.recovery_point == 4


def test_live_config_update_changes_rolling(tmp_path: Path):
    clock = FakeClock()
    part = filled(tmp_path, clock, 2, clock.now)
    assert len(part.segments_snapshot()) == 1
    part.update_config(LogConfig.from_properties({"segment.bytes": "500"}, base=part.config))
    part.append(batch(clock.now))
    part.append(batch(clock.now))
    assert len(part.segments_snapshot()) == 3


def test_retention_rules_pick_the_longest_prefix():
    stats = [
        SegmentStats(0, 100, 10),
        SegmentStats(10, 100, 20),
        SegmentStats(20, 100, 90),
        SegmentStats(30, 0, -1),
    ]
    config = LogConfig(retention_ms=50, retention_bytes=150)
    assert deletable_count(stats, config, 100, 0, 30) == (2, "retention.ms")
    assert deletable_count(stats, LogConfig(retention_bytes=150), 100, 0, 30) == (1, "retention.bytes")
    assert deletable_count(stats, LogConfig(retention_ms=-1), 100, 25, 30) == (2, "log start offset")
    assert deletable_count(stats, LogConfig(retention_ms=0), 10**6, 0, 30)[0] == 3  # empty last one stays


def test_configs_parse_kafka_properties_and_refuse_bad_values():
    config = LogConfig.from_properties(
        {"cleanup.policy": "compact,delete", "segment.bytes": "1048576", "min.cleanable.dirty.ratio": "0.1"}
    )
    assert config.compact and config.delete and config.segment_bytes == 1048576
    assert LogConfig.from_properties(config.to_properties()) == config
    assert LogConfig.from_properties({"compression.gzip.level": "9"}) == LogConfig()  # accepted, not acted on
    assert LogConfig.from_properties({"compression.type": "zstd"}).target_compression is Compression.ZSTD
    assert LogConfig().target_compression is None  # `producer`: batches are stored as sent
    with pytest.raises(InvalidConfigError, match=re.escape("segment.bytes='abc' is not a number")):
        LogConfig.from_properties({"segment.bytes": "abc"})
    with pytest.raises(InvalidConfigError, match=re.escape("segment.bytes=1 is out of range")):
        LogConfig.from_properties({"segment.bytes": "1"})
    with pytest.raises(InvalidConfigError, match=re.escape("cleanup.policy")):
        LogConfig.from_properties({"cleanup.policy": "forever"})
    with pytest.raises(InvalidConfigError, match=re.escape("unknown topic config 'segment.size'")):
        LogConfig.from_properties({"segment.size": "5"})
    with pytest.raises(InvalidConfigError, match=re.escape("message.timestamp.type")):
        LogConfig.from_properties({"message.timestamp.type": "WallClock"})
    with pytest.raises(InvalidConfigError, match=re.escape("compression.type='brotli' must be one of")):
        LogConfig.from_properties({"compression.type": "brotli"})
