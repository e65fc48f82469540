"""Stateless KStream operators, branching, merging, dynamic sinks and the Processor API with punctuators."""

from __future__ import annotations

import pytest

from strom.streams import (
    Processor,
    ProcessorContext,
    PunctuationType,
    Record,
    StoreError,
    Stores,
    StreamsBuilder,
    StreamsError,
    serdes,
)
from strom.streams.testing import EmptyTopicError, TopologyTestDriver

S = serdes.string()


def test_stateless_operators_keep_the_input_timestamp() -> None:
    builder = StreamsBuilder()
    seen: list[tuple[str, str]] = []
    (
        builder.stream("in", S, S)
        .filter(lambda k, v: v != "skip")
        .filter_not(lambda k, v: v == "drop")
        .map_values(str.upper)
        .map_values(lambda k, v: f"{k}:{v}", with_key=True)
        .flat_map_values(lambda v: [v, v + "!"])
        .peek(lambda k, v: seen.append((k, v)))
        .map(lambda k, v: (v, k))
        .flat_map(lambda k, v: [(k, v), (k + "?", v)])
        .select_key(lambda k, v: k.lower())
        .to("out", S, S)
    )
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("in", S, S)
        source.pipe_input("k", "skip", 1)
        source.pipe_input("k", "drop", 2)
        source.pipe_input("k", "x", 3)
        out = driver.create_output_topic("out", S, S)
        assert out.read_records_to_list() == [
            ("k:x", "k", 3),
            ("k:x?", "k", 3),
            ("k:x!", "k", 3),
            ("k:x!?", "k", 3),
        ]
        assert seen == [("k", "k:X"), ("k", "k:X!")]


def test_split_routes_each_record_to_the_first_matching_branch() -> None:
    builder = StreamsBuilder()
    branches = (
        builder.stream("in", S, serdes.integer())
        .split("n-")
        .branch(lambda k, v: v < 0, "neg")
        .branch(lambda k, v: v == 0)
        .default_branch("pos")
    )
    assert set(branches) == {"n-neg", "n-2", "n-pos"}
    for name, stream in branches.items():
        stream.to(name, S, serdes.integer())
    with TopologyTestDriver(builder.build()) as driver:
        driver.create_input_topic("in", S, serdes.integer()).pipe_key_value_list(
            [("a", -1), ("b", 0), ("c", 5)]
        )
        got = {
            n: driver.create_output_topic(n, S, serdes.integer()).read_key_values_to_list() for n in branches
        }
        assert got == {"n-neg": [("a", -1)], "n-2": [("b", 0)], "n-pos": [("c", 5)]}


def test_record_matching_no_branch_without_default_is_dropped() -> None:
    builder = StreamsBuilder()
    only = builder.stream("in", S, S).split().branch(lambda k, v: v == "y").no_default_branch()
    only["1"].to("out", S, S)
    with TopologyTestDriver(builder.build()) as driver:
        driver.create_input_topic("in", S, S).pipe_key_value_list([("a", "n"), ("b", "y")])
        assert driver.create_output_topic("out", S, S).read_key_values_to_list() == [("b", "y")]


def test_merge_and_topic_extractor_sink() -> None:
    builder = StreamsBuilder()
    a = builder.stream("a", S, S)
    b = builder.stream(["b1", "b2"], S, S)
    a.merge(b).to(lambda k, v, ctx: f"out-{k}", S, S)
    with TopologyTestDriver(builder.build()) as driver:
        driver.create_input_topic("a", S, S).pipe_input("x", "1", 1)
        driver.create_input_topic("b2", S, S).pipe_input("y", "2", 2)
        assert driver.create_output_topic("out-x", S, S).read_records_to_list() == [("x", "1", 1)]
        assert driver.create_output_topic("out-y", S, S).read_records_to_list() == [("y", "2", 2)]


def test_foreach_is_terminal_and_sees_every_record() -> None:
    builder = StreamsBuilder()
    seen: list[tuple[str, str]] = []
    builder.stream("in", S, S).foreach(lambda k, v: seen.append((k, v)))
    with TopologyTestDriver(builder.build()) as driver:
        driver.create_input_topic("in", S, S).pipe_key_value_list([("a", "1"), ("b", "2")])
    assert seen == [("a", "1"), ("b", "2")]


