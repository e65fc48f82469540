"""Aggregations over grouped streams and re-grouped tables (adder/subtractor), with Kafka Streams' rules."""

from __future__ import annotations

import pytest

from strom.streams import Materialized, StreamsBuilder, serdes
from strom.streams.testing import TopologyTestDriver


def test_count_per_key_ignores_null_keys_and_values_and_counts_the_drops() -> None:
    builder = StreamsBuilder()
    builder.stream("in", serdes.string(), serdes.string()).group_by_key().count(
        Materialized("counts")
    ).to_stream().to("out", value_serde=serdes.long())
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("in", serdes.string(), serdes.string())
        out = driver.create_output_topic("out", serdes.string(), serdes.long())
        source.pipe_input("a", "1", 10)
        source.pipe_input(None, "1", 11)
        source.pipe_input("a", None, 12)
        source.pipe_input("a", "2", 5)
        source.pipe_input("b", "3", 7)
        # the aggregate's timestamp is the largest input timestamp, even when a later record is older
        assert out.read_records_to_list() == [("a", 1, 10), ("a", 2, 10), ("b", 1, 7)]
        assert driver.metrics()["dropped-records-total"] == 2
        assert driver.get_key_value_store("counts").get("a") == 2


def test_count_values_are_written_with_kafkas_long_serde() -> None:
    builder = StreamsBuilder()
    builder.stream("in", serdes.string(), serdes.string()).group_by_key().count().to_stream().to("out")
    with TopologyTestDriver(builder.build(), {"default.key.serde": serdes.string()}) as driver:
        driver.create_input_topic("in", serdes.string(), serdes.string()).pipe_input("k", "v", 1)
        out = driver.create_output_topic("out", serdes.string(), serdes.bytes_())
        assert out.read_key_value() == ("k", b"\x00\x00\x00\x00\x00\x00\x00\x01")


def test_group_by_repartitions_by_the_new_key_and_aggregates() -> None:
    builder = StreamsBuilder()
    (
        builder.stream("purchases", serdes.string(), serdes.json())
        .group_by(lambda k, v: v["item"], key_serde=serdes.string())
        .aggregate(lambda: 0.0, lambda k, v, total: total + v["price"],
                   Materialized("revenue", value_serde=serdes.double()))
        .to_stream()
        .to("revenue-out", serdes.string(), serdes.double())
    )  # fmt: skip
    topology = builder.build()
    assert len(topology.subtopologies()) == 2
    with TopologyTestDriver(topology, {"application.id": "shop"}) as driver:
        source = driver.create_input_topic("purchases", serdes.string(), serdes.json())
        for i, (item, price) in enumerate([("pen", 1.5), ("ink", 4.0), ("pen", 2.0)]):
            source.pipe_input(f"p{i}", {"item": item, "price": price}, 100 + i)
        out = driver.create_output_topic("revenue-out", serdes.string(), serdes.double())
        assert out.read_records_to_list() == [("pen", 1.5, 100), ("ink", 4.0, 101), ("pen", 3.5, 102)]
        assert "shop-revenue-repartition" in driver.produced_topic_names()
        assert "shop-revenue-changelog" in driver.produced_topic_names()


def test_reduce_starts_from_the_first_value() -> None:
    builder = StreamsBuilder()
    builder.stream("in", serdes.string(), serdes.integer()).group_by_key().reduce(
        lambda agg, v: agg * v, Materialized("product")
    ).to_stream().to("out")
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("in", serdes.string(), serdes.integer())
        source.pipe_key_value_list([("k", 2), ("k", 3), ("k", 4)])
        out = driver.create_output_topic("out", serdes.string(), serdes.integer())
        assert out.read_values_to_list() == [2, 6, 24]


def test_table_group_by_subtracts_old_value_and_adds_new_value() -> None:
    """KTable.groupBy + aggregate with adder and subtractor (Kafka's smoke test: user -> region counts)."""
    builder = StreamsBuilder()
    regions = builder.table("user-regions", serdes.string(), serdes.string())
    regions.group_by(
        lambda user, region: (region, user), key_serde=serdes.string(), value_serde=serdes.string()
    ).count(Materialized("users-per-region")).to_stream().to("region-counts", serdes.string(), serdes.long())
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("user-regions", serdes.string(), serdes.string())
        out = driver.create_output_topic("region-counts", serdes.string(), serdes.long())
        source.pipe_input("alice", "asia", 1)
        source.pipe_input("bob", "europe", 2)
        source.pipe_input("alice", "europe", 3)  # leaves asia, joins europe
        source.pipe_input("bob", None, 4)  # tombstone: bob leaves europe
        assert out.read_records_to_list() == [
            ("asia", 1, 1),
            ("europe", 1, 2),
            ("asia", 0, 3),
            ("europe", 2, 3),
            ("europe", 1, 4),
        ]
        store = driver.get_key_value_store("users-per-region")
        assert dict(store.all()) == {"asia": 0, "europe": 1}


