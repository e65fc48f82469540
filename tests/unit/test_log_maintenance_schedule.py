"""LogManager.maintain keeps Kafka's cadences however often it is called: retention after the initial delay
and then every retention check interval, the cleaner on its own backoff, flush.ms on every call."""

from __future__ import annotations

from pathlib import Path

import pytest

from strom.log.config import LogConfig
from strom.log.log_manager import INITIAL_TASK_DELAY_MS, LogManager
from strom.protocol.records import BatchBuilder
from tests.support.clock import FakeClock

START = 1_700_000_000_000
INTERVAL = 300_000
BACKOFF = 15_000


def batch(n: int, ts: int, tag: int = 0) -> bytes:
    builder = BatchBuilder()
    for i in range(n):
        builder.append(b"key-%d" % i, b"value-%d-%d" % (tag, i), ts)
    return builder.build()


def open_manager(path: Path, clock: FakeClock, **cfg: object) -> LogManager:
    return LogManager(
        path,
        default_config=LogConfig(**cfg),  # type: ignore[arg-type]
        clock=clock,
        retention_check_interval_ms=INTERVAL,
        cleaner_backoff_ms=BACKOFF,
    )


def expired_segments(logs: LogManager, clock: FakeClock, tag: int) -> None:
    """Append segments that are already past retention.ms (1 s) at `clock.now`."""
    part = logs.get_or_create("events", 0)
    for i in range(6):
        part.append(batch(2, clock.now - 10_000, tag * 100 + i))
    part.roll()


def test_retention_waits_for_the_initial_delay_then_for_each_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    logs = open_manager(tmp_path, clock, segment_bytes=400, retention_ms=1_000, file_delete_delay_ms=0)
    part = logs.create("events", 0)
    expired_segments(logs, clock, 0)
    for now in range(START, START + INITIAL_TASK_DELAY_MS, 5_000):  # many calls, none due yet
        logs.maintain(now)
    assert part.log_start_offset == 0
    logs.maintain(START + INITIAL_TASK_DELAY_MS)
    first_check = START + INITIAL_TASK_DELAY_MS
    assert part.log_start_offset == 12

    clock.now = first_check + 1
    expired_segments(logs, clock, 1)
    logs.maintain(first_check + INTERVAL - 1)
    assert part.log_start_offset == 12, "retention ran before log.retention.check.interval.ms elapsed"
    logs.maintain(first_check + INTERVAL)
    assert part.log_start_offset == 24
    logs.close()


def test_a_short_interval_brings_the_first_check_forward(tmp_path: Path) -> None:
    clock = FakeClock()
    config = LogConfig(segment_bytes=400, retention_ms=1_000, file_delete_delay_ms=0)
    logs = LogManager(tmp_path, default_config=config, clock=clock, retention_check_interval_ms=100)
    part = logs.create("events", 0)
    expired_segments(logs, clock, 0)
    logs.maintain(START + 99)
    assert part.log_start_offset == 0
    logs.maintain(START + 100)
    assert part.log_start_offset == 12
    logs.close()


def fill_compacted(logs: LogManager, tag: int) -> None:
    part = logs.get_or_create("table", 0)
    for i in range(20):
        part.append(batch(3, START, tag * 100 + i))  # keys key-0..key-2 rewritten 20 times
    part.roll()


def test_the_cleaner_runs_at_once_and_then_on_its_own_backoff(tmp_path: Path) -> None:
    clock = FakeClock()
    logs = open_manager(tmp_path, clock, cleanup_policy=frozenset({"compact"}), segment_bytes=600)
    fill_compacted(logs, 0)
    part = logs.get("table", 0)
    assert part is not None
    before = part.size_in_bytes
    logs.maintain(START)  # retention is not due, the cleaner is
    cleaned_once = part.size_in_bytes
    assert cleaned_once < before / 3
    logs.maintain(START + 1)  # it cleaned last time, so it looks again at once: nothing left, back off
    fill_compacted(logs, 1)
    dirty = part.size_in_bytes
    assert dirty > cleaned_once
    logs.maintain(START + 1 + BACKOFF - 1)
    assert part.size_in_bytes == dirty, "the cleaner ran before log.cleaner.backoff.ms elapsed"
    logs.maintain(START + 1 + BACKOFF)
    assert part.size_in_bytes < dirty
    logs.close()


def test_flush_ms_is_applied_on_every_call_while_retention_is_not_due(tmp_path: Path) -> None:
    clock = FakeClock()
    logs = open_manager(tmp_path, clock, flush_ms=1_000)
    part = logs.create("events", 0)
    part.append(batch(2, START))
    logs.maintain(START + 999)
    assert part.recovery_point == 0
    logs.maintain(START + 1_000)
    assert part.recovery_point == part.next_offset == 2
    logs.close()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"retention_check_interval_ms": 0}, "retention_check_interval_ms"),
        ({"cleaner_backoff_ms": -1}, "cleaner_backoff_ms"),
    ],
)
def test_bad_intervals_are_refused_naming_the_setting(
    tmp_path: Path, options: dict[str, int], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        LogManager(tmp_path, **options)  # type: ignore[arg-type]
    again = LogManager(tmp_path)  # the refused open left the directory unlocked
    again.close()


def test_a_forced_pass_runs_retention_and_the_cleaner_off_schedule(tmp_path: Path) -> None:
    clock = FakeClock()
    logs = open_manager(tmp_path, clock, segment_bytes=400, retention_ms=1_000, file_delete_delay_ms=0)
    part = logs.create("events", 0)
    expired_segments(logs, clock, 0)
    logs.maintain(START + 1)  # neither due... except the cleaner, which finds no compacted log and backs off
    assert part.log_start_offset == 0
    logs.maintain(START + 2, force=True)
    assert part.log_start_offset == 12
    table = logs.create("table", 0, LogConfig(cleanup_policy=frozenset({"compact"}), segment_bytes=600))
    fill_compacted(logs, 0)
    dirty = table.size_in_bytes
    logs.maintain(START + 3)
    assert table.size_in_bytes == dirty  # backing off
    logs.maintain(START + 4, force=True)
    assert table.size_in_bytes < dirty
    logs.close()
