"""Serdes are byte-compatible with Kafka's; window arithmetic matches TimeWindowsTest; topologies split into
sub-topologies and name internal topics as Kafka Streams does."""

from __future__ import annotations

import struct
import uuid

import pytest

from strom.streams import (
    Materialized,
    SerializationError,
    StreamsBuilder,
    TimeWindows,
    TopologyError,
    Window,
    Windowed,
    serdes,
)


@pytest.mark.parametrize(
    ("serde", "value", "wire"),
    [
        (serdes.long(), 1, b"\x00\x00\x00\x00\x00\x00\x00\x01"),
        (serdes.long(), -2, b"\xff\xff\xff\xff\xff\xff\xff\xfe"),
        (serdes.integer(), 258, b"\x00\x00\x01\x02"),
        (serdes.short(), -1, b"\xff\xff"),
        (serdes.double(), 1.5, struct.pack(">d", 1.5)),
        (serdes.float_(), 0.5, b"\x3f\x00\x00\x00"),
        (serdes.string(), "héllo", "héllo".encode()),
        (serdes.boolean(), True, b"\x01"),
        (serdes.bytes_(), b"\x00raw", b"\x00raw"),
        (serdes.json(), {"a": [1, "x"]}, b'{"a":[1,"x"]}'),
        (serdes.uuid(), uuid.UUID(int=1), b"00000000-0000-0000-0000-000000000001"),
        (serdes.windowed(serdes.string(), 10), Windowed("k", Window(20, 30)), b"k" + struct.pack(">q", 20)),
    ],
)
def test_serdes_write_kafkas_bytes_and_read_them_back(
    serde: serdes.Serde, value: object, wire: bytes
) -> None:
    assert serde.serialize("t", value) == wire
    assert serde.deserialize("t", wire) == value
    assert serde.serialize("t", None) is None
    assert serde.deserialize("t", None) is None


@pytest.mark.parametrize(
    ("serde", "data", "message"),
    [
        (serdes.long(), b"\x00\x01", "long deserializer is 2, expected 8"),
        (serdes.integer(), b"12345", "integer deserializer is 5, expected 4"),
        (serdes.string(), b"\xff", "not valid UTF-8"),
        (serdes.json(), b"{", "invalid JSON"),
        (serdes.boolean(), b"\x02", "expected 0x00 or 0x01"),
    ],
)
def test_malformed_bytes_raise_serialization_error_naming_the_problem(
    serde: serdes.Serde, data: bytes, message: str
) -> None:
    with pytest.raises(SerializationError, match=message):
        serde.deserialize("t", data)


def test_custom_serde_from_functions_handles_none_and_wraps_failures() -> None:
    upper = serdes.serde(lambda s: s.upper().encode(), lambda b: b.decode().lower(), "upper")
    assert upper.serialize("t", "ab") == b"AB"
    assert upper.deserialize("t", b"AB") == "ab"
    assert upper.serialize("t", None) is None
    with pytest.raises(SerializationError, match="serde upper cannot serialise int"):
        upper.serialize("t", 5)


def test_tumbling_and_hopping_windows_like_kafka() -> None:
    tumbling = TimeWindows.of_size_without_grace(10)
    assert tumbling.windows_for(25) == [Window(20, 30)]
    assert tumbling.windows_for(30) == [Window(30, 40)]  # end is exclusive
    hopping = TimeWindows.of_size_and_grace(10, 100).advance_by(5)
    assert hopping.windows_for(3) == [Window(0, 10)]  # no windows with negative start
    assert hopping.windows_for(12) == [Window(5, 15), Window(10, 20)]
    assert hopping.retention_ms == 110
    assert TimeWindows.of_size_with_no_grace(7) == TimeWindows.of_size_and_grace(7, 0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TimeWindows.of_size_and_grace(0, 0), "size must be > 0"),
        (lambda: TimeWindows.of_size_and_grace(10, -1), "grace period must be >= 0"),
        (lambda: TimeWindows.of_size_without_grace(10).advance_by(11), "advance must be > 0 and <= size"),
        (lambda: TimeWindows.of_size_without_grace(10).advance_by(0), "advance must be > 0 and <= size"),
    ],
)
def test_invalid_windows_are_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def _word_count_with_table_join() -> StreamsBuilder:
    builder = StreamsBuilder()
    users = builder.table("users", serdes.string(), serdes.string())
    views = builder.stream("views", serdes.string(), serdes.string())
    views.join(users, lambda v, u: u).group_by(lambda k, v: v, serdes.string(), serdes.string()).windowed_by(
        TimeWindows.of_size_and_grace(60_000, 5_000)
    ).count(Materialized("per-region")).to_stream().to("out")
    return builder


