"""Windowed aggregation semantics, ported from Kafka Streams' KStreamWindowAggregateTest (vector 2)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strom.streams import (
    EmitStrategy,
    InvalidTimestampError,
    Materialized,
    StreamsBuilder,
    TimeWindows,
    Window,
    Windowed,
    serdes,
)
from strom.streams.processor.aggregate import WINDOWED_EMIT_INTERVAL_CONFIG
from strom.streams.testing import TestInputTopic, TestOutputTopic, TopologyTestDriver

VECTOR_2_INPUT = [
    ("A", "1", 0), ("B", "2", 1), ("C", "3", 2), ("D", "4", 3), ("A", "1", 4), ("A", "1", 5),
    ("B", "2", 6), ("D", "4", 7), ("B", "2", 8), ("C", "3", 9), ("A", "1", 10), ("B", "2", 11),
    ("D", "4", 12), ("B", "2", 13), ("C", "3", 14), ("B", "1", 3), ("B", "2", 2), ("B", "3", 9),
]  # fmt: skip

# key[start,end) = aggregate @ output timestamp, per input record
VECTOR_2_EXPECTED = [
    [("A", 0, 10, "0+1", 0)],
    [("B", 0, 10, "0+2", 1)],
    [("C", 0, 10, "0+3", 2)],
    [("D", 0, 10, "0+4", 3)],
    [("A", 0, 10, "0+1+1", 4)],
    [("A", 0, 10, "0+1+1+1", 5), ("A", 5, 15, "0+1", 5)],
    [("B", 0, 10, "0+2+2", 6), ("B", 5, 15, "0+2", 6)],
    [("D", 0, 10, "0+4+4", 7), ("D", 5, 15, "0+4", 7)],
    [("B", 0, 10, "0+2+2+2", 8), ("B", 5, 15, "0+2+2", 8)],
    [("C", 0, 10, "0+3+3", 9), ("C", 5, 15, "0+3", 9)],
    [("A", 5, 15, "0+1+1", 10), ("A", 10, 20, "0+1", 10)],
    [("B", 5, 15, "0+2+2+2", 11), ("B", 10, 20, "0+2", 11)],
    [("D", 5, 15, "0+4+4", 12), ("D", 10, 20, "0+4", 12)],
    [("B", 5, 15, "0+2+2+2+2", 13), ("B", 10, 20, "0+2+2", 13)],
    [("C", 5, 15, "0+3+3", 14), ("C", 10, 20, "0+3", 14)],
    [("B", 0, 10, "0+2+2+2+1", 8)],
    [("B", 0, 10, "0+2+2+2+1+2", 8)],
    [("B", 0, 10, "0+2+2+2+1+2+3", 9), ("B", 5, 15, "0+2+2+2+2+3", 13)],
]


def _hopping_string_aggregate(
    cache_max_bytes: int,
) -> tuple[TopologyTestDriver, TestInputTopic, TestOutputTopic]:
    builder = StreamsBuilder()
    (
        builder.stream("topic1", serdes.string(), serdes.string())
        .group_by_key()
        .windowed_by(TimeWindows.of_size_and_grace(10, 100).advance_by(5))
        .aggregate(lambda: "0", lambda key, value, agg: agg + "+" + value,
                   Materialized("topic1-Canonized", value_serde=serdes.string()))
        .to_stream()
        .to("out", key_serde=serdes.windowed(serdes.string(), 10), value_serde=serdes.string())
    )  # fmt: skip
    driver = TopologyTestDriver(builder.build(), {"statestore.cache.max.bytes": cache_max_bytes})
    source = driver.create_input_topic("topic1", serdes.string(), serdes.string())
    out = driver.create_output_topic("out", serdes.windowed(serdes.string(), 10), serdes.string())
    return driver, source, out


@pytest.mark.parametrize("cache_max_bytes", [0, 10 * 1024 * 1024], ids=["cache-off", "cache-on"])
def test_hopping_window_aggregate_emits_every_update_with_max_timestamp(cache_max_bytes: int) -> None:
    driver, source, out = _hopping_string_aggregate(cache_max_bytes)
    with driver:
        for (key, value, ts), expected in zip(VECTOR_2_INPUT, VECTOR_2_EXPECTED, strict=True):
            source.pipe_input(key, value, ts)
            got = [
                (r.key.key, r.key.window.start, r.key.window.end, r.value, r.timestamp)
                for r in out.read_records_to_list()
            ]
            assert got == expected, f"after {key}:{value}@{ts}"
        assert driver.metrics()["dropped-records-total"] == 0


def test_window_store_holds_the_final_aggregates_of_vector_2() -> None:
    driver, source, _out = _hopping_string_aggregate(0)
    with driver:
        for key, value, ts in VECTOR_2_INPUT:
            source.pipe_input(key, value, ts)
        store = driver.get_window_store("topic1-Canonized")
        assert list(store.fetch("B", 0, 10)) == [(0, "0+2+2+2+1+2+3"), (5, "0+2+2+2+2+3"), (10, "0+2+2")]
        assert store.get("A", 0) == "0+1+1+1"
        assert store.get_with_timestamp("B", 5) == ("0+2+2+2+2+3", 13)
        assert store.get("A", 15) is None


def test_record_in_closed_window_is_dropped_and_counted() -> None:
    builder = StreamsBuilder()
    (
        builder.stream("in", serdes.string(), serdes.string())
        .group_by_key()
        .windowed_by(TimeWindows.of_size_and_grace(10, 5))
        .count()
        .to_stream()
        .to("out", key_serde=serdes.windowed(serdes.string(), 10), value_serde=serdes.long())
    )
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("in", serdes.string(), serdes.string())
        out = driver.create_output_topic("out", serdes.windowed(serdes.string(), 10), serdes.long())
        source.pipe_input("a", "x", 0)
        source.pipe_input("b", "x", 14)  # stream time 14: window [0,10) closes at 10 + 5 = 15
        source.pipe_input("a", "x", 9)  # still open: 10 > 14 - 5
        assert out.read_key_values_to_list() == [
            (Windowed("a", Window(0, 10)), 1),
            (Windowed("b", Window(10, 20)), 1),
            (Windowed("a", Window(0, 10)), 2),
        ]
        source.pipe_input("c", "x", 15)  # stream time 15 = end + grace: [0,10) is closed now
        source.pipe_input("a", "x", 3)  # late for every window it falls into
        assert out.read_key_values_to_list() == [(Windowed("c", Window(10, 20)), 1)]
        assert driver.metrics()["dropped-records-total"] == 1


def test_stream_time_is_per_partition_so_one_key_closes_windows_of_others() -> None:
    builder = StreamsBuilder()
    builder.stream("in", serdes.string(), serdes.string()).group_by_key().windowed_by(
        TimeWindows.of_size_without_grace(10)
    ).count(Materialized("counts"))
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("in", serdes.string(), serdes.string())
        source.pipe_input("a", "x", 1)
        source.pipe_input("b", "x", 10)  # closes [0,10) for key a as well: no grace
        source.pipe_input("a", "x", 2)
        assert driver.get_window_store("counts").get("a", 0) == 1
        assert driver.metrics()["dropped-records-total"] == 1


def test_null_key_and_null_value_are_ignored_by_windowed_count() -> None:
    builder = StreamsBuilder()
    builder.stream("in", serdes.string(), serdes.string()).group_by_key().windowed_by(
        TimeWindows.of_size_and_grace(10, 0)
    ).count(Materialized("counts"))
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("in", serdes.string(), serdes.string())
        source.pipe_input(None, "x", 1)
        source.pipe_input("a", None, 1)
        source.pipe_input("a", "x", 1)
        assert list(driver.get_window_store("counts").all()) == [(Windowed("a", Window(0, 10)), 1)]
        assert driver.metrics()["dropped-records-total"] == 2


def test_windowed_reduce_keeps_first_value_as_initial_aggregate() -> None:
    builder = StreamsBuilder()
    builder.stream("in", serdes.string(), serdes.integer()).group_by_key().windowed_by(
        TimeWindows.of_size_and_grace(100, 0)
    ).reduce(lambda agg, v: max(agg, v), Materialized("max")).to_stream().map(
        lambda wk, v: (f"{wk.key}@{wk.window.start}", v)
    ).to("out", serdes.string(), serdes.integer())
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("in", serdes.string(), serdes.integer())
        out = driver.create_output_topic("out", serdes.string(), serdes.integer())
        for value, ts in [(5, 10), (3, 20), (9, 150), (7, 199)]:
            source.pipe_input("k", value, ts)
        expected = [("k@0", 5, 10), ("k@0", 5, 20), ("k@100", 9, 150), ("k@100", 9, 199)]
        assert out.read_records_to_list() == expected


def test_window_retention_shorter_than_size_plus_grace_is_rejected() -> None:
    builder = StreamsBuilder()
    grouped = builder.stream("in").group_by_key().windowed_by(TimeWindows.of_size_and_grace(10, 5))
    with pytest.raises(Exception, match="must be at least"):
        grouped.count(Materialized("c", retention_ms=12))


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 20),
    advance_divisor=st.integers(1, 4),
    grace=st.integers(0, 15),
    records=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 80)), max_size=40),
)
def test_windowed_count_matches_a_model_of_kafkas_rules(
    size: int, advance_divisor: int, grace: int, records: list[tuple[str, int]]
) -> None:
    """Final counts and the dropped-records metric equal a direct model: a record counts in every window
    [s, s + size) containing it whose end is still > (max timestamp so far) - grace; the store keeps windows
    starting after (newest window start) - (size + grace)."""
    advance = max(1, size // advance_divisor)
    windows = TimeWindows.of_size_and_grace(size, grace).advance_by(advance)
    builder = StreamsBuilder()
    builder.stream("in", serdes.string(), serdes.string()).group_by_key().windowed_by(windows).count(
        Materialized("counts")
    )
    expected: dict[tuple[str, int], int] = {}
    dropped = 0
    stream_time = -1
    newest_start = -1  # the store keeps windows by its newest window start, as Kafka's window stores do
    for key, ts in records:
        stream_time = max(stream_time, ts)
        start = ts - ts % advance
        while start > ts - size and start >= 0:
            if start + size > stream_time - grace:
                expected[(key, start)] = expected.get((key, start), 0) + 1
                newest_start = max(newest_start, start)
            else:
                dropped += 1
            start -= advance
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("in", serdes.string(), serdes.string())
        for key, ts in records:
            source.pipe_input(key, "v", ts)
        store = driver.get_window_store("counts")
        got = {(wk.key, wk.window.start): n for wk, n in store.fetch_all(0, 10_000)}
        live = {k: v for k, v in expected.items() if k[1] > newest_start - (size + grace)}
        assert got == live
        assert driver.metrics()["dropped-records-total"] == dropped


def test_timestamp_extractor_drives_windows_and_rejects_negative_event_times() -> None:
    builder = StreamsBuilder()
    builder.stream(
        "in", serdes.string(), serdes.json(), timestamp_extractor=lambda k, v, record_ts: v["at"]
    ).group_by_key().windowed_by(TimeWindows.of_size_without_grace(100)).count(Materialized("c"))
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("in", serdes.string(), serdes.json())
        source.pipe_input("k", {"at": 150}, 999_999)
        source.pipe_input("k", {"at": 120}, 5)
        assert driver.get_window_store("c").get_with_timestamp("k", 100) == (2, 150)
        with pytest.raises(InvalidTimestampError, match="invalid timestamp -1"):
            source.pipe_input("k", {"at": -1}, 5)


def _emit_final_count(grace: int) -> TopologyTestDriver:
    builder = StreamsBuilder()
    (
        builder.stream("in", serdes.string(), serdes.string())
        .group_by_key()
        .windowed_by(TimeWindows.of_size_and_grace(10, grace))
        .emit_strategy(EmitStrategy.on_window_close())
        .count(Materialized("final"))
        .to_stream()
        .map(lambda wk, n: (f"{wk.key}@{wk.window.start}", n))
        .to("out", serdes.string(), serdes.long())
    )
    return TopologyTestDriver(builder.build(), {WINDOWED_EMIT_INTERVAL_CONFIG: 0})


def test_vector_2_with_emit_on_window_close_emits_nothing_because_no_window_closes() -> None:
    builder = StreamsBuilder()
    (
        builder.stream("topic1", serdes.string(), serdes.string())
        .group_by_key()
        .windowed_by(TimeWindows.of_size_and_grace(10, 100).advance_by(5))
        .emit_strategy(EmitStrategy.on_window_close())
        .aggregate(lambda: "0", lambda k, v, agg: agg + "+" + v, Materialized(value_serde=serdes.string()))
        .to_stream()
        .to("out", serdes.windowed(serdes.string(), 10), serdes.string())
    )
    with TopologyTestDriver(builder.build(), {WINDOWED_EMIT_INTERVAL_CONFIG: 0}) as driver:
        source = driver.create_input_topic("topic1", serdes.string(), serdes.string())
        for key, value, ts in VECTOR_2_INPUT:
            source.pipe_input(key, value, ts)
        out = driver.create_output_topic("out", serdes.windowed(serdes.string(), 10), serdes.string())
        assert out.is_empty()


def test_emit_on_window_close_forwards_each_final_result_once_at_end_plus_grace() -> None:
    with _emit_final_count(grace=5) as driver:
        source = driver.create_input_topic("in", serdes.string(), serdes.string())
        out = driver.create_output_topic("out", serdes.string(), serdes.long())
        for key, ts in [("a", 1), ("a", 4), ("b", 9), ("a", 12)]:
            source.pipe_input(key, "v", ts)
        assert out.is_empty()  # [0,10) closes at 10 + 5
        source.pipe_input("a", "v", 8)  # late but within grace: still counted
        source.pipe_input("c", "v", 15)  # stream time 15: [0,10) is final now
        assert out.read_records_to_list() == [("a@0", 3, 8), ("b@0", 1, 9)]
        source.pipe_input("c", "v", 16)
        assert out.is_empty()  # nothing new closed
        source.pipe_input("c", "v", 40)
        assert out.read_records_to_list() == [("a@10", 1, 12), ("c@10", 2, 16)]


@pytest.mark.parametrize("backend", ["lsm", "rocksdict"])
def test_vector_2_on_persistent_stores_in_a_state_dir(tmp_path: object, backend: str) -> None:
    if backend == "rocksdict":
        pytest.importorskip("rocksdict")
    builder = StreamsBuilder()
    builder.stream("topic1", serdes.string(), serdes.string()).group_by_key().windowed_by(
        TimeWindows.of_size_and_grace(10, 100).advance_by(5)
    ).aggregate(
        lambda: "0", lambda k, v, agg: agg + "+" + v, Materialized("agg", value_serde=serdes.string())
    )
    config = {"default.dsl.store": backend, "state.dir": str(tmp_path), "application.id": "persist"}
    with TopologyTestDriver(builder.build(), config) as driver:
        source = driver.create_input_topic("topic1", serdes.string(), serdes.string())
        for key, value, ts in VECTOR_2_INPUT:
            source.pipe_input(key, value, ts)
    with TopologyTestDriver(builder.build(), config) as driver:  # the same state directory, reopened
        store = driver.get_window_store("agg")
        assert list(store.fetch("B", 0, 10)) == [(0, "0+2+2+2+1+2+3"), (5, "0+2+2+2+2+3"), (10, "0+2+2")]
