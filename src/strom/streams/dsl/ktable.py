"""``KTable`` (a changelog stream materialised per key) and ``GlobalKTable`` (a full copy of a topic on every
instance).

A KTable's rows can be read by joins through a *value getter*: a source or aggregated table reads its store; a
filtered or mapped table applies its function on top of its parent's getter, so it needs no store of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from strom.streams.dsl.graph import StreamGraph
from strom.streams.dsl.value_getters import GetterFactory, OldValues, with_old_values
from strom.streams.errors import TopologyError
from strom.streams.processor.joins import TableTableJoinNode, table_join_getter
from strom.streams.processor.stateless import PassThroughNode
from strom.streams.processor.suppress import BufferedSerde, Suppressed, SuppressNode
from strom.streams.processor.table import (
    TableFilterNode,
    TableMapValuesNode,
    TableRepartitionMapNode,
    ToStreamNode,
)
from strom.streams.serdes import Serde
from strom.streams.state.kv_store import ValueAndTimestamp
from strom.streams.state.stores import StoreSpec
from strom.streams.topology import NodeSpec, TopicRef

if TYPE_CHECKING:
    from strom.streams.dsl.grouped import KGroupedTable
    from strom.streams.dsl.kstream import KStream

class KTable:
    """A table: for each key, the latest value; a null value (tombstone) deletes the key."""

    def __init__(
        self,
        graph: StreamGraph,
        node: str,
        key_serde: Serde[Any] | None,
        value_serde: Serde[Any] | None,
        sources: frozenset[TopicRef],
        getter: GetterFactory,
        getter_stores: list[str],
        old_values: OldValues,
        parents: tuple[KTable, ...] = (),
        store_name: str | None = None,
        windowing: tuple[int, bool] | None = None,
    ) -> None:
        self._graph = graph
        self._node = node
        self.key_serde = key_serde
        self.value_serde = value_serde
        self._sources = sources
        self._getter = getter
        self._getter_stores = getter_stores
        self._old_values = old_values
        self._parents = parents
        self.store_name = store_name
        self._windowing = windowing  # (grace ms, session windows?) of a windowed aggregation's result
        """The name of the store materialising this table (None for filtered/mapped views)."""

    @property
    def name(self) -> str:
        return self._node

    def _enable_send_old_values(self) -> None:
        self._old_values.enabled = True
        for parent in self._parents:
            parent._enable_send_old_values()

    def _derive(
        self, prefix: str, make: Callable[[str], Any], value_serde: Serde[Any] | None, getter: GetterFactory
    ) -> KTable:
        name = self._graph.new_name(prefix)
        flags = OldValues()
        self._graph.topology.add_node(
            NodeSpec(name, "processor", lambda: with_old_values(make(name), flags), [self._node])
        )
        return KTable(
            self._graph,
            name,
            self.key_serde,
            value_serde,
            self._sources,
            getter,
            self._getter_stores,
            flags,
            parents=(self,),
        )

    def filter(self, predicate: Callable[[Any, Any], bool]) -> KTable:
        """Rows for which ``predicate(key, value)`` holds; a row that stops matching is deleted downstream."""
        return self._filter(predicate, True)

    def filter_not(self, predicate: Callable[[Any, Any], bool]) -> KTable:
        return self._filter(predicate, False)

    def _filter(self, predicate: Callable[[Any, Any], bool], keep_when: bool) -> KTable:
        parent_getter = self._getter

        def getter(ctx: Any) -> Callable[[Any], ValueAndTimestamp | None]:
            get = parent_getter(ctx)

            def filtered(key: Any) -> ValueAndTimestamp | None:
                found = get(key)
                if found is None or bool(predicate(key, found.value)) is not keep_when:
                    return None
                return found

            return filtered

        return self._derive(
            "KTABLE-FILTER-", lambda n: TableFilterNode(n, predicate, keep_when), self.value_serde, getter
        )

    def map_values(self, mapper: Callable[..., Any], with_key: bool = False) -> KTable:
        """``mapper(value)`` (or ``mapper(key, value)``) applied to every row."""
        parent_getter = self._getter

        def getter(ctx: Any) -> Callable[[Any], ValueAndTimestamp | None]:
            get = parent_getter(ctx)

            def mapped(key: Any) -> ValueAndTimestamp | None:
                found = get(key)
                if found is None:
                    return None
                value = mapper(key, found.value) if with_key else mapper(found.value)
                return ValueAndTimestamp(value, found.timestamp)

            return mapped

        return self._derive(
            "KTABLE-MAPVALUES-", lambda n: TableMapValuesNode(n, mapper, with_key), None, getter
        )

    def to_stream(self) -> KStream:
        """The table's changelog as a stream: each update, with tombstones as null values."""
        from strom.streams.dsl.kstream import KStream

        name = self._graph.new_name("KTABLE-TOSTREAM-")
        self._graph.topology.add_node(NodeSpec(name, "processor", lambda: ToStreamNode(name), [self._node]))
        return KStream(self._graph, name, self.key_serde, self.value_serde, False, self._sources)

    def join(self, other: KTable, joiner: Callable[[Any, Any], Any]) -> KTable:
        """Inner join with another table on the key: ``joiner(this value, other value)`` while both rows
        exist, recomputed on an update of either side, retracted with a tombstone when one side is deleted."""
        return self._table_join(other, joiner, "inner")

    def left_join(self, other: KTable, joiner: Callable[[Any, Any], Any]) -> KTable:
        """Every row of this table, joined with the other table's row or None."""
        return self._table_join(other, joiner, "left")

    def outer_join(self, other: KTable, joiner: Callable[[Any, Any], Any]) -> KTable:
        """Every key of either table: ``joiner(this value or None, other value or None)``."""
        return self._table_join(other, joiner, "outer")

    def _table_join(self, other: KTable, joiner: Callable[[Any, Any], Any], kind: str) -> KTable:
        if not isinstance(other, KTable):
            raise TopologyError(f"a KTable joins another KTable, not {type(other).__name__}")
        # Left and outer joins must see a side's old value to retract a result when its row is deleted.
        if kind in ("left", "outer"):
            self._enable_send_old_values()
        if kind == "outer":
            other._enable_send_old_values()
        graph = self._graph
        topology = graph.topology
        prefix = "KTABLE-JOIN" if kind == "inner" else f"KTABLE-{kind.upper()}"
        this_name = graph.new_name(f"{prefix}THIS-")
        other_name = graph.new_name(f"{prefix}OTHER-")
        merge = graph.new_name("KTABLE-MERGE-")
        flags = OldValues()
        this_getter, other_getter = self._getter, other._getter

        def make_this() -> Any:
            return with_old_values(TableTableJoinNode(this_name, kind, True, other_getter, joiner), flags)

        def make_other() -> Any:
            return with_old_values(TableTableJoinNode(other_name, kind, False, this_getter, joiner), flags)

        this_stores, other_stores = list(other._getter_stores), list(self._getter_stores)
        topology.add_node(NodeSpec(this_name, "processor", make_this, [self._node], stores=this_stores))
        topology.add_node(NodeSpec(other_name, "processor", make_other, [other._node], stores=other_stores))

        def make_merge() -> PassThroughNode:
            return PassThroughNode(merge)

        topology.add_node(NodeSpec(merge, "processor", make_merge, [this_name, other_name]))
        topology.copartition_groups.append(set(self._sources | other._sources))
        return KTable(
            graph, merge, self.key_serde, None, self._sources | other._sources,
            table_join_getter(kind, this_getter, other_getter, joiner),
            [*self._getter_stores, *other._getter_stores], flags, parents=(self, other),
        )  # fmt: skip

    def suppress(self, suppressed: Suppressed, name: str | None = None) -> KTable:
        """Hold updates back: ``Suppressed.until_window_closes()`` forwards only final window results (this
        table must come from a windowed aggregation), ``Suppressed.until_time_limit(ms, buffer)`` rate-limits
        updates per key. The buffer is a logged store named ``name`` (or a generated name)."""
        if suppressed.until_close and self._windowing is None:
            raise TopologyError("until_window_closes() needs a windowed KTable (from windowed_by(...))")
        graph = self._graph
        store = f"{name}-store" if name else graph.new_name("KTABLE-SUPPRESS-STATE-STORE-")
        node = name or graph.new_name("KTABLE-SUPPRESS-")
        grace, session = self._windowing or (0, False)
        graph.topology.add_state_store(
            StoreSpec(store, "key_value", self.key_serde, BufferedSerde(self.value_serde), None, True, False)
        )

        def make() -> SuppressNode:
            return SuppressNode(node, store, suppressed, grace, session)

        graph.topology.add_node(NodeSpec(node, "processor", make, [self._node], stores=[store]))
        return KTable(
            graph, node, self.key_serde, self.value_serde, self._sources, self._getter, self._getter_stores,
            OldValues(), parents=(self,), windowing=self._windowing,
        )  # fmt: skip

    def group_by(
        self,
        selector: Callable[[Any, Any], tuple[Any, Any]],
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        name: str | None = None,
    ) -> KGroupedTable:
        """Re-group rows by ``selector(key, value) -> (new key, new value)`` for an aggregation with adder and
        subtractor: when a row changes, its old value leaves its old group and its new value joins its new
        group."""
        from strom.streams.dsl.grouped import KGroupedTable

        self._enable_send_old_values()
        node = self._graph.new_name("KTABLE-SELECT-")
        self._graph.topology.add_node(
            NodeSpec(node, "processor", lambda: TableRepartitionMapNode(node, selector), [self._node])
        )
        return KGroupedTable(self._graph, node, key_serde, value_serde, name)


class GlobalKTable:
    """A table over all partitions of a topic, replicated to every instance; join it from any stream with a
    key selector, no co-partitioning needed."""

    def __init__(self, store_name: str, topic: str) -> None:
        self.store_name = store_name
        self.topic = topic