def test_repartition_writes_through_an_internal_topic_with_its_own_partition_count() -> None:
    builder = StreamsBuilder()
    builder.stream("in", S, S).select_key(lambda k, v: v).repartition(S, S, "by-value", 7).to("out")
    topology = builder.build()
    assert topology.resolve_partitions("app", lambda t: 2)["app-by-value-repartition"] == 7
    with TopologyTestDriver(topology, {"application.id": "app"}) as driver:
        driver.create_input_topic("in", S, S).pipe_input("k", "v", 9)
        assert "app-by-value-repartition" in driver.produced_topic_names()
        assert driver.create_output_topic("out", S, S).read_records_to_list() == [("v", "v", 9)]


class DedupProcessor(Processor):
    """Forwards the first record per key; emits how many distinct keys it saw on each punctuation."""

    def init(self, context):  # type: ignore[no-untyped-def]
        self.context = context
        self.seen = context.key_value_store("seen")
        context.schedule(10, PunctuationType.STREAM_TIME, self.report_stream)
        context.schedule(1000, PunctuationType.WALL_CLOCK_TIME, self.report_wall)

    def process(self, record: Record) -> None:
        if self.seen.get(record.key) is None:
            self.seen.put(record.key, record.value)
            self.context.forward(record)

    def report_stream(self, timestamp: int) -> None:
        self.context.forward(Record("stream-time", str(sum(1 for _ in self.seen.all())), timestamp))

    def report_wall(self, timestamp: int) -> None:
        self.context.forward(Record("wall-clock", str(sum(1 for _ in self.seen.all())), timestamp))


def test_processor_with_store_and_stream_time_and_wall_clock_punctuators() -> None:
    builder = StreamsBuilder()
    builder.stream("in", S, S).process(DedupProcessor, Stores.key_value_store("seen", S, S)).to("out", S, S)
    with TopologyTestDriver(builder.build(), initial_wall_clock_time_ms=0) as driver:
        source = driver.create_input_topic("in", S, S)
        out = driver.create_output_topic("out", S, S)
        source.pipe_input(
            "a", "1", 3
        )  # stream-time schedule is aligned to 0: fires at once, at stream time 3
        assert out.read_records_to_list() == [("a", "1", 3), ("stream-time", "1", 3)]
        source.pipe_input("a", "2", 5)
        source.pipe_input("b", "3", 9)
        assert out.read_records_to_list() == [("b", "3", 9)]
        source.pipe_input("c", "4", 35)  # missed intervals fire once, then stay on the 10 ms grid
        assert out.read_records_to_list() == [("c", "4", 35), ("stream-time", "3", 35)]
        source.pipe_input("d", "5", 39)
        source.pipe_input("e", "6", 40)
        assert out.read_records_to_list() == [("d", "5", 39), ("e", "6", 40), ("stream-time", "5", 40)]
        driver.advance_wall_clock_time(999)
        assert out.is_empty()
        driver.advance_wall_clock_time(1)
        assert out.read_records_to_list() == [("wall-clock", "5", 1000)]
        with pytest.raises(EmptyTopicError):
            out.read_record()


def test_processor_cannot_reach_a_store_it_was_not_connected_to() -> None:
    class Sneaky(Processor):
        def init(self, context):  # type: ignore[no-untyped-def]
            context.get_state_store("other")

        def process(self, record: Record) -> None:
            return None

    builder = StreamsBuilder()
    builder.add_state_store(Stores.key_value_store("other"))
    builder.stream("in").process(Sneaky)
    with pytest.raises(KeyError, match="not connected to store 'other'"):
        TopologyTestDriver(builder.build())