def test_table_group_by_to_the_same_group_updates_once() -> None:
    builder = StreamsBuilder()
    balances = builder.table("balances", serdes.string(), serdes.integer())
    balances.group_by(lambda acct, amount: ("total", amount), serdes.string(), serdes.integer()).reduce(
        lambda agg, v: agg + v, lambda agg, v: agg - v, Materialized("total")
    ).to_stream().to("out", serdes.string(), serdes.integer())
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("balances", serdes.string(), serdes.integer())
        out = driver.create_output_topic("out", serdes.string(), serdes.integer())
        source.pipe_input("a", 10, 1)
        source.pipe_input("b", 5, 2)
        source.pipe_input("a", 7, 3)
        assert out.read_values_to_list() == [10, 15, 12]


def test_table_filter_and_map_values_forward_tombstones_for_rows_that_leave() -> None:
    builder = StreamsBuilder()
    table = builder.table("scores", serdes.string(), serdes.integer())
    table.filter(lambda k, v: v >= 50).map_values(lambda v: f"pass:{v}").to_stream().to(
        "passed", serdes.string(), serdes.string()
    )
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("scores", serdes.string(), serdes.integer())
        out = driver.create_output_topic("passed", serdes.string(), serdes.string())
        source.pipe_input("ann", 70, 1)
        source.pipe_input("bob", 20, 2)
        source.pipe_input("ann", 40, 3)
        source.pipe_input("cy", 90, 4)
        source.pipe_input("cy", None, 5)
        assert out.read_records_to_list() == [
            ("ann", "pass:70", 1),
            ("bob", None, 2),
            ("ann", None, 3),
            ("cy", "pass:90", 4),
            ("cy", None, 5),
        ]


def test_source_table_drops_null_keys_and_deletes_on_tombstone() -> None:
    builder = StreamsBuilder()
    builder.table("t", serdes.string(), serdes.string(), Materialized("t-store")).to_stream().to(
        "out", serdes.string(), serdes.string()
    )
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("t", serdes.string(), serdes.string())
        source.pipe_input(None, "x", 1)
        source.pipe_input("k", "v1", 2)
        source.pipe_input("k", None, 3)
        out = driver.create_output_topic("out", serdes.string(), serdes.string())
        assert out.read_records_to_list() == [("k", "v1", 2), ("k", None, 3)]
        assert driver.get_key_value_store("t-store").get("k") is None
        assert driver.metrics()["dropped-records-total"] == 1


@pytest.mark.parametrize("cache_max_bytes", [0, 1 << 20])
def test_cache_collapses_updates_only_between_commits(cache_max_bytes: int) -> None:
    """The driver commits after each piped record; updates made while processing one input (here through the
    repartition topic) collapse in the cache, and the changelog gets the same records as downstream."""
    builder = StreamsBuilder()
    builder.stream("in", serdes.string(), serdes.string()).flat_map_values(lambda v: v.split()).group_by(
        lambda k, w: w, serdes.string(), serdes.string()
    ).count(Materialized("words")).to_stream().to("out", serdes.string(), serdes.long())
    with TopologyTestDriver(
        builder.build(), {"cache.max.bytes": cache_max_bytes, "application.id": "wc"}
    ) as d:
        d.create_input_topic("in", serdes.string(), serdes.string()).pipe_input("l1", "a b a", 1)
        out = d.create_output_topic("out", serdes.string(), serdes.long())
        changelog = d.create_output_topic("wc-words-changelog", serdes.string(), serdes.long())
        if cache_max_bytes:
            assert out.read_key_values_to_list() == [("a", 2), ("b", 1)]
            assert changelog.read_key_values_to_list() == [("a", 2), ("b", 1)]
        else:
            assert out.read_key_values_to_list() == [("a", 1), ("b", 1), ("a", 2)]
            assert changelog.read_key_values_to_list() == [("a", 1), ("b", 1), ("a", 2)]