def test_subtopologies_are_cut_at_repartition_topics_and_joined_by_shared_stores() -> None:
    topology = _word_count_with_table_join().build()
    first, second = topology.subtopologies()
    assert {t.name for t in first.sources} == {
        "users",
        "views",
    }  # the join's store ties both sources together
    assert [t.name for t in second.sources] == ["per-region-repartition"]
    assert second.stores == ["per-region"]
    groups = topology.topic_groups("app")
    assert groups[0].changelog_topics == {
        "users-STATE-STORE-0000000000": "app-users-STATE-STORE-0000000000-changelog"
    }
    assert groups[1].source_topics == ["app-per-region-repartition"]
    assert groups[1].repartition_sources == ["app-per-region-repartition"]


def test_internal_topics_carry_kafka_streams_configs() -> None:
    topology = _word_count_with_table_join().build()
    configs = {t.name: (t.kind, t.configs) for t in topology.internal_topics("app")}
    assert configs["app-users-STATE-STORE-0000000000-changelog"] == (
        "changelog",
        {"cleanup.policy": "compact"},
    )
    kind, windowed = configs["app-per-region-changelog"]
    assert kind == "changelog"
    assert windowed == {"cleanup.policy": "compact,delete", "retention.ms": str(65_000 + 86_400_000)}
    kind, repartition = configs["app-per-region-repartition"]
    assert (kind, repartition["cleanup.policy"], repartition["retention.ms"]) == (
        "repartition",
        "delete",
        "-1",
    )


def test_partition_counts_flow_to_repartition_and_changelog_topics() -> None:
    topology = _word_count_with_table_join().build()
    counts = topology.resolve_partitions("app", {"users": 6, "views": 6}.__getitem__)
    assert counts["app-per-region-repartition"] == 6
    assert counts["app-per-region-changelog"] == 6
    assert counts["app-users-STATE-STORE-0000000000-changelog"] == 6
    assert topology.task_count(1, counts, "app") == 6
    with pytest.raises(TopologyError, match="users has 6, views has 2"):
        topology.resolve_partitions("app", {"users": 6, "views": 2}.__getitem__)


def test_describe_lists_subtopologies_nodes_and_edges_like_kafka() -> None:
    builder = StreamsBuilder()
    builder.stream("in").filter(lambda k, v: True).to("out")
    builder.global_table("ref")
    assert builder.build().describe() == (
        "Topologies:\n"
        "   Sub-topology: 0\n"
        "    Source: KSTREAM-SOURCE-0000000000 (topics: [in])\n"
        "      --> KSTREAM-FILTER-0000000001\n"
        "    Processor: KSTREAM-FILTER-0000000001 (stores: [])\n"
        "      --> KSTREAM-SINK-0000000002\n"
        "      <-- KSTREAM-SOURCE-0000000000\n"
        "    Sink: KSTREAM-SINK-0000000002 (topic: out)\n"
        "      <-- KSTREAM-FILTER-0000000001\n"
        "   Sub-topology: 1 for global store ref-STATE-STORE-0000000003 (will not generate tasks)\n"
        "    Source: KSTREAM-SOURCE-0000000004 (topics: [ref])\n"
    )


def test_topology_rejects_duplicate_names_and_topics() -> None:
    builder = StreamsBuilder()
    builder.stream("in")
    with pytest.raises(TopologyError, match="already read by source"):
        builder.stream("in")
    with pytest.raises(TopologyError, match="already exists"):
        builder.table("t", materialized="s")
        builder.table("t2", materialized="s")
    with pytest.raises(TopologyError, match="parent 'nope' does not exist"):
        builder.topology.add_sink("sink", "out", "nope")


def test_something_that_is_not_a_serde_is_refused_when_the_task_is_built() -> None:
    from strom.streams.testing import TopologyTestDriver

    builder = StreamsBuilder()
    builder.stream("in", "string", serdes.string()).to("out")  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="source 'KSTREAM-SOURCE-0000000000': the key serde"):
        TopologyTestDriver(builder.build())
    builder = StreamsBuilder()
    builder.stream("in").group_by_key().count(Materialized("c", value_serde=int))  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="store 'c': the value serde"):
        TopologyTestDriver(builder.build())
