"""Timestamp synchronization of a task's inputs (KIP-353), max.task.idle.ms (KIP-695), back-pressure."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from strom.streams import InvalidTimestampError, StreamsBuilder, serdes
from strom.streams.processor.context import TaskId, TaskMetrics
from strom.streams.runtime.partition_group import NEVER_WAIT, PartitionGroup
from strom.streams.task import StreamTask

TABLE = ("users", 0)
STREAM = ("views", 0)


def _group(max_idle_ms: int = 0, max_buffered: int = 1000) -> tuple[PartitionGroup, TaskMetrics]:
    metrics = TaskMetrics()
    return PartitionGroup(TaskId(0, 0), [TABLE, STREAM], max_idle_ms, max_buffered, metrics), metrics


def _add(group: PartitionGroup, tp: tuple[str, int], offset: int, timestamp: int) -> None:
    group.appender(tp)(tp[0], tp[1], offset, b"k", b"v", timestamp, None)


def _lags(**by_topic: int | None) -> object:
    def lag_of(tp: tuple[str, int]) -> int | None:
        return by_topic[tp[0]]

    return lag_of


def _no_lag_needed(tp: tuple[str, int]) -> int | None:
    raise AssertionError(f"lag of {tp} asked although every partition has buffered records")


def _drain(group: PartitionGroup, now_ms: int, lag_of: object) -> list[tuple[str, int]]:
    out = []
    while (record := group.next_record(now_ms, lag_of)) is not None:  # type: ignore[arg-type]
        out.append((record[0], record[2]))
    return out


def test_the_record_with_the_lowest_timestamp_goes_first_whatever_order_the_fetches_came_in() -> None:
    group, metrics = _group()
    for offset, ts in enumerate([10, 20, 30]):
        _add(group, STREAM, offset, ts)
    for offset, ts in enumerate([5, 15, 20]):
        _add(group, TABLE, offset, ts)
    order = []
    while group.buffered > 2:  # while both partitions hold records, no lag is needed
        record = group.next_record(0, _no_lag_needed)
        assert record is not None
        order.append((record[0], record[2]))
    # equal timestamps (20): the earlier partition of the task (the table) first
    assert order == [("users", 0), ("views", 0), ("users", 1), ("users", 2)]
    assert metrics.enforced_processing == 0


@pytest.mark.parametrize("lag", [None, 3])
def test_with_idle_0_a_task_waits_while_an_empty_partition_has_unknown_or_positive_lag(
    lag: int | None,
) -> None:
    group, metrics = _group(max_idle_ms=0)
    _add(group, STREAM, 0, 100)
    assert group.next_record(1_000, _lags(users=lag, views=0)) is None
    assert group.buffered == 1
    _add(group, TABLE, 0, 50)  # the table row arrives with the next poll: it goes first
    assert _drain(group, 1_000, _lags(users=0, views=0)) == [("users", 0), ("views", 0)]
    assert metrics.enforced_processing == 1  # the stream record, once the table partition was empty at lag 0


def test_with_idle_0_a_task_processes_at_once_when_the_empty_partition_has_nothing_on_the_broker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    group, metrics = _group(max_idle_ms=0)
    _add(group, STREAM, 0, 100)
    _add(group, STREAM, 1, 101)
    with caplog.at_level(logging.INFO, logger="strom.streams.runtime.partition_group"):
        assert _drain(group, 1_000, _lags(users=0, views=0)) == [("views", 0), ("views", 1)]
    assert metrics.enforced_processing == 2
    assert [r.getMessage() for r in caplog.records if "out of timestamp order" in r.getMessage()] == [
        "task 0_0: processing although users-0 have no buffered records and nothing more on the broker "
        "(max.task.idle.ms=0); records may be processed out of timestamp order"
    ]  # logged once per stretch of enforced processing, counted per record


def test_with_idle_minus_1_a_task_never_waits_and_nothing_counts_as_enforced() -> None:
    group, metrics = _group(max_idle_ms=NEVER_WAIT)
    _add(group, STREAM, 0, 100)
    assert _drain(group, 1_000, _lags(users=None, views=None)) == [("views", 0)]
    assert metrics.enforced_processing == 0


def test_with_idle_above_0_a_task_waits_that_long_after_the_lag_is_0_then_processes() -> None:
    group, metrics = _group(max_idle_ms=500)
    _add(group, STREAM, 0, 100)
    no_lag = _lags(users=0, views=0)
    assert group.next_record(1_000, no_lag) is None  # the idle deadline starts now: 1_500
    assert group.next_record(1_499, no_lag) is None
    assert group.next_record(1_500, no_lag) is not None
    assert metrics.enforced_processing == 1
    _add(group, STREAM, 1, 101)
    _add(group, TABLE, 0, 90)
    # the table row goes first; then the table partition is empty again and a new wait starts (until 2_100)
    assert _drain(group, 1_600, no_lag) == [("users", 0)]
    assert group.next_record(2_099, no_lag) is None
    assert _drain(group, 2_100, no_lag) == [("views", 1)]
    assert metrics.enforced_processing == 2


def test_lag_on_the_broker_restarts_the_idle_wait() -> None:
    group, _metrics = _group(max_idle_ms=500)
    _add(group, STREAM, 0, 100)
    assert group.next_record(1_000, _lags(users=0, views=0)) is None
    assert group.next_record(1_200, _lags(users=2, views=0)) is None
    assert group.next_record(1_600, _lags(users=0, views=0)) is None  # deadline 2_100, not 1_500
    assert group.next_record(2_100, _lags(users=0, views=0)) is not None


def test_a_partition_over_its_buffer_limit_is_paused_until_it_drains_back() -> None:
    group, _metrics = _group(max_buffered=2)
    for offset in range(3):
        _add(group, STREAM, offset, 100 + offset)
    _add(group, TABLE, 0, 1)
    assert group.to_pause() == [STREAM]
    assert group.to_pause() == []  # already paused
    assert group.to_resume() == []
    assert group.next_record(0, _no_lag_needed) is not None  # the table row
    assert group.next_record(0, _lags(users=0, views=0)) is not None  # views-0: 2 left
    assert group.to_resume() == [STREAM]
    assert group.paused == set()


def _merge_task(
    tmp_path: Path,
    handler: str = "log_and_fail",
) -> tuple[StreamTask, PartitionGroup, list[Any]]:
    """A task merging ``a`` (event time read from the value by an extractor) and ``b`` (record timestamps),
    grouped as the runtime groups it; returns the task, its group and the merged output."""
    builder = StreamsBuilder()
    a = builder.stream("a", serdes.string(), serdes.json(), timestamp_extractor=lambda k, v, ts: v["at"])
    out: list[str] = []
    a.merge(builder.stream("b", serdes.string(), serdes.json())).foreach(lambda k, v: out.append(v["n"]))
    config = {"application.id": "app", "default.deserialization.exception.handler": handler}
    task = StreamTask(TaskId(0, 0), builder.build(), config, tmp_path, _NoSink())
    parts = [("a", 0), ("b", 0)]
    prepare = {tp: task.prepare for tp in parts if task.extracts_timestamp(tp[0])}
    group = PartitionGroup(TaskId(0, 0), parts, 0, 1000, task.metrics, prepare)
    return task, group, out


class _NoSink:
    def send(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the merge topology writes nothing")


def _run(task: StreamTask, group: PartitionGroup) -> None:
    while (record := group.next_record(0, _lags(a=0, b=0))) is not None:  # type: ignore[arg-type]
        task.process(*record)


def test_an_extractor_s_timestamp_orders_the_merge_not_the_raw_record_timestamp(tmp_path: Path) -> None:
    task, group, out = _merge_task(tmp_path)
    for offset, (raw, at) in enumerate([(100, 5), (200, 25)]):  # raw order says: after every b record
        value = json.dumps({"n": f"a{offset}", "at": at}).encode()
        group.appender(("a", 0))("a", 0, offset, b"k", value, raw, None)
    for offset, ts in enumerate([10, 20, 30]):
        group.appender(("b", 0))("b", 0, offset, b"k", json.dumps({"n": f"b{offset}"}).encode(), ts, None)
    _run(task, group)
    assert out == ["a0", "b0", "b1", "a1", "b2"]
    assert task.stream_time == 30
    assert task.commit() == {("a", 0): 2, ("b", 0): 3}


def test_an_undeserialisable_head_goes_to_the_handler_once_and_the_next_record_becomes_the_head(
    tmp_path: Path,
) -> None:
    task, group, out = _merge_task(tmp_path, "log_and_continue")
    group.appender(("a", 0))("a", 0, 0, b"k", b"not json", 1, None)
    group.appender(("a", 0))("a", 0, 1, b"k", b'{"n": "a1", "at": 15}', 1, None)
    group.appender(("b", 0))("b", 0, 0, b"k", b'{"n": "b0"}', 10, None)
    _run(task, group)
    assert out == ["b0", "a1"]
    assert task.metrics.dropped_records == 1
    assert task.commit() == {("a", 0): 2, ("b", 0): 1}


def test_a_negative_extracted_timestamp_fails_when_its_record_becomes_the_head(tmp_path: Path) -> None:
    _, group, _ = _merge_task(tmp_path)
    group.appender(("a", 0))("a", 0, 7, b"k", b'{"n": "a", "at": -1}', 1, None)
    group.appender(("b", 0))("b", 0, 0, b"k", b'{"n": "b0"}', 10, None)
    with pytest.raises(InvalidTimestampError, match="offset 7"):
        group.next_record(0, _no_lag_needed)
