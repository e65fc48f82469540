"""Windowed stream-stream joins: reference vector 1 (Kafka's StreamStreamJoinIntegrationTest testInner) and
the left/outer rules (a record without partner is emitted only once its window has closed, KAFKA-10847)."""

from __future__ import annotations

import pytest

from strom.streams import StreamsBuilder, TopologyError, serdes
from strom.streams.processor.joins import EMIT_INTERVAL_CONFIG
from strom.streams.testing import TopologyTestDriver
from strom.streams.windows import JoinWindows

# (side, key, value, timestamp): the in-order input set of AbstractJoinIntegrationTest; None = null.
IN_ORDER = [
    ("L", 0, None, 1), ("R", 0, None, 2), ("L", 0, "A", 3), ("R", 0, "a", 4), ("L", 0, "B", 5),
    ("R", 0, "b", 6), ("L", 0, None, 7), ("R", 0, None, 8), ("L", 0, "C", 9), ("R", 0, "c", 10),
    ("R", 0, None, 11), ("L", 0, None, 12), ("R", 0, None, 13), ("R", 0, "d", 14), ("L", 0, "D", 15),
    ("L", None, "E", 16), ("R", None, "e", 17),
]  # fmt: skip

VECTOR_1_INNER = {
    3: [("A-a", 4)],
    4: [("B-a", 5)],
    5: [("A-b", 6), ("B-b", 6)],
    8: [("C-a", 9), ("C-b", 9)],
    9: [("A-c", 10), ("B-c", 10), ("C-c", 10)],
    13: [("A-d", 14), ("B-d", 14), ("C-d", 14)],
    14: [("D-a", 15), ("D-b", 15), ("D-c", 15), ("D-d", 15)],
}


def _driver(kind: str, windows: JoinWindows, config: dict[str, object] | None = None) -> TopologyTestDriver:
    builder = StreamsBuilder()
    left = builder.stream("left", serdes.long(), serdes.string())
    right = builder.stream("right", serdes.long(), serdes.string())
    getattr(left, kind)(right, lambda lv, rv: f"{lv}-{rv}", windows=windows).to(
        "out", serdes.long(), serdes.string()
    )
    return TopologyTestDriver(builder.build(), {EMIT_INTERVAL_CONFIG: 0, **(config or {})})


def _run(
    driver: TopologyTestDriver, records: list[tuple[str, int | None, str | None, int]]
) -> dict[int, list]:
    left = driver.create_input_topic("left", serdes.long(), serdes.string())
    right = driver.create_input_topic("right", serdes.long(), serdes.string())
    out = driver.create_output_topic("out", serdes.long(), serdes.string())
    emitted = {}
    for i, (side, key, value, ts) in enumerate(records):
        (left if side == "L" else right).pipe_input(key, value, ts)
        got = [(r.value, r.timestamp) for r in out.read_records_to_list()]
        if got:
            emitted[i] = got
    return emitted


def test_vector_1_inner_join_within_ten_seconds() -> None:
    with _driver("join", JoinWindows.of_time_difference_and_grace(10_000, 0)) as driver:
        assert _run(driver, IN_ORDER) == VECTOR_1_INNER
        assert driver.metrics()["dropped-records-total"] == 9  # 7 null values, 2 null keys


@pytest.mark.parametrize("cache", [0, 1 << 20])
def test_vector_1_result_is_the_same_with_the_cache_on_and_off(cache: int) -> None:
    with _driver(
        "join", JoinWindows.of_time_difference_without_grace(10_000), {"cache.max.bytes": cache}
    ) as d:
        assert _run(d, IN_ORDER) == VECTOR_1_INNER


def test_left_join_on_vector_1_has_no_spurious_results_and_passes_null_keys() -> None:
    with _driver("left_join", JoinWindows.of_time_difference_and_grace(10_000, 0)) as driver:
        assert _run(driver, IN_ORDER) == {**VECTOR_1_INNER, 15: [("E-None", 16)]}


def test_left_join_emits_unmatched_left_record_once_its_window_closed() -> None:
    with _driver("left_join", JoinWindows.of_time_difference_and_grace(10, 5)) as driver:
        emitted = _run(
            driver,
            [
                ("L", 1, "x", 100),  # no partner yet: held back
                ("R", 1, "y", 108),  # joins x (108 - 100 <= 10)
                ("L", 2, "lonely", 101),
                (
                    "R",
                    9,
                    "tick",
                    115,
                ),  # stream time 115: window of 101 ends at 111 + grace 5 = 116, still open
                ("R", 9, "tick", 117),  # now closed: emitted with its own timestamp
            ],
        )
        assert emitted == {1: [("x-y", 108)], 4: [("lonely-None", 101)]}


def test_outer_join_emits_unmatched_records_of_both_sides() -> None:
    with _driver("outer_join", JoinWindows.of_time_difference_without_grace(5)) as driver:
        emitted = _run(driver, [("L", 1, "l", 10), ("R", 2, "r", 11), ("L", 3, "late-enough", 30)])
        assert emitted == {2: [("l-None", 10), ("None-r", 11)]}


def test_asymmetric_window_limits_how_far_each_side_looks() -> None:
    windows = JoinWindows.of_time_difference_without_grace(0).before(5).after(0)
    with _driver("join", windows) as driver:
        emitted = _run(
            driver, [("L", 1, "a", 10), ("R", 1, "early", 6), ("R", 1, "later", 11), ("R", 1, "t", 5)]
        )
        # a left record at 10 joins right records in [10 - 5, 10 + 0]
        assert emitted == {1: [("a-early", 10)], 3: [("a-t", 10)]}


def test_outer_results_are_throttled_by_the_wall_clock_interval_as_in_kafka() -> None:
    builder = StreamsBuilder()
    left = builder.stream("left", serdes.long(), serdes.string())
    right = builder.stream("right", serdes.long(), serdes.string())
    windows = JoinWindows.of_time_difference_without_grace(1)
    left.left_join(right, lambda a, b: f"{a}-{b}", windows=windows).to("out", serdes.long(), serdes.string())
    with TopologyTestDriver(builder.build(), initial_wall_clock_time_ms=0) as driver:
        lin = driver.create_input_topic("left", serdes.long(), serdes.string())
        out = driver.create_output_topic("out", serdes.long(), serdes.string())
        lin.pipe_input(1, "a", 10)
        lin.pipe_input(2, "b", 20)  # a's window closed: emitted, next scan not before wall clock 1000
        assert out.read_values_to_list() == ["a-None"]
        lin.pipe_input(3, "c", 30)
        assert out.is_empty()
        driver.advance_wall_clock_time(1000)
        lin.pipe_input(4, "d", 40)
        assert out.read_values_to_list() == ["b-None", "c-None"]


def test_stream_stream_join_needs_join_windows_and_declares_its_stores() -> None:
    builder = StreamsBuilder()
    left, right = builder.stream("l"), builder.stream("r")
    with pytest.raises(TopologyError, match="needs windows"):
        left.join(right, lambda a, b: a)
    left.outer_join(right, lambda a, b: a, JoinWindows.of_time_difference_and_grace(100, 50))
    topology = builder.build()
    configs = {t.name: t.configs for t in topology.internal_topics("app")}
    assert configs["app-KSTREAM-OUTERTHIS-0000000004-store-changelog"] == {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(250 + 86_400_000),
    }
    assert "app-KSTREAM-OUTERSHARED-0000000007-store-changelog" in configs
    assert [set(g) for g in topology.copartition_groups] == [
        {t for t in topology.subtopologies()[0].sources},
    ]
