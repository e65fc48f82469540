"""Stream-table and stream-globaltable joins, using the join input set of Kafka Streams'
AbstractJoinIntegrationTest (reference vector 1, full set with out-of-order records)."""

from __future__ import annotations

import pytest

from strom.streams import StreamsBuilder, TopologyError, serdes
from strom.streams.testing import TestInputTopic, TestOutputTopic, TopologyTestDriver

# (side, value, timestamp); key 0 everywhere, None = null value.
FULL_INPUT_SET = [
    ("L", None, 1), ("R", None, 2), ("L", "A", 3), ("R", "a", 4), ("L", "B", 5), ("R", "b", 6),
    ("L", None, 7), ("R", None, 8), ("L", "C", 9), ("R", "c", 10), ("R", None, 11), ("L", None, 12),
    ("R", None, 13), ("R", "d", 7), ("L", "D", 6), ("L", None, 2), ("R", None, 3), ("R", "e", 14),
    ("L", "E", 15), ("L", None, 10), ("R", None, 9), ("L", "F", 4), ("R", "f", 3),
]  # fmt: skip


def _stream_table_join(
    left: bool,
) -> tuple[TopologyTestDriver, TestInputTopic, TestInputTopic, TestOutputTopic]:
    builder = StreamsBuilder()
    table = builder.table("right", serdes.long(), serdes.string())
    stream = builder.stream("left", serdes.long(), serdes.string())
    joined = (stream.left_join if left else stream.join)(table, lambda lv, rv: f"{lv}-{rv}")
    joined.to("out", serdes.long(), serdes.string())
    driver = TopologyTestDriver(builder.build())
    return (
        driver,
        driver.create_input_topic("left", serdes.long(), serdes.string()),
        driver.create_input_topic("right", serdes.long(), serdes.string()),
        driver.create_output_topic("out", serdes.long(), serdes.string()),
    )


def _run(left: bool) -> list[list[tuple[str, int]]]:
    driver, left_in, right_in, out = _stream_table_join(left)
    outputs = []
    with driver:
        for side, value, ts in FULL_INPUT_SET:
            (left_in if side == "L" else right_in).pipe_input(0, value, ts)
            outputs.append([(r.value, r.timestamp) for r in out.read_records_to_list()])
        assert driver.metrics()["dropped-records-total"] == 5  # the five null-valued stream records
    return outputs


def test_stream_table_inner_join_emits_only_on_stream_side_with_current_table_value() -> None:
    outputs = _run(left=False)
    emitted = {i: out for i, out in enumerate(outputs) if out}
    assert emitted == {4: [("B-a", 5)], 14: [("D-d", 6)], 18: [("E-e", 15)]}


def test_stream_table_left_join_keeps_stream_records_without_table_row() -> None:
    outputs = _run(left=True)
    emitted = {i: out for i, out in enumerate(outputs) if out}
    assert emitted == {
        2: [("A-None", 3)],
        4: [("B-a", 5)],
        8: [("C-None", 9)],
        14: [("D-d", 6)],
        18: [("E-e", 15)],
        21: [("F-None", 4)],
    }


def test_null_key_stream_record_passes_left_join_and_is_dropped_by_inner_join() -> None:
    for left, expected in [(True, [(None, "X-None")]), (False, [])]:
        driver, left_in, _right_in, out = _stream_table_join(left)
        with driver:
            left_in.pipe_input(None, "X", 1)
            assert out.read_key_values_to_list() == expected
            assert driver.metrics()["dropped-records-total"] == (0 if left else 1)


def test_table_tombstone_deletes_the_row_for_later_lookups() -> None:
    driver, left_in, right_in, out = _stream_table_join(False)
    with driver:
        right_in.pipe_input(7, "row", 1)
        left_in.pipe_input(7, "s1", 2)
        right_in.pipe_input(7, None, 3)
        left_in.pipe_input(7, "s2", 4)
        assert out.read_key_values_to_list() == [(7, "s1-row")]
        assert driver.get_key_value_store(_table_store(driver)).get(7) is None


def _table_store(driver: TopologyTestDriver) -> str:
    return next(name for name in driver.get_all_state_stores() if name.startswith("right-STATE-STORE"))


def test_join_after_key_change_goes_through_a_repartition_topic() -> None:
    builder = StreamsBuilder()
    users = builder.table("users", serdes.string(), serdes.string())
    views = builder.stream("views", serdes.string(), serdes.json())
    views.select_key(lambda k, v: v["user"]).join(users, lambda v, name: f"{name} saw {v['page']}").to(
        "out", serdes.string(), serdes.string()
    )
    topology = builder.build()
    internal = [t.name for t in topology.internal_topics("app")]
    assert "app-KSTREAM-KEY-SELECT-0000000004-repartition" in internal
    with TopologyTestDriver(topology, {"application.id": "app"}) as driver:
        driver.create_input_topic("users", serdes.string(), serdes.string()).pipe_input("u1", "Ann", 1)
        driver.create_input_topic("views", serdes.string(), serdes.json()).pipe_input(
            "v9", {"user": "u1", "page": "/home"}, 2
        )
        out = driver.create_output_topic("out", serdes.string(), serdes.string())
        assert out.read_records_to_list() == [("u1", "Ann saw /home", 2)]


