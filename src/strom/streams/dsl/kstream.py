"""``KStream``: a record stream and its operators (stateless ones, branching, merging, sinks, the Processor
API, grouping and joins with tables).

Each operator adds a node to the builder's topology (through its ``StreamGraph``) and returns a new
``KStream``; nothing runs until the topology is given to ``Streams`` or a ``TopologyTestDriver``.
Key-changing operators (``map``, ``flat_map``, ``select_key``, ``process``) mark the stream so the next
grouping or table join goes through an internal ``<application.id>-<name>-repartition`` topic first, as in
Kafka Streams.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from strom.streams.dsl.graph import StreamGraph
from strom.streams.dsl.materialized import Materialized, as_materialized
from strom.streams.dsl.value_getters import OldValues, store_getter, with_old_values
from strom.streams.errors import TopologyError
from strom.streams.processor.api import Processor
from strom.streams.processor.context import TopicNameExtractor
from strom.streams.processor.joins import (
    JoinWindowNode,
    OuterKeySerde,
    OuterValueSerde,
    StreamStreamJoinNode,
    StreamTableJoinNode,
    ValueListSerde,
)
from strom.streams.processor.stateless import (
    BranchNode,
    FilterNode,
    FlatMapNode,
    FlatMapValuesNode,
    MapNode,
    MapValuesNode,
    PassThroughNode,
    PeekNode,
    SelectKeyNode,
)
from strom.streams.processor.table import TableSourceNode
from strom.streams.serdes import Serde
from strom.streams.state.stores import StoreSpec
from strom.streams.topology import NodeSpec, TopicRef
from strom.streams.windows import JoinWindows

if TYPE_CHECKING:
    from strom.streams.dsl.grouped import KGroupedStream
    from strom.streams.dsl.ktable import GlobalKTable, KTable


def _drop_null_key(key: Any, value: Any) -> bool:
    return key is not None


class KStream:
    """An unbounded stream of independent records (insert semantics)."""

    def __init__(
        self,
        graph: StreamGraph,
        node: str,
        key_serde: Serde[Any] | None,
        value_serde: Serde[Any] | None,
        repartition_required: bool,
        sources: frozenset[TopicRef],
    ) -> None:
        self._graph = graph
        self._node = node
        self.key_serde = key_serde
        self.value_serde = value_serde
        self._repartition_required = repartition_required
        self._sources = sources
        self._join_repartition: tuple[str, frozenset[TopicRef]] | None = None

    @property
    def name(self) -> str:
        """The name of the processor node producing this stream."""
        return self._node

    def _add(
        self,
        prefix: str,
        make: Callable[[str], Any],
        key_serde: Serde[Any] | None,
        value_serde: Serde[Any] | None,
        repartition: bool | None = None,
        stores: list[str] | None = None,
    ) -> KStream:
        name = self._graph.new_name(prefix)
        self._graph.topology.add_node(
            NodeSpec(name, "processor", lambda: make(name), [self._node], stores=list(stores or []))
        )
        required = self._repartition_required if repartition is None else repartition
        return KStream(self._graph, name, key_serde, value_serde, required, self._sources)

    # -- stateless -----------------------------------------------------------------------------------------

    def filter(self, predicate: Callable[[Any, Any], bool]) -> KStream:
        """Keep records for which ``predicate(key, value)`` is true."""
        return self._add(
            "KSTREAM-FILTER-", lambda n: FilterNode(n, predicate, True), self.key_serde, self.value_serde
        )

    def filter_not(self, predicate: Callable[[Any, Any], bool]) -> KStream:
        """Drop records for which ``predicate(key, value)`` is true."""
        return self._add(
            "KSTREAM-FILTER-", lambda n: FilterNode(n, predicate, False), self.key_serde, self.value_serde
        )

    def map(self, mapper: Callable[[Any, Any], tuple[Any, Any]]) -> KStream:
        """``mapper(key, value) -> (new_key, new_value)``; marks the stream for repartitioning."""
        return self._add("KSTREAM-MAP-", lambda n: MapNode(n, mapper), None, None, repartition=True)

    def map_values(self, mapper: Callable[..., Any], with_key: bool = False) -> KStream:
        """``mapper(value)`` (or ``mapper(key, value)`` with ``with_key=True``); the key is unchanged."""
        return self._add(
            "KSTREAM-MAPVALUES-", lambda n: MapValuesNode(n, mapper, with_key), self.key_serde, None
        )

    def flat_map(self, mapper: Callable[[Any, Any], Iterable[tuple[Any, Any]]]) -> KStream:
        """``mapper(key, value) -> iterable of (key, value)``; marks the stream for repartitioning."""
        return self._add("KSTREAM-FLATMAP-", lambda n: FlatMapNode(n, mapper), None, None, repartition=True)

    def flat_map_values(self, mapper: Callable[..., Iterable[Any]], with_key: bool = False) -> KStream:
        """``mapper(value) -> iterable of values``, each forwarded with the original key."""
        return self._add(
            "KSTREAM-FLATMAPVALUES-", lambda n: FlatMapValuesNode(n, mapper, with_key), self.key_serde, None
        )

    def select_key(self, mapper: Callable[[Any, Any], Any]) -> KStream:
        """New key ``mapper(key, value)``; marks the stream for repartitioning."""
        return self._add(
            "KSTREAM-KEY-SELECT-",
            lambda n: SelectKeyNode(n, mapper),
            None,
            self.value_serde,
            repartition=True,
        )

    def peek(self, action: Callable[[Any, Any], None]) -> KStream:
        """Call ``action(key, value)`` for each record and pass it on unchanged."""
        return self._add("KSTREAM-PEEK-", lambda n: PeekNode(n, action), self.key_serde, self.value_serde)

    def foreach(self, action: Callable[[Any, Any], None]) -> None:
        """Terminal: call ``action(key, value)`` for each record."""
        self._add("KSTREAM-FOREACH-", lambda n: PeekNode(n, action), None, None)

    def split(self, name: str = "") -> BranchedKStream:
        """Route each record to the first branch whose predicate matches (Kafka's ``split()``)."""
        return BranchedKStream(self, name)

    def merge(self, other: KStream) -> KStream:
        """Records of both streams, in processing order."""
        name = self._graph.new_name("KSTREAM-MERGE-")
        self._graph.topology.add_node(
            NodeSpec(name, "processor", lambda: PassThroughNode(name), [self._node, other._node])
        )
        same_key = self.key_serde if self.key_serde is other.key_serde else None
        same_value = self.value_serde if self.value_serde is other.value_serde else None
        return KStream(
            self._graph,
            name,
            same_key,
            same_value,
            self._repartition_required or other._repartition_required,
            self._sources | other._sources,
        )

    # -- sinks and repartitioning ----------------------------------------------------------------------------

    def to(
        self,
        topic_or_function: str | TopicNameExtractor,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
    ) -> None:
        """Write to a topic, or to ``topic_or_function(key, value, context)`` per record. Serdes default to
        this stream's, then to the config's defaults."""
        name = self._graph.new_name("KSTREAM-SINK-")
        ks = key_serde or self.key_serde
        vs = value_serde or self.value_serde
        self._graph.topology.add_sink(name, topic_or_function, self._node, key_serde=ks, value_serde=vs)

    def repartition(
        self,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        name: str | None = None,
        num_partitions: int | None = None,
    ) -> KStream:
        """Write through ``<application.id>-<name>-repartition`` (optionally with its own partition count) and
        continue from it: co-locates records by their current key."""
        if num_partitions is not None and num_partitions < 1:
            raise TopologyError(f"num_partitions must be >= 1, got {num_partitions}")
        base = name or self._graph.new_name("KSTREAM-REPARTITION-")
        ks, vs = key_serde or self.key_serde, value_serde or self.value_serde
        node, sources = self._through_repartition_topic(base, ks, vs, num_partitions)
        return KStream(self._graph, node, ks, vs, False, sources)

    def _through_repartition_topic(
        self,
        base: str,
        key_serde: Serde[Any] | None,
        value_serde: Serde[Any] | None,
        num_partitions: int | None = None,
    ) -> tuple[str, frozenset[TopicRef]]:
        topology = self._graph.topology
        topic_base = f"{base}-repartition"
        ref = topology.reserve_repartition_topic(topic_base, num_partitions)
        filter_name, sink_name, source_name = (
            f"{topic_base}-filter",
            f"{topic_base}-sink",
            f"{topic_base}-source",
        )
        topology.add_node(
            NodeSpec(
                filter_name, "processor", lambda: FilterNode(filter_name, _drop_null_key, True), [self._node]
            )
        )
        topology.add_repartition_topic(ref, sink_name, source_name, filter_name, key_serde, value_serde)
        return source_name, frozenset([ref])

    def _for_stateful(
        self, base: str, key_serde: Serde[Any] | None, value_serde: Serde[Any] | None
    ) -> tuple[str, frozenset[TopicRef]]:
        """The node a stateful operator should hang off: this one, or a repartition topic's source. Joins
        (``base`` is this node's name) share one repartition topic per stream, as a second join of the same
        re-keyed stream must read the same records."""
        if not self._repartition_required:
            return self._node, self._sources
        if base == self._node:
            if self._join_repartition is None:
                self._join_repartition = self._through_repartition_topic(base, key_serde, value_serde)
            return self._join_repartition
        return self._through_repartition_topic(base, key_serde, value_serde)

    # -- Processor API ---------------------------------------------------------------------------------------

    def process(self, supplier: Callable[[], Processor], *stores: StoreSpec | str) -> KStream:
        """Run a low-level ``Processor`` (a new one per task from ``supplier``) with access to ``stores``
        (specs from ``Stores`` are added to the topology; names refer to stores added before). The result may
        have new keys, so it is marked for repartitioning."""
        names = []
        for store in stores:
            if isinstance(store, StoreSpec):
                if store.name not in self._graph.topology.stores:
                    self._graph.topology.add_state_store(store)
                names.append(store.name)
            else:
                names.append(store)
        name = self._graph.new_name("KSTREAM-PROCESSOR-")
        self._graph.topology.add_processor(name, supplier, self._node, stores=names)
        return KStream(self._graph, name, None, None, True, self._sources)

    def to_table(self, materialized: Materialized | str | None = None) -> KTable:
        """This stream read as a changelog: each record upserts its key, a None value deletes it, records with
        a None key are dropped (repartitions first if the key was changed upstream)."""
        from strom.streams.dsl.ktable import KTable

        graph = self._graph
        m = as_materialized(materialized)
        key_serde = m.key_serde or self.key_serde
        value_serde = m.value_serde or self.value_serde
        store = m.name or graph.new_name("KSTREAM-TOTABLE-STATE-STORE-")
        parent, sources = self._for_stateful(store, key_serde, value_serde)
        name = graph.new_name("KSTREAM-TOTABLE-")
        graph.topology.add_state_store(m.store_spec(store, "key_value", key_serde, value_serde))
        flags = OldValues()

        def make() -> TableSourceNode:
            return with_old_values(TableSourceNode(name, store), flags)  # type: ignore[no-any-return]

        graph.topology.add_node(NodeSpec(name, "processor", make, [parent], stores=[store]))
        return KTable(graph, name, key_serde, value_serde, sources, store_getter(store), [store], flags,
                      store_name=store)  # fmt: skip

    # -- grouping --------------------------------------------------------------------------------------------

    def group_by(
        self,
        selector: Callable[[Any, Any], Any],
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        name: str | None = None,
    ) -> KGroupedStream:
        """Group by ``selector(key, value)``; the aggregation repartitions by the new key."""
        from strom.streams.dsl.grouped import KGroupedStream

        selected = self._add(
            "KSTREAM-KEY-SELECT-",
            lambda n: SelectKeyNode(n, selector),
            key_serde,
            value_serde or self.value_serde,
            repartition=True,
        )
        return KGroupedStream(selected, key_serde, value_serde or self.value_serde, name)

    def group_by_key(
        self,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        name: str | None = None,
    ) -> KGroupedStream:
        """Group by the current key (repartitions only if the key was changed upstream)."""
        from strom.streams.dsl.grouped import KGroupedStream

        return KGroupedStream(self, key_serde or self.key_serde, value_serde or self.value_serde, name)

    # -- joins -----------------------------------------------------------------------------------------------

    def join(
        self,
        other: KTable | GlobalKTable | KStream,
        joiner: Callable[[Any, Any], Any],
        key_selector: Callable[[Any, Any], Any] | None = None,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        windows: JoinWindows | None = None,
        other_value_serde: Serde[Any] | None = None,
    ) -> KStream:
        """Inner join with a table's current value for the record's key (KTable) or for ``key_selector(key,
        value)`` (GlobalKTable), or with another stream's records of the same key within ``windows``
        (KStream); output ``joiner(this value, other value)``.
        ``key_serde``/``value_serde``/``other_value_serde`` serialise the sides if they must be repartitioned
        or stored (defaults: the streams' serdes, then the other side's key serde)."""
        return self._join(
            other, joiner, key_selector, "inner", key_serde, value_serde, windows, other_value_serde
        )

    def left_join(
        self,
        other: KTable | GlobalKTable | KStream,
        joiner: Callable[[Any, Any], Any],
        key_selector: Callable[[Any, Any], Any] | None = None,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        windows: JoinWindows | None = None,
        other_value_serde: Serde[Any] | None = None,
    ) -> KStream:
        """Like ``join``, but a record of this stream without partner still produces ``joiner(value, None)``
        (for a stream-stream join: once its join window has closed)."""
        return self._join(
            other, joiner, key_selector, "left", key_serde, value_serde, windows, other_value_serde
        )

    def outer_join(
        self,
        other: KStream,
        joiner: Callable[[Any, Any], Any],
        windows: JoinWindows,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        other_value_serde: Serde[Any] | None = None,
    ) -> KStream:
        """Windowed stream-stream join in which a record of either side without partner produces
        ``joiner(value, None)`` or ``joiner(None, value)`` once its window has closed."""
        return self._join(other, joiner, None, "outer", key_serde, value_serde, windows, other_value_serde)

    def _join(
        self,
        table: KTable | GlobalKTable | KStream,
        joiner: Callable[[Any, Any], Any],
        key_selector: Callable[[Any, Any], Any] | None,
        kind: str,
        key_serde: Serde[Any] | None,
        value_serde: Serde[Any] | None,
        windows: JoinWindows | None,
        other_value_serde: Serde[Any] | None,
    ) -> KStream:
        from strom.streams.dsl.ktable import GlobalKTable, KTable

        if isinstance(table, KStream):
            if windows is None:
                raise TopologyError("a stream-stream join needs windows=JoinWindows...")
            if key_selector is not None:
                raise TopologyError("key_selector applies to GlobalKTable joins only")
            return self._stream_join(table, joiner, kind, windows, key_serde, value_serde, other_value_serde)
        if windows is not None or kind == "outer":
            raise TopologyError("windows= and outer joins apply to stream-stream joins only")
        left = kind == "left"
        graph = self._graph
        prefix = "KSTREAM-LEFTJOIN-" if left else "KSTREAM-JOIN-"
        if isinstance(table, GlobalKTable):
            store = table.store_name
            selector = key_selector or (lambda key, value: key)

            def global_getter(ctx: Any) -> Any:
                return ctx.get_store(store).get_with_timestamp

            return self._add(
                prefix,
                lambda n: StreamTableJoinNode(n, global_getter, joiner, left, selector),
                self.key_serde,
                None,
                stores=[store],
            )
        if not isinstance(table, KTable):
            raise TopologyError(
                f"cannot join a KStream with {type(table).__name__}; expected KTable or GlobalKTable"
            )
        if key_selector is not None:
            raise TopologyError(
                "key_selector applies to GlobalKTable joins; a KTable join uses the record key "
                "(use select_key first)"
            )
        ks = key_serde or self.key_serde or table.key_serde
        parent, sources = self._for_stateful(self._node, ks, value_serde or self.value_serde)
        name = graph.new_name(prefix)
        getter = table._getter
        graph.topology.add_node(
            NodeSpec(
                name,
                "processor",
                lambda: StreamTableJoinNode(name, getter, joiner, left),
                [parent],
                stores=list(table._getter_stores),
            )
        )
        graph.topology.copartition_groups.append(set(sources | table._sources))
        return KStream(graph, name, ks, None, False, sources)

    def _stream_join(
        self,
        other: KStream,
        joiner: Callable[[Any, Any], Any],
        kind: str,
        windows: JoinWindows,
        key_serde: Serde[Any] | None,
        value_serde: Serde[Any] | None,
        other_value_serde: Serde[Any] | None,
    ) -> KStream:
        graph = self._graph
        topology = graph.topology
        ks = key_serde or self.key_serde or other.key_serde
        this_vs = value_serde or self.value_serde
        other_vs = other_value_serde or other.value_serde
        this_parent, this_sources = self._for_stateful(self._node, ks, this_vs)
        other_parent, other_sources = other._for_stateful(other._node, ks, other_vs)
        this_window = graph.new_name("KSTREAM-WINDOWED-")
        other_window = graph.new_name("KSTREAM-WINDOWED-")
        # Kafka's names: the side that emits unmatched records is an OUTER one
        join_this = graph.new_name("KSTREAM-OUTERTHIS-" if kind == "outer" else "KSTREAM-JOINTHIS-")
        join_other = graph.new_name("KSTREAM-JOINOTHER-" if kind == "inner" else "KSTREAM-OUTEROTHER-")
        merge = graph.new_name("KSTREAM-MERGE-")
        this_store, other_store = f"{join_this}-store", f"{join_other}-store"
        for store, vs in ((this_store, this_vs), (other_store, other_vs)):
            topology.add_state_store(
                StoreSpec(
                    store,
                    "window",
                    ks,
                    ValueListSerde(vs),
                    None,
                    True,
                    False,
                    windows.size_ms,
                    windows.retention_ms,
                )
            )
        outer_store = None
        if kind != "inner":
            outer_store = f"{graph.new_name('KSTREAM-OUTERSHARED-')}-store"
            topology.add_state_store(
                StoreSpec(
                    outer_store,
                    "key_value",
                    OuterKeySerde(ks),
                    OuterValueSerde(this_vs, other_vs),
                    None,
                    True,
                    False,
                )
            )
        shared = [outer_store] if outer_store else []
        this_outer, other_outer = kind != "inner", kind == "outer"
        topology.add_node(
            NodeSpec(
                this_window,
                "processor",
                lambda: JoinWindowNode(this_window, this_store),
                [this_parent],
                stores=[this_store],
            )
        )
        topology.add_node(
            NodeSpec(
                other_window,
                "processor",
                lambda: JoinWindowNode(other_window, other_store),
                [other_parent],
                stores=[other_store],
            )
        )
        topology.add_node(NodeSpec(
            join_this, "processor",
            lambda: StreamStreamJoinNode(join_this, merge, True, windows, joiner, other_store, this_outer,
                                         outer_store),
            [this_window], stores=[other_store, *shared],
        ))  # fmt: skip
        topology.add_node(NodeSpec(
            join_other, "processor",
            lambda: StreamStreamJoinNode(join_other, merge, False, windows, joiner, this_store, other_outer,
                                         outer_store),
            [other_window], stores=[this_store, *shared],
        ))  # fmt: skip
        topology.add_node(
            NodeSpec(merge, "processor", lambda: PassThroughNode(merge), [join_this, join_other])
        )
        topology.copartition_groups.append(set(this_sources | other_sources))
        return KStream(graph, merge, ks, None, False, this_sources | other_sources)


class BranchedKStream:
    """Branches of ``KStream.split()``. Each record goes to the first matching branch; ``default_branch``
    takes the rest. The finishing call returns the branches by name: ``<split name><branch name>``, or the
    branch's 1-based position for unnamed branches (Kafka's naming)."""

    def __init__(self, stream: KStream, name: str) -> None:
        self._stream = stream
        self._prefix = name
        self._predicates: list[Callable[[Any, Any], bool] | None] = []
        self._branches: dict[str, KStream] = {}
        graph = stream._graph
        self._node = graph.new_name("KSTREAM-BRANCH-")
        predicates = self._predicates
        node = self._node
        graph.topology.add_node(
            NodeSpec(node, "processor", lambda: BranchNode(node, list(predicates)), [stream._node])
        )
        self._done = False

    def _add_branch(self, predicate: Callable[[Any, Any], bool] | None, name: str | None) -> None:
        if self._done:
            raise TopologyError("this split() is finished; start a new one")
        self._predicates.append(predicate)
        label = f"{self._prefix}{name if name is not None else len(self._predicates)}"
        if label in self._branches:
            raise TopologyError(f"branch name {label!r} is used twice")
        child = self._stream._graph.new_name("KSTREAM-BRANCHCHILD-")
        self._stream._graph.topology.add_node(
            NodeSpec(child, "processor", lambda: PassThroughNode(child), [self._node])
        )
        s = self._stream
        self._branches[label] = KStream(
            s._graph, child, s.key_serde, s.value_serde, s._repartition_required, s._sources
        )

    def branch(self, predicate: Callable[[Any, Any], bool], name: str | None = None) -> BranchedKStream:
        self._add_branch(predicate, name)
        return self

    def default_branch(self, name: str | None = None) -> dict[str, KStream]:
        self._add_branch(None, "0" if name is None else name)
        self._done = True
        return dict(self._branches)

    def no_default_branch(self) -> dict[str, KStream]:
        self._done = True
        return dict(self._branches)