def test_processor_store_accessors_check_the_kind_of_store() -> None:
    seen: dict[str, object] = {}

    class Inspector(Processor):
        def init(self, context: ProcessorContext) -> None:
            seen["window"] = context.window_store("win")
            seen["session"] = context.session_store("sessions")
            seen["generic"] = context.get_state_store("win")
            wrong_kind = r"'win' is a window store, not a key_value store.*window_store\('win'\)"
            with pytest.raises(StoreError, match=wrong_kind):
                context.key_value_store("win")
            with pytest.raises(StoreError, match=r"'sessions' is a session store, not a key_value store"):
                context.key_value_store("sessions")

        def process(self, record: Record) -> None:
            return None

    builder = StreamsBuilder()
    builder.stream("in", S, S).process(
        Inspector, Stores.window_store("win", 10, 10, S, S), Stores.session_store("sessions", 10, S, S)
    )
    with TopologyTestDriver(builder.build()) as driver:
        assert seen["window"] is driver.get_window_store("win") is seen["generic"]
        assert seen["session"] is driver.get_session_store("sessions")


def test_unknown_topics_and_stores_give_clear_errors() -> None:
    builder = StreamsBuilder()
    builder.stream("in", S, S).to("out", S, S)
    with TopologyTestDriver(builder.build()) as driver:
        with pytest.raises(StreamsError, match="unknown input topic 'nope'"):
            driver.create_input_topic("nope", S, S)
        with pytest.raises(StoreError, match="no state store 'x'"):
            driver.get_key_value_store("x")


def test_sink_names_the_topic_when_a_value_cannot_be_serialised() -> None:
    builder = StreamsBuilder()
    builder.stream("in", S, S).map_values(len).to("out")
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("in", S, S)
        with pytest.raises(StreamsError, match=r"topic 'out'.*value_serde"):
            source.pipe_input("k", "abc", 1)


class RunningTotal(Processor):
    def init(self, context):  # type: ignore[no-untyped-def]
        self.context = context
        self.totals = context.key_value_store("totals")

    def process(self, record: Record) -> None:
        total = (self.totals.get(record.key) or 0) + record.value
        self.totals.put(record.key, total)
        self.context.forward(record.with_value(total))


def test_low_level_topology_api_with_sources_processors_stores_and_sinks() -> None:
    from strom.streams import Topology

    topology = Topology()
    topology.add_source("Source", ["amounts"], S, serdes.integer())
    topology.add_processor("Total", RunningTotal, "Source")
    topology.add_state_store(Stores.key_value_store("totals", S, serdes.integer()), "Total")
    topology.add_sink("Sink", "totals-out", "Total", key_serde=S, value_serde=serdes.integer())
    assert "Processor: Total (stores: [totals])" in topology.describe()
    with TopologyTestDriver(topology, {"application.id": "papi"}) as driver:
        amounts = driver.create_input_topic("amounts", S, serdes.integer())
        amounts.pipe_records([("a", 5, 1), ("a", 7, 2), ("b", 1, 3)])
        out = driver.create_output_topic("totals-out", S, serdes.integer())
        assert out.read_records_to_list() == [("a", 5, 1), ("a", 12, 2), ("b", 1, 3)]
        assert "papi-totals-changelog" in driver.produced_topic_names()


class Tagger(Processor):
    """Tags each value with where it came from and keeps the first value per key."""

    def init(self, context):  # type: ignore[no-untyped-def]
        self.context = context
        self.first = context.key_value_store("first")

    def process(self, record: Record) -> None:
        meta = self.context.record_metadata()
        kept = self.first.put_if_absent(record.key, record.value)
        tag = f"{meta.topic}/{meta.partition}/{meta.offset}:{kept or '-'}"
        self.context.forward(record.with_value(tag))


def test_processor_context_exposes_record_metadata_and_stores_offer_put_if_absent() -> None:
    builder = StreamsBuilder()
    builder.stream("in", S, S).process(Tagger, Stores.key_value_store("first", S, S)).to("out", S, S)
    with TopologyTestDriver(builder.build()) as driver:
        source = driver.create_input_topic("in", S, S)
        source.pipe_input("a", "x", 1)
        source.pipe_input("a", "y", 2)
        out = driver.create_output_topic("out", S, S)
        assert out.get_queue_size() == 2
        assert out.read_values_to_list() == ["in/0/0:-", "in/0/1:x"]
        assert out.is_empty()
