"""StreamTask: the runtime contract (process, commit offsets, changelogs, restore, wipe, bad input)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from strom.streams import (
    DeserializationError,
    InvalidTimestampError,
    Materialized,
    ProcessingError,
    StreamsBuilder,
    StreamsError,
    TimeWindows,
    serdes,
)
from strom.streams.processor.context import TaskId
from strom.streams.state.cache import RecordCacheBudget
from strom.streams.task import GlobalStateTask, StreamTask
from strom.streams.testing import TopologyTestDriver
from strom.streams.topology import Topology

S = serdes.string()


class Collector:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, int, int | None, Any]] = []

    def send(self, topic: str, key: bytes | None, value: bytes | None, timestamp_ms: int,
             partition: int | None = None, headers: Any = None) -> None:  # fmt: skip
        self.sent.append((topic, key, value, timestamp_ms, partition, headers))

    def to(self, topic: str) -> list[tuple[bytes | None, bytes | None, int, int | None]]:
        return [(k, v, ts, p) for t, k, v, ts, p, _h in self.sent if t == topic]


def _count_topology() -> Topology:
    builder = StreamsBuilder()
    builder.stream("in", S, S).group_by_key().count(Materialized("counts")).to_stream().to(
        "out", S, serdes.long()
    )
    return builder.build()


def _windowed_topology() -> Topology:
    builder = StreamsBuilder()
    builder.stream("in", S, S).group_by_key().windowed_by(TimeWindows.of_size_and_grace(60_000, 0)).count(
        Materialized("win")
    )
    return builder.build()


def _config(backend: str = "in_memory", **extra: Any) -> dict[str, Any]:
    return {"application.id": "app", "default.dsl.store": backend, **extra}


def test_commit_flushes_cache_to_changelog_and_downstream_and_returns_next_offsets(tmp_path: Path) -> None:
    collector = Collector()
    task = StreamTask(
        TaskId(0, 3), _count_topology(), _config(), tmp_path, collector, RecordCacheBudget(1 << 20)
    )
    task.process("in", 3, 40, b"a", b"x", 1000)
    task.process("in", 3, 41, b"a", b"y", 1001)
    task.process("in", 3, 42, b"b", b"z", 999)
    assert collector.sent == []  # cached until commit
    assert task.commit() == {("in", 3): 43}
    one, two = struct.pack(">q", 1), struct.pack(">q", 2)
    assert collector.to("app-counts-changelog") == [(b"a", two, 1001, 3), (b"b", one, 999, 3)]
    assert collector.to("out") == [(b"a", two, 1001, None), (b"b", one, 999, None)]
    assert task.changelog_partitions() == {"counts": ("app-counts-changelog", 3)}
    assert task.stream_time == 1001
    assert task.metrics.processed == 3


def test_changelog_restore_rebuilds_the_same_state_in_a_new_task(tmp_path: Path) -> None:
    collector = Collector()
    topology = _windowed_topology()
    first = StreamTask(TaskId(0, 0), topology, _config(), tmp_path / "a", collector, RecordCacheBudget(0))
    for i, key in enumerate([b"a", b"b", b"a", b"c", b"a"]):
        first.process("in", 0, i, key, b"v", 60_000 * (i // 2) + 5)
    first.commit()
    changelog = [(k, v, ts) for k, v, ts, _p in collector.to("app-win-changelog")]
    # Kafka's window changelog key: key || 8-byte window start || 4-byte sequence number
    assert changelog[0] == (b"a" + struct.pack(">q", 0) + b"\0\0\0\0", struct.pack(">q", 1), 5)
    second = StreamTask(TaskId(0, 0), topology, _config(), tmp_path / "b", Collector(), RecordCacheBudget(0))
    assert second.restore("win", changelog) == 5
    restored, original = second.stores["win"], first.stores["win"]
    assert list(restored.all()) == list(original.all())
    assert restored.get_with_timestamp("a", 120_000) == (1, 120_005)


@pytest.mark.parametrize("backend", ["lsm", "rocksdict"])
def test_persistent_store_keeps_committed_state_across_task_rebuilds(tmp_path: Path, backend: str) -> None:
    pytest.importorskip("rocksdict") if backend == "rocksdict" else None
    topology = _count_topology()
    task = StreamTask(TaskId(0, 0), topology, _config(backend), tmp_path, Collector())
    for i in range(50):
        task.process("in", 0, i, f"k{i % 5}".encode(), b"v", i)
    task.commit()
    assert task.persistent_stores() == {"counts"}
    task.close()
    again = StreamTask(TaskId(0, 0), topology, _config(backend), tmp_path, Collector())
    assert dict(again.stores["counts"].all()) == {f"k{i}": 10 for i in range(5)}
    again.wipe_store("counts")
    assert list(again.stores["counts"].all()) == []
    again.process("in", 0, 50, b"k0", b"v", 50)
    again.commit()
    assert again.stores["counts"].get("k0") == 1
    again.close()


@pytest.mark.parametrize("backend", ["lsm", "rocksdict"])
def test_persistent_window_store_survives_reopen_and_expires_old_segments(
    tmp_path: Path, backend: str
) -> None:
    pytest.importorskip("rocksdict") if backend == "rocksdict" else None
    topology = _windowed_topology()
    task = StreamTask(TaskId(0, 0), topology, _config(backend), tmp_path, Collector(), RecordCacheBudget(0))
    task.process("in", 0, 0, b"a", b"v", 10)
    task.process("in", 0, 1, b"a", b"v", 20)
    task.commit()
    task.close()
    again = StreamTask(TaskId(0, 0), topology, _config(backend), tmp_path, Collector(), RecordCacheBudget(0))
    store = again.stores["win"]
    assert store.get("a", 0) == 2
    again.process("in", 0, 2, b"a", b"v", 10 * 60_000)  # far beyond retention (60 s): old windows expire
    assert store.get("a", 0) is None
    assert store.get("a", 600_000) == 1
    again.close()


def test_undeserialisable_record_stops_the_task_naming_topic_partition_offset(tmp_path: Path) -> None:
    builder = StreamsBuilder()
    builder.stream("in", S, serdes.long()).to("out", S, serdes.long())
    task = StreamTask(TaskId(0, 2), builder.build(), _config(), tmp_path, Collector())
    with pytest.raises(DeserializationError, match=r"topic 'in' partition 2 offset 17.*long.*expected 8"):
        task.process("in", 2, 17, b"k", b"abc", 5)


def test_log_and_continue_skips_and_counts_the_bad_record(tmp_path: Path) -> None:
    builder = StreamsBuilder()
    builder.stream("in", S, serdes.long()).to("out", S, serdes.long())
    collector = Collector()
    config = _config(**{"default.deserialization.exception.handler": "log_and_continue"})
    task = StreamTask(TaskId(0, 0), builder.build(), config, tmp_path, collector)
    task.process("in", 0, 0, b"k", b"abc", 5)
    task.process("in", 0, 1, b"k", struct.pack(">q", 9), 6)
    assert collector.to("out") == [(b"k", struct.pack(">q", 9), 6, None)]
    assert task.metrics.dropped_records == 1
    assert task.commit() == {("in", 0): 2}


def test_dead_letter_topic_receives_the_raw_record_with_error_headers(tmp_path: Path) -> None:
    builder = StreamsBuilder()
    builder.stream("in", S, serdes.json()).to("out", S, serdes.json())
    collector = Collector()
    config = _config(**{"errors.deadletterqueue.topic.name": "dlq"})
    task = StreamTask(TaskId(0, 1), builder.build(), config, tmp_path, collector)
    task.process("in", 1, 7, b"k", b"{not json", 5, [("trace", b"1")])
    [(topic, key, value, ts, partition, headers)] = collector.sent
    assert (topic, key, value, ts, partition) == ("dlq", b"k", b"{not json", 5, None)
    names = dict(headers)
    assert names["trace"] == b"1"
    assert names["__streams.errors.topic"] == b"in"
    assert names["__streams.errors.partition"] == b"1"
    assert names["__streams.errors.offset"] == b"7"
    assert b"invalid JSON" in names["__streams.errors.message"]
    assert task.metrics.dropped_records == 1


def test_negative_timestamp_is_rejected(tmp_path: Path) -> None:
    builder = StreamsBuilder()
    builder.stream("in").to("out")
    task = StreamTask(TaskId(0, 0), builder.build(), _config(), tmp_path, Collector())
    with pytest.raises(InvalidTimestampError, match="offset 3 has invalid timestamp -1"):
        task.process("in", 0, 3, b"k", b"v", -1)


def test_driver_surfaces_the_default_handler_error() -> None:
    builder = StreamsBuilder()
    builder.stream("in", S, serdes.integer()).to("out")
    with TopologyTestDriver(builder.build()) as driver, pytest.raises(DeserializationError, match="offset 0"):
        driver.pipe_raw("in", b"k", b"\x01", 1)


def test_global_table_restore_and_updates_feed_joins(tmp_path: Path) -> None:
    builder = StreamsBuilder()
    table = builder.global_table("ref", S, S, Materialized("ref-store"))
    builder.stream("in", S, S).join(table, lambda v, r: v + r).to("out", S, S)
    topology = builder.build()
    global_task = GlobalStateTask(topology, _config(), tmp_path / "global")
    assert (
        global_task.restore("ref", [(b"k", b"1", 1), (None, b"x", 2), (b"j", b"2", 3), (b"j", None, 4)]) == 3
    )
    collector = Collector()
    task = StreamTask(TaskId(0, 0), topology, _config(), tmp_path / "0_0", collector, global_task=global_task)
    task.process("in", 0, 0, b"k", b"v", 10)
    task.process("in", 0, 1, b"j", b"v", 11)
    global_task.process("ref", 0, 5, b"j", b"3", 12)
    task.process("in", 0, 2, b"j", b"w", 13)
    assert collector.to("out") == [(b"k", b"v1", 10, None), (b"j", b"w3", 13, None)]


def test_each_partition_is_its_own_task_with_its_own_stores_and_changelog_partition(tmp_path: Path) -> None:
    topology = _count_topology()
    assert str(TaskId(0, 1)) == "0_1"
    collector = Collector()
    tasks = {p: StreamTask(TaskId(0, p), topology, _config(), tmp_path / f"0_{p}", collector) for p in (0, 1)}
    tasks[0].process("in", 0, 0, b"k", b"v", 1)
    tasks[1].process("in", 1, 0, b"k", b"v", 2)
    tasks[1].process("in", 1, 1, b"k", b"v", 3)
    assert tasks[0].commit() == {("in", 0): 1}
    assert tasks[1].commit() == {("in", 1): 2}
    assert tasks[0].stores["counts"].get("k") == 1
    assert tasks[1].stores["counts"].get("k") == 2
    changelog = [(v, p) for t, _k, v, _ts, p, _h in collector.sent if t == "app-counts-changelog"]
    assert changelog == [(struct.pack(">q", 1), 0), (struct.pack(">q", 2), 1)]
    with pytest.raises(StreamsError, match="does not read topic 'other'"):
        tasks[0].process("other", 0, 0, b"k", b"v", 1)


def _failing_topology() -> Topology:
    builder = StreamsBuilder()
    builder.stream("in", S, S).map_values(lambda v: 100 // int(v)).to("out", S, serdes.integer())
    return builder.build()


def test_a_failing_user_function_stops_the_task_naming_the_record(tmp_path: Path) -> None:
    task = StreamTask(TaskId(0, 4), _failing_topology(), _config(), tmp_path, Collector())
    with pytest.raises(ProcessingError, match=r"partition 4 offset 9 failed: ZeroDivisionError") as failure:
        task.process("in", 4, 9, b"k", b"0", 1)
    assert isinstance(failure.value.__cause__, ZeroDivisionError)


def test_processing_handler_log_and_continue_and_dead_letters(tmp_path: Path) -> None:
    collector = Collector()
    config = _config(**{"processing.exception.handler": "log_and_continue"})
    task = StreamTask(TaskId(0, 0), _failing_topology(), config, tmp_path / "a", collector)
    task.process("in", 0, 0, b"k", b"0", 1)
    task.process("in", 0, 1, b"k", b"4", 2)
    assert collector.to("out") == [(b"k", struct.pack(">i", 25), 2, None)]
    assert task.metrics.dropped_records == 1
    assert task.commit() == {("in", 0): 2}
    dead = Collector()
    config = _config(**{"errors.deadletterqueue.topic.name": "in-dlq"})
    task = StreamTask(TaskId(0, 0), _failing_topology(), config, tmp_path / "b", dead)
    task.process("in", 0, 0, b"k", b"0", 1)
    [(topic, key, value, ts, _p, headers)] = dead.sent
    assert (topic, key, value, ts) == ("in-dlq", b"k", b"0", 1)
    assert dict(headers)["__streams.errors.exception"] == b"ZeroDivisionError"
