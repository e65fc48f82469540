"""KTable-KTable joins on the full join input set of Kafka's TableTableJoinIntegrationTest (reference vector
1's data; non-versioned tables, no cache)."""

from __future__ import annotations

import pytest

from strom.streams import StreamsBuilder, TopologyError, serdes
from strom.streams.testing import TopologyTestDriver

FULL_INPUT_SET = [
    ("L", None, 1), ("R", None, 2), ("L", "A", 3), ("R", "a", 4), ("L", "B", 5), ("R", "b", 6),
    ("L", None, 7), ("R", None, 8), ("L", "C", 9), ("R", "c", 10), ("R", None, 11), ("L", None, 12),
    ("R", None, 13), ("R", "d", 7), ("L", "D", 6), ("L", None, 2), ("R", None, 3), ("R", "e", 14),
    ("L", "E", 15), ("L", None, 10), ("R", None, 9), ("L", "F", 4), ("R", "f", 3),
]  # fmt: skip


def _run(kind: str, records: list[tuple[str, str | None, int]]) -> dict[int, list[tuple[str | None, int]]]:
    builder = StreamsBuilder()
    left = builder.table("left", serdes.long(), serdes.string())
    right = builder.table("right", serdes.long(), serdes.string())
    getattr(left, kind)(right, lambda lv, rv: f"{lv}-{rv}").to_stream().to(
        "out", serdes.long(), serdes.string()
    )
    emitted = {}
    with TopologyTestDriver(builder.build(), {"cache.max.bytes": 0}) as driver:
        inputs = {
            "L": driver.create_input_topic("left", serdes.long(), serdes.string()),
            "R": driver.create_input_topic("right", serdes.long(), serdes.string()),
        }
        out = driver.create_output_topic("out", serdes.long(), serdes.string())
        for i, (side, value, ts) in enumerate(records):
            inputs[side].pipe_input(0, value, ts)
            got = [(r.value, r.timestamp) for r in out.read_records_to_list()]
            if got:
                emitted[i] = got
    return emitted


def test_inner_table_join_recomputes_on_either_side_and_retracts_with_tombstones() -> None:
    assert _run("join", FULL_INPUT_SET) == {
        3: [("A-a", 4)],
        4: [("B-a", 5)],
        5: [("B-b", 6)],
        6: [(None, 7)],
        9: [("C-c", 10)],
        10: [(None, 11)],
        14: [("D-d", 7)],  # the later of the two timestamps
        15: [(None, 7)],
        18: [("E-e", 15)],
        19: [(None, 14)],
        22: [("F-f", 4)],
    }


def test_left_table_join_keeps_every_left_row() -> None:
    assert _run("left_join", FULL_INPUT_SET) == {
        2: [("A-None", 3)],
        3: [("A-a", 4)],
        4: [("B-a", 5)],
        5: [("B-b", 6)],
        6: [(None, 7)],
        8: [("C-None", 9)],
        9: [("C-c", 10)],
        10: [("C-None", 11)],
        11: [(None, 12)],
        14: [("D-d", 7)],
        15: [(None, 7)],
        18: [("E-e", 15)],
        19: [(None, 14)],
        21: [("F-None", 4)],
        22: [("F-f", 4)],
    }


def test_outer_table_join_keeps_rows_of_either_side() -> None:
    records = [("R", "a", 1), ("L", "A", 2), ("R", None, 3), ("L", None, 4), ("L", None, 5)]
    assert _run("outer_join", records) == {
        0: [("None-a", 1)],
        1: [("A-a", 2)],
        2: [("A-None", 3)],
        3: [(None, 4)],
    }


def test_table_join_result_can_be_read_by_a_stream_join_and_is_copartitioned() -> None:
    builder = StreamsBuilder()
    names = builder.table("names", serdes.string(), serdes.string())
    cities = builder.table("cities", serdes.string(), serdes.string())
    profiles = names.join(cities, lambda n, c: f"{n} from {c}")
    builder.stream("visits", serdes.string(), serdes.string()).join(
        profiles, lambda page, p: f"{p} saw {page}"
    ).to("out", serdes.string(), serdes.string())
    topology = builder.build()
    assert {frozenset(t.name for t in group) for group in topology.copartition_groups} >= {
        frozenset({"names", "cities"})
    }
    with TopologyTestDriver(topology) as driver:
        driver.create_input_topic("names", serdes.string(), serdes.string()).pipe_input("u1", "Ann", 1)
        driver.create_input_topic("cities", serdes.string(), serdes.string()).pipe_input("u1", "Oslo", 2)
        driver.create_input_topic("visits", serdes.string(), serdes.string()).pipe_input("u1", "/home", 3)
        out = driver.create_output_topic("out", serdes.string(), serdes.string())
        assert out.read_records_to_list() == [("u1", "Ann from Oslo saw /home", 3)]


def test_a_table_joins_only_tables() -> None:
    builder = StreamsBuilder()
    with pytest.raises(TopologyError, match="joins another KTable"):
        builder.table("t").join(builder.stream("s"), lambda a, b: a)  # type: ignore[arg-type]