def test_global_table_join_uses_key_selector_and_needs_no_copartitioning() -> None:
    builder = StreamsBuilder()
    customers = builder.global_table("customers", serdes.string(), serdes.json())
    orders = builder.stream("orders", serdes.string(), serdes.json())
    orders.join(customers, lambda o, c: {**o, "name": c["name"]}, key_selector=lambda k, o: o["customer"]).to(
        "enriched", serdes.string(), serdes.json()
    )
    orders.left_join(customers, lambda o, c: c and c["name"], key_selector=lambda k, o: o["customer"]).to(
        "names", serdes.string(), serdes.string()
    )
    topology = builder.build()
    assert topology.global_topics == ["customers"]
    assert topology.copartition_groups == []
    with TopologyTestDriver(topology) as driver:
        driver.create_input_topic("customers", serdes.string(), serdes.json()).pipe_input(
            "c1", {"name": "Bo"}, 1
        )
        orders_in = driver.create_input_topic("orders", serdes.string(), serdes.json())
        orders_in.pipe_input("o1", {"customer": "c1", "total": 3}, 5)
        orders_in.pipe_input("o2", {"customer": "c2", "total": 4}, 6)
        enriched = driver.create_output_topic("enriched", serdes.string(), serdes.json())
        names = driver.create_output_topic("names", serdes.string(), serdes.string())
        assert enriched.read_records_to_list() == [("o1", {"customer": "c1", "total": 3, "name": "Bo"}, 5)]
        assert names.read_key_values_to_list() == [("o1", "Bo"), ("o2", None)]


def test_stream_table_join_declares_a_copartition_group_checked_against_partition_counts() -> None:
    builder = StreamsBuilder()
    builder.stream("left").join(builder.table("right"), lambda a, b: a).to("out")
    topology = builder.build()
    counts = topology.resolve_partitions("app", {"left": 4, "right": 4}.__getitem__)
    assert counts["left"] == 4
    with pytest.raises(TopologyError, match="left has 3, right has 4"):
        topology.resolve_partitions("app", {"left": 3, "right": 4}.__getitem__)


def test_key_selector_is_rejected_for_a_ktable_join() -> None:
    builder = StreamsBuilder()
    with pytest.raises(TopologyError, match="key_selector"):
        builder.stream("l").join(builder.table("r"), lambda a, b: a, key_selector=lambda k, v: v)


def test_a_rekeyed_stream_joined_twice_is_repartitioned_once() -> None:
    builder = StreamsBuilder()
    names = builder.table("names", serdes.string(), serdes.string())
    ages = builder.table("ages", serdes.string(), serdes.integer())
    rekeyed = builder.stream("events", serdes.string(), serdes.string()).select_key(lambda k, v: v)
    rekeyed.join(names, lambda v, n: n).to("with-name", serdes.string(), serdes.string())
    rekeyed.left_join(ages, lambda v, a: str(a)).to("with-age", serdes.string(), serdes.string())
    topology = builder.build()
    repartitions = [t.name for t in topology.internal_topics("app") if t.kind == "repartition"]
    assert repartitions == ["app-KSTREAM-KEY-SELECT-0000000007-repartition"]
    with TopologyTestDriver(topology, {"application.id": "app"}) as driver:
        driver.create_input_topic("names", serdes.string(), serdes.string()).pipe_input("u1", "Ann", 1)
        driver.create_input_topic("events", serdes.string(), serdes.string()).pipe_input("e1", "u1", 2)
        assert driver.create_output_topic(
            "with-name", serdes.string(), serdes.string()
        ).read_key_values_to_list() == [("u1", "Ann")]
        assert driver.create_output_topic(
            "with-age", serdes.string(), serdes.string()
        ).read_values_to_list() == ["None"]


def test_stream_table_join_in_the_test_driver_joins_every_stream_row_with_its_earlier_table_row() -> None:
    # The driver processes each piped record at once (Kafka's TopologyTestDriver: every other input is known
    # to be empty), so table rows piped with the page views, earlier in time, are there for every view.
    driver, views, users, out = _stream_table_join(left=True)
    with driver:
        for user in range(20):
            users.pipe_input(user, f"name-{user}", 1_000)
            for view in range(3):
                views.pipe_input(user, f"/page/{view}", 1_001 + view)
        joined = out.read_records_to_list()
        assert len(joined) == 60
        assert all(record.value.endswith(f"-name-{record.key}") for record in joined)
        assert driver.metrics()["enforced-processing-total"] == 0
