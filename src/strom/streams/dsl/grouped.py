"""Grouped streams and tables and their aggregations: ``count``, ``reduce``, ``aggregate`` (optionally over
time windows for streams; with adder and subtractor for tables). Each aggregation materialises a store (logged
to ``<application.id>-<store>-changelog``, cached) and returns the result as a ``KTable``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from strom.streams.dsl.graph import StreamGraph
from strom.streams.dsl.ktable import KTable
from strom.streams.dsl.materialized import Materialized, as_materialized
from strom.streams.dsl.value_getters import OldValues, store_getter, windowed_store_getter, with_old_values
from strom.streams.errors import TopologyError
from strom.streams.processor.aggregate import (
    SessionWindowAggregateNode,
    StreamAggregateNode,
    TableAggregateNode,
    WindowedAggregateNode,
)
from strom.streams.processor.table import ChangeSerde
from strom.streams.serdes import Serde, SessionWindowedSerde, TimeWindowedSerde, long
from strom.streams.topology import NodeSpec
from strom.streams.windows import EmitStrategy, SessionWindows, TimeWindows

if TYPE_CHECKING:
    from strom.streams.dsl.kstream import KStream


def _count_adder(key: Any, value: Any, aggregate: int) -> int:
    return aggregate + 1


def _count_subtractor(key: Any, value: Any, aggregate: int) -> int:
    return aggregate - 1


def _count_merger(key: Any, left: int, right: int) -> int:
    return left + right


def _count_init() -> int:
    return 0


def _reducer(reducer: Callable[[Any, Any], Any]) -> Callable[[Any, Any, Any], Any]:
    return lambda key, value, aggregate: reducer(aggregate, value)


class KGroupedStream:
    def __init__(
        self, stream: KStream, key_serde: Serde[Any] | None, value_serde: Serde[Any] | None, name: str | None
    ) -> None:
        self._stream = stream
        self.key_serde = key_serde
        self.value_serde = value_serde
        self._name = name

    def count(self, materialized: Materialized | str | None = None) -> KTable:
        """Records per key (null keys and values are ignored), as a table of ints (``long()`` serde)."""
        return self._aggregate(_count_init, _count_adder, materialized, long())

    def reduce(
        self, reducer: Callable[[Any, Any], Any], materialized: Materialized | str | None = None
    ) -> KTable:
        """``reducer(aggregate, value)``; the first value of a key is its initial aggregate."""
        return self._aggregate(None, _reducer(reducer), materialized, self.value_serde)

    def aggregate(
        self,
        initializer: Callable[[], Any],
        aggregator: Callable[[Any, Any, Any], Any],
        materialized: Materialized | str | None = None,
    ) -> KTable:
        """``aggregator(key, value, aggregate)`` starting from ``initializer()``."""
        return self._aggregate(initializer, aggregator, materialized, None)

    @overload
    def windowed_by(self, windows: TimeWindows) -> TimeWindowedKStream: ...

    @overload
    def windowed_by(self, windows: SessionWindows) -> SessionWindowedKStream: ...

    def windowed_by(
        self, windows: TimeWindows | SessionWindows
    ) -> TimeWindowedKStream | SessionWindowedKStream:
        """Aggregate per time window (tumbling or hopping) or per session."""
        if isinstance(windows, TimeWindows):
            return TimeWindowedKStream(self, windows)
        if isinstance(windows, SessionWindows):
            return SessionWindowedKStream(self, windows)
        raise TopologyError(f"windowed_by takes TimeWindows or SessionWindows, not {type(windows).__name__}")

    def _aggregate(
        self,
        initializer: Callable[[], Any] | None,
        aggregator: Callable[[Any, Any, Any], Any],
        materialized: Materialized | str | None,
        default_value_serde: Serde[Any] | None,
        windows: TimeWindows | None = None,
        emit_final: bool = False,
    ) -> KTable:
        stream = self._stream
        graph: StreamGraph = stream._graph
        m = as_materialized(materialized)
        store = m.name or graph.new_name("KSTREAM-AGGREGATE-STATE-STORE-")
        key_serde = m.key_serde or self.key_serde
        value_serde = m.value_serde or default_value_serde
        parent, sources = stream._for_stateful(self._name or store, key_serde, self.value_serde)
        name = graph.new_name("KSTREAM-AGGREGATE-" if initializer is not None else "KSTREAM-REDUCE-")
        flags = OldValues()
        if windows is None:
            spec = m.store_spec(store, "key_value", key_serde, value_serde)

            def make(n: str = name) -> Any:
                return with_old_values(StreamAggregateNode(n, store, initializer, aggregator), flags)

            getter = store_getter(store)
            table_key_serde: Serde[Any] | None = key_serde
        else:
            retention = windows.retention_ms if m.retention_ms is None else m.retention_ms
            if retention < windows.size_ms + windows.grace_ms:
                raise TopologyError(
                    f"the retention of window store {store!r} ({retention} ms) must be at least "
                    "window size plus "
                    f"grace ({windows.size_ms + windows.grace_ms} ms)"
                )
            spec = m.store_spec(
                store,
                "window",
                key_serde,
                value_serde,
                window_size_ms=windows.size_ms,
                retention_ms=retention,
            )

            def make(n: str = name) -> Any:
                return with_old_values(
                    WindowedAggregateNode(n, store, windows, initializer, aggregator, emit_final), flags
                )

            getter = windowed_store_getter(store)
            table_key_serde = TimeWindowedSerde(key_serde, windows.size_ms)
        graph.topology.add_state_store(spec)
        graph.topology.add_node(NodeSpec(name, "processor", make, [parent], stores=[store]))
        windowing = None if windows is None else (windows.grace_ms, False)
        return KTable(
            graph, name, table_key_serde, value_serde, sources, getter, [store], flags, store_name=store,
            windowing=windowing,
        )  # fmt: skip


class TimeWindowedKStream:
    """A grouped stream over tumbling or hopping windows; results are keyed by ``Windowed(key, window)``."""

    def __init__(
        self, grouped: KGroupedStream, windows: TimeWindows, emit: EmitStrategy | None = None
    ) -> None:
        self._grouped = grouped
        self.windows = windows
        self._emit_final = emit is not None and emit.on_close

    def emit_strategy(self, emit: EmitStrategy) -> TimeWindowedKStream:
        """``EmitStrategy.on_window_close()``: forward only each window's final result once it closed."""
        return TimeWindowedKStream(self._grouped, self.windows, emit)

    def count(self, materialized: Materialized | str | None = None) -> KTable:
        return self._grouped._aggregate(
            _count_init, _count_adder, materialized, long(), self.windows, self._emit_final
        )

    def reduce(
        self, reducer: Callable[[Any, Any], Any], materialized: Materialized | str | None = None
    ) -> KTable:
        return self._grouped._aggregate(
            None, _reducer(reducer), materialized, self._grouped.value_serde, self.windows, self._emit_final
        )

    def aggregate(
        self,
        initializer: Callable[[], Any],
        aggregator: Callable[[Any, Any, Any], Any],
        materialized: Materialized | str | None = None,
    ) -> KTable:
        return self._grouped._aggregate(
            initializer, aggregator, materialized, None, self.windows, self._emit_final
        )


