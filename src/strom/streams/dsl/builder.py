"""``StreamsBuilder``: the entry point of the DSL. Its ``StreamGraph`` names nodes the way Kafka Streams does
(``KSTREAM-SOURCE-0000000000``, ``KSTREAM-AGGREGATE-STATE-STORE-0000000002``, ...) so topologies, store names
and internal topic names read the same as a Java app's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strom.streams.dsl.graph import StreamGraph
from strom.streams.dsl.kstream import KStream
from strom.streams.dsl.ktable import GlobalKTable, KTable
from strom.streams.dsl.materialized import Materialized, as_materialized
from strom.streams.dsl.value_getters import OldValues, store_getter, with_old_values
from strom.streams.errors import TopologyError
from strom.streams.processor.table import TableSourceNode
from strom.streams.serdes import Serde
from strom.streams.state.stores import StoreSpec
from strom.streams.topology import NodeSpec, TopicRef, Topology


class StreamsBuilder:
    def __init__(self) -> None:
        self._graph = StreamGraph()

    @property
    def topology(self) -> Topology:
        """The topology built so far (the low-level ``add_*`` calls may be mixed with the DSL)."""
        return self._graph.topology

    def stream(
        self,
        topic_or_topics: str | list[str],
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        timestamp_extractor: Callable[[Any, Any, int], int] | None = None,
    ) -> KStream:
        """A stream of the records of one or more topics (None serdes: the config's defaults). Event time is
        the record timestamp, or ``timestamp_extractor(key, value, record_timestamp)``."""
        topics = [topic_or_topics] if isinstance(topic_or_topics, str) else list(topic_or_topics)
        name = self._graph.new_name("KSTREAM-SOURCE-")
        self.topology.add_source(name, topics, key_serde, value_serde, timestamp_extractor)
        sources = frozenset(TopicRef(t) for t in topics)
        return KStream(self._graph, name, key_serde, value_serde, False, sources)

    def table(
        self,
        topic: str,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        materialized: Materialized | str | None = None,
    ) -> KTable:
        """A table over a (compacted) topic: each record upserts its key; a null value deletes it."""
        if not isinstance(topic, str):
            raise TopologyError("table() reads exactly one topic")
        m = as_materialized(materialized)
        key_serde = key_serde or m.key_serde
        value_serde = value_serde or m.value_serde
        store = m.name or self._graph.new_name(f"{topic}-STATE-STORE-")
        source = self._graph.new_name("KSTREAM-SOURCE-")
        node = self._graph.new_name("KTABLE-SOURCE-")
        self.topology.add_source(source, [topic], key_serde, value_serde)
        self.topology.add_state_store(m.store_spec(store, "key_value", key_serde, value_serde))
        flags = OldValues()
        self.topology.add_node(
            NodeSpec(
                node,
                "processor",
                lambda: with_old_values(TableSourceNode(node, store), flags),
                [source],
                stores=[store],
            )
        )
        return KTable(
            self._graph,
            node,
            key_serde,
            value_serde,
            frozenset([TopicRef(topic)]),
            store_getter(store),
            [store],
            flags,
            store_name=store,
        )

    def global_table(
        self,
        topic: str,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        materialized: Materialized | str | None = None,
    ) -> GlobalKTable:
        """A table holding every partition of ``topic`` on every instance, loaded before processing starts."""
        m = as_materialized(materialized)
        store = m.name or self._graph.new_name(f"{topic}-STATE-STORE-")
        source = self._graph.new_name("KSTREAM-SOURCE-")
        self._graph.new_name("KTABLE-SOURCE-")
        spec = StoreSpec(
            store,
            "key_value",
            key_serde or m.key_serde,
            value_serde or m.value_serde,
            m.backend,
            logging=False,
            caching=False,
        )
        self.topology.add_global_store(spec, topic, source)
        return GlobalKTable(store, topic)

    def add_state_store(self, spec: StoreSpec) -> StreamsBuilder:
        """Declare a store for ``KStream.process(..., "name")``."""
        self.topology.add_state_store(spec)
        return self

    def build(self) -> Topology:
        return self.topology
