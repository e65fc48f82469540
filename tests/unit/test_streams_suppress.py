"""KTable.suppress, as Kafka's SuppressScenarioTest: final results per window, time-limited updates,
bounded buffers that emit early or shut down, and a buffer that survives a restore from its changelog."""

from __future__ import annotations

import pytest

from strom.streams import (
    Materialized,
    SessionWindows,
    StreamsBuilder,
    StreamsError,
    TimeWindows,
    TopologyError,
    serdes,
)
from strom.streams.processor.suppress import BufferConfig, Suppressed
from strom.streams.testing import TopologyTestDriver

S = serdes.string()


def _final_counts(windows: object) -> TopologyTestDriver:
    builder = StreamsBuilder()
    (
        builder.stream("in", S, S)
        .group_by_key()
        .windowed_by(windows)  # type: ignore[call-overload]
        .count(Materialized("counts"))
        .suppress(Suppressed.until_window_closes(), name="final")
        .to_stream()
        .map(lambda wk, n: (f"{wk.key}@{wk.window.start}-{wk.window.end}", n))
        .to("out", S, serdes.long())
    )
    return TopologyTestDriver(builder.build(), {"application.id": "app"})


def _pipe(driver: TopologyTestDriver, records: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    source = driver.create_input_topic("in", S, S)
    for key, ts in records:
        source.pipe_input(key, "v", ts)
    return [tuple(r) for r in driver.create_output_topic("out", S, serdes.long()).read_records_to_list()]


def test_until_window_closes_forwards_one_final_result_per_window() -> None:
    with _final_counts(TimeWindows.of_size_and_grace(10, 5)) as driver:
        assert _pipe(driver, [("a", 1), ("a", 2), ("b", 9), ("a", 11)]) == []
        assert _pipe(driver, [("a", 8)]) == []  # late but within grace: updates the buffered result
        assert _pipe(driver, [("x", 15)]) == [("a@0-10", 3, 8), ("b@0-10", 1, 9)]
        assert _pipe(driver, [("x", 30)]) == [("a@10-20", 1, 11), ("x@10-20", 1, 15)]
        assert "app-final-store-changelog" in driver.produced_topic_names()


def test_final_session_results_skip_the_sessions_that_were_merged_away() -> None:
    with _final_counts(SessionWindows.of_inactivity_gap_and_grace(5, 0)) as driver:
        assert _pipe(driver, [("a", 0), ("a", 4), ("a", 8)]) == []  # [0,0] and [0,4] merged into [0,8]
        assert _pipe(driver, [("b", 14)]) == [("a@0-8", 3, 8)]  # 8 + 0 < 14: closed


def test_until_time_limit_forwards_the_latest_value_once_per_interval() -> None:
    builder = StreamsBuilder()
    builder.table("prices", S, serdes.integer()).suppress(
        Suppressed.until_time_limit(10, BufferConfig.unbounded())
    ).to_stream().to("out", S, serdes.integer())
    with TopologyTestDriver(builder.build()) as driver:
        prices = driver.create_input_topic("prices", S, serdes.integer())
        out = driver.create_output_topic("out", S, serdes.integer())
        for value, ts in [(1, 0), (2, 3), (3, 9)]:
            prices.pipe_input("p", value, ts)
        assert out.is_empty()
        prices.pipe_input("q", 7, 10)  # 10 ms since p's first buffered update
        assert out.read_records_to_list() == [("p", 3, 9)]


def test_bounded_buffer_emits_early_or_shuts_down() -> None:
    def run(buffer: BufferConfig) -> list[tuple[str, int, int]]:
        builder = StreamsBuilder()
        builder.table("t", S, serdes.integer()).suppress(
            Suppressed.until_time_limit(1000, buffer)
        ).to_stream().to("out", S, serdes.integer())
        with TopologyTestDriver(builder.build()) as driver:
            source = driver.create_input_topic("t", S, serdes.integer())
            for i, key in enumerate("abc"):
                source.pipe_input(key, i, i)
            return [
                tuple(r)
                for r in driver.create_output_topic("out", S, serdes.integer()).read_records_to_list()
            ]

    assert run(BufferConfig.with_max_records(2)) == [("a", 0, 0)]
    with pytest.raises(StreamsError, match=r"suppression buffer .* is full"):
        run(BufferConfig.with_max_records(2).shut_down_when_full())


def test_until_window_closes_needs_a_windowed_table_and_a_strict_buffer() -> None:
    builder = StreamsBuilder()
    with pytest.raises(TopologyError, match="windowed KTable"):
        builder.table("t").suppress(Suppressed.until_window_closes())
    with pytest.raises(ValueError, match="shuts down when full"):
        Suppressed.until_window_closes(BufferConfig.with_max_records(5))


def test_buffered_results_survive_a_restore_from_the_buffer_changelog(tmp_path: object) -> None:
    from pathlib import Path

    from strom.streams.processor.context import TaskId
    from strom.streams.task import StreamTask

    class Collector:
        def __init__(self) -> None:
            self.sent: list[tuple[str, bytes | None, bytes | None, int]] = []

        def send(self, topic, key, value, ts, partition=None, headers=None):  # type: ignore[no-untyped-def]
            self.sent.append((topic, key, value, ts))

    builder = StreamsBuilder()
    builder.stream("in", S, S).group_by_key().windowed_by(TimeWindows.of_size_without_grace(10)).count(
        Materialized("c")
    ).suppress(Suppressed.until_window_closes(), name="final").to_stream().to(
        "out", serdes.windowed(S, 10), serdes.long()
    )
    topology = builder.build()
    config = {"application.id": "app", "default.dsl.store": "in_memory", "cache.max.bytes": 0}
    first = Collector()
    task = StreamTask(TaskId(0, 0), topology, config, Path(str(tmp_path)) / "a", first)
    task.process("in", 0, 0, b"k", b"v", 1)
    task.process("in", 0, 1, b"k", b"v", 2)
    task.commit()
    assert [t for t, *_ in first.sent if t == "out"] == []
    second = Collector()
    again = StreamTask(TaskId(0, 0), topology, config, Path(str(tmp_path)) / "b", second)
    for store, topic in (("c", "app-c-changelog"), ("final-store", "app-final-store-changelog")):
        again.restore(store, [(k, v, ts) for t, k, v, ts in first.sent if t == topic])
    again.process("in", 0, 2, b"other", b"v", 25)  # closes [0,10)
    outputs = [(k, v, ts) for t, k, v, ts in second.sent if t == "out"]
    assert outputs[0][2] == 2 and outputs[0][1] == (2).to_bytes(8, "big")