class SessionWindowedKStream:
    """A grouped stream aggregated per session; results are keyed by ``Windowed(key, Window(start, end))``
    with both ends inclusive, and merged-away sessions are forwarded as tombstones."""

    def __init__(self, grouped: KGroupedStream, windows: SessionWindows) -> None:
        self._grouped = grouped
        self.windows = windows

    def count(self, materialized: Materialized | str | None = None) -> KTable:
        return self._aggregate(_count_init, _count_adder, _count_merger, materialized, long())

    def reduce(
        self, reducer: Callable[[Any, Any], Any], materialized: Materialized | str | None = None
    ) -> KTable:
        merge = _reducer(reducer)
        return self._aggregate(None, merge, merge, materialized, self._grouped.value_serde)

    def aggregate(
        self,
        initializer: Callable[[], Any],
        aggregator: Callable[[Any, Any, Any], Any],
        merger: Callable[[Any, Any, Any], Any],
        materialized: Materialized | str | None = None,
    ) -> KTable:
        """``aggregator(key, value, aggregate)``; ``merger(key, aggregate1, aggregate2)`` combines two
        sessions that a record bridges."""
        return self._aggregate(initializer, aggregator, merger, materialized, None)

    def _aggregate(
        self,
        initializer: Callable[[], Any] | None,
        aggregator: Callable[[Any, Any, Any], Any],
        merger: Callable[[Any, Any, Any], Any],
        materialized: Materialized | str | None,
        default_value_serde: Serde[Any] | None,
    ) -> KTable:
        grouped = self._grouped
        stream = grouped._stream
        graph: StreamGraph = stream._graph
        windows = self.windows
        m = as_materialized(materialized)
        store = m.name or graph.new_name("KSTREAM-AGGREGATE-STATE-STORE-")
        key_serde = m.key_serde or grouped.key_serde
        value_serde = m.value_serde or default_value_serde
        retention = windows.retention_ms if m.retention_ms is None else m.retention_ms
        if retention < windows.retention_ms:
            raise TopologyError(
                f"the retention of session store {store!r} ({retention} ms) must be at least gap plus grace "
                f"({windows.retention_ms} ms)"
            )
        parent, sources = stream._for_stateful(grouped._name or store, key_serde, grouped.value_serde)
        name = graph.new_name("KSTREAM-AGGREGATE-" if initializer is not None else "KSTREAM-REDUCE-")
        flags = OldValues()
        graph.topology.add_state_store(
            m.store_spec(store, "session", key_serde, value_serde, retention_ms=retention)
        )

        def make() -> Any:
            node = SessionWindowAggregateNode(name, store, windows, initializer, aggregator, merger)
            return with_old_values(node, flags)

        graph.topology.add_node(NodeSpec(name, "processor", make, [parent], stores=[store]))
        key = SessionWindowedSerde(key_serde)
        getter = store_getter(store)
        return KTable(graph, name, key, value_serde, sources, getter, [store], flags, store_name=store,
                      windowing=(windows.grace_ms, True))  # fmt: skip


class KGroupedTable:
    """A re-grouped table; each aggregation subtracts a row's old value and adds its new value."""

    def __init__(
        self,
        graph: StreamGraph,
        node: str,
        key_serde: Serde[Any] | None,
        value_serde: Serde[Any] | None,
        name: str | None,
    ) -> None:
        self._graph = graph
        self._node = node
        self.key_serde = key_serde
        self.value_serde = value_serde
        self._name = name

    def count(self, materialized: Materialized | str | None = None) -> KTable:
        return self._aggregate(
            _count_init, _count_adder, _count_subtractor, materialized, long(), "KTABLE-AGGREGATE-"
        )

    def reduce(
        self,
        adder: Callable[[Any, Any], Any],
        subtractor: Callable[[Any, Any], Any],
        materialized: Materialized | str | None = None,
    ) -> KTable:
        """``adder(aggregate, value)`` / ``subtractor(aggregate, value)``."""
        return self._aggregate(
            None, _reducer(adder), _reducer(subtractor), materialized, self.value_serde, "KTABLE-REDUCE-"
        )

    def aggregate(
        self,
        initializer: Callable[[], Any],
        adder: Callable[[Any, Any, Any], Any],
        subtractor: Callable[[Any, Any, Any], Any],
        materialized: Materialized | str | None = None,
    ) -> KTable:
        """``adder(key, value, aggregate)`` / ``subtractor(key, value, aggregate)`` from ``initializer()``."""
        return self._aggregate(initializer, adder, subtractor, materialized, None, "KTABLE-AGGREGATE-")

    def _aggregate(
        self,
        initializer: Callable[[], Any] | None,
        adder: Callable[[Any, Any, Any], Any],
        subtractor: Callable[[Any, Any, Any], Any],
        materialized: Materialized | str | None,
        default_value_serde: Serde[Any] | None,
        prefix: str,
    ) -> KTable:
        graph = self._graph
        topology = graph.topology
        m = as_materialized(materialized)
        store = m.name or graph.new_name(f"{prefix}STATE-STORE-")
        key_serde = m.key_serde or self.key_serde
        value_serde = m.value_serde or default_value_serde
        ref = topology.reserve_repartition_topic(f"{self._name or store}-repartition")
        change_serde = ChangeSerde(self.value_serde)
        sink = graph.new_name("KTABLE-SINK-")
        source = graph.new_name("KTABLE-SOURCE-")
        name = graph.new_name(prefix)
        topology.add_repartition_topic(ref, sink, source, self._node, key_serde, change_serde)
        topology.add_state_store(m.store_spec(store, "key_value", key_serde, value_serde))
        flags = OldValues()
        topology.add_node(
            NodeSpec(
                name,
                "processor",
                lambda: with_old_values(
                    TableAggregateNode(name, store, initializer, adder, subtractor), flags
                ),
                [source],
                stores=[store],
            )
        )
        return KTable(
            graph,
            name,
            key_serde,
            value_serde,
            frozenset([ref]),
            store_getter(store),
            [store],
            flags,
            store_name=store,
        )
