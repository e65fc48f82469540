"""Aggregation nodes: KStream aggregate (plain, time-windowed, session-windowed) and KTable aggregate with
adder and subtractor.

Each node reads the current aggregate from its store, computes the new one and writes it back; the store
forwards ``Change(new, old)`` downstream when the write reaches it (immediately without a cache, at flush with
one). Output timestamps follow Kafka Streams: the maximum timestamp of the records that contributed. Stream
records with a null key or null value are dropped and counted; a windowed record whose window has closed
(``end <= observed stream time - grace``) is dropped for that window and counted per window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strom.streams.processor.table import Change, StoreForwardingNode
from strom.streams.windows import TimeWindows, Window, Windowed

WINDOWED_EMIT_INTERVAL_CONFIG = "__emit.interval.ms.kstreams.windowed.aggregation__"
"""Kafka's internal config: the least wall-clock time between two emissions of closed windows."""

Initializer = Callable[[], Any]
Aggregator = Callable[[Any, Any, Any], Any]  # (key, value, aggregate) -> aggregate


class StreamAggregateNode(StoreForwardingNode):
    """``KGroupedStream.aggregate``; ``reduce`` passes ``initializer=None`` (the first value starts the
    aggregate) and ``count`` passes ``0`` and ``+1``."""

    __slots__ = ("aggregator", "initializer")

    def __init__(
        self, name: str, store_name: str, initializer: Initializer | None, aggregator: Aggregator
    ) -> None:
        super().__init__(name, store_name)
        self.initializer = initializer
        self.aggregator = aggregator

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        if key is None or value is None:
            self.ctx.record_dropped("aggregation input with a null key or value", key)
            return
        store = self.store
        entry = store.lookup(key)
        old = entry.value
        if old is None:
            new = value if self.initializer is None else self.aggregator(key, value, self.initializer())
        else:
            new = self.aggregator(key, value, old)
            if entry.timestamp > timestamp:
                timestamp = entry.timestamp
        store.update(key, entry, new, timestamp)


class WindowedAggregateNode(StoreForwardingNode):
    """``TimeWindowedKStream.aggregate`` (and ``reduce``/``count`` as above) over tumbling or hopping windows.
    """

    __slots__ = ("aggregator", "emit_final", "emit_interval", "initializer", "last_emit_close", "next_emit",
                 "observed_stream_time", "windows")  # fmt: skip

    def __init__(
        self,
        name: str,
        store_name: str,
        windows: TimeWindows,
        initializer: Initializer | None,
        aggregator: Aggregator,
        emit_final: bool = False,
    ) -> None:
        super().__init__(name, store_name)
        self.windows = windows
        self.initializer = initializer
        self.aggregator = aggregator
        self.observed_stream_time = -1
        self.emit_final = emit_final
        self.last_emit_close = -1
        self.next_emit = -1
        self.emit_interval = 0

    def init(self, ctx: Any) -> None:
        super().init(ctx)
        if self.emit_final:
            self.store.set_flush_listener(None)  # updates are not forwarded; closed windows are, below
            self.emit_interval = int(ctx.config.get(WINDOWED_EMIT_INTERVAL_CONFIG, 1000))

    def _emit_closed_windows(self, close_time: int) -> None:
        """Forward the final result of every window that closed since the last emission (KIP-825). The last
        emission time lives in memory, so after a restart closed windows still in the store are emitted again
        (at-least-once)."""
        size = self.windows.size_ms
        upper = close_time - size
        if upper < 0 or (self.last_emit_close >= 0 and close_time <= self.last_emit_close):
            return
        now = self.ctx.wall_clock()
        if now < self.next_emit:
            return
        self.next_emit = now + self.emit_interval
        lower = 0 if self.last_emit_close < 0 else max(0, self.last_emit_close - size) + 1
        self.last_emit_close = close_time
        new_tuple = tuple.__new__
        for windowed, found in self.store.fetch_all_with_timestamps(lower, upper):
            change = new_tuple(Change, (found.value, None))
            for child in self.children:
                child.process(windowed, change, found.timestamp)

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        if key is None or value is None:
            self.ctx.record_dropped("windowed aggregation input with a null key or value", key)
            return
        if timestamp > self.observed_stream_time:
            self.observed_stream_time = timestamp
        windows = self.windows
        close_time = self.observed_stream_time - windows.grace_ms
        size = windows.size_ms
        store = self.store
        if windows.advance_ms == size:
            starts: Any = (timestamp - timestamp % size,)
        else:
            starts = windows.window_starts(timestamp)
        for start in starts:
            if start + size <= close_time:
                self.ctx.record_dropped(
                    f"window [{start},{start + size}) closed at stream time {close_time}", key, warn=False
                )
                continue
            entry = store.lookup(key, start)
            old = entry.value
            if old is None:
                new = value if self.initializer is None else self.aggregator(key, value, self.initializer())
                new_ts = timestamp
            else:
                new = self.aggregator(key, value, old)
                new_ts = entry.timestamp if entry.timestamp > timestamp else timestamp
            store.update(key, start, entry, new, new_ts)
        if self.emit_final:
            self._emit_closed_windows(close_time)


class TableAggregateNode(StoreForwardingNode):
    """``KGroupedTable.aggregate``: subtract the old row from its group, then add the new row (``reduce`` uses
    ``initializer=None`` and reducers of ``(aggregate, value)``)."""

    __slots__ = ("adder", "initializer", "subtractor")

    def __init__(
        self,
        name: str,
        store_name: str,
        initializer: Initializer | None,
        adder: Aggregator,
        subtractor: Aggregator,
    ) -> None:
        super().__init__(name, store_name)
        self.initializer = initializer
        self.adder = adder
        self.subtractor = subtractor

    def process(self, key: Any, value: Change, timestamp: int) -> None:
        if key is None:
            self.ctx.record_dropped("table aggregation input with a null key", key)
            return
        store = self.store
        entry = store.lookup(key)
        old_agg = entry.value
        new_ts = timestamp
        if value.old is not None and old_agg is not None:
            intermediate = self.subtractor(key, value.old, old_agg)
            new_ts = max(timestamp, entry.timestamp)
        else:
            intermediate = old_agg
        if value.new is not None:
            if intermediate is None:
                if self.initializer is None:
                    new_agg = value.new
                else:
                    new_agg = self.adder(key, value.new, self.initializer())
            else:
                new_agg = self.adder(key, value.new, intermediate)
                if old_agg is not None:
                    new_ts = max(timestamp, entry.timestamp)
        else:
            new_agg = intermediate
        store.update(key, entry, new_agg, new_ts)


class SessionWindowAggregateNode(StoreForwardingNode):
    """``SessionWindowedKStream.aggregate`` (``KStreamSessionWindowAggregate``): a record joins every session
    of its key within the inactivity gap; the sessions it bridges are merged (``merger``), removed (forwarded
    as tombstones for their old windowed keys) and replaced by one session. The result's timestamp is the
    session end. A record whose merged session ended before stream time minus grace is dropped and counted."""

    __slots__ = ("aggregator", "expire_every", "initializer", "last_expiry", "merger", "observed_stream_time",
                 "windows")  # fmt: skip

    def __init__(
        self,
        name: str,
        store_name: str,
        windows: Any,
        initializer: Initializer | None,
        aggregator: Aggregator,
        merger: Aggregator,
    ) -> None:
        super().__init__(name, store_name)
        self.windows = windows
        self.initializer = initializer
        self.aggregator = aggregator
        self.merger = merger
        self.observed_stream_time = -1
        self.last_expiry = -1
        self.expire_every = 1

    def init(self, ctx: Any) -> None:
        super().init(ctx)
        # Expired sessions are purged in whole sweeps, at most every half retention of stream time (Kafka
        # drops session segments of at least a minute the same way).
        self.expire_every = max(self.store.retention_ms // 2, 60_000)

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        if key is None or value is None:
            self.ctx.record_dropped("session aggregation input with a null key or value", key)
            return
        if timestamp > self.observed_stream_time:
            self.observed_stream_time = timestamp
        close_time = self.observed_stream_time - self.windows.grace_ms
        gap = self.windows.gap_ms
        store = self.store
        sessions = list(store.find_sessions(key, timestamp - gap, timestamp + gap))
        aggregate = None if self.initializer is None else self.initializer()
        start = end = timestamp
        for windowed, session_value in sessions:
            aggregate = session_value if aggregate is None else self.merger(key, aggregate, session_value)
            if windowed.window.start < start:
                start = windowed.window.start
            if windowed.window.end > end:
                end = windowed.window.end
        if end < close_time:
            self.ctx.record_dropped(f"session [{start},{end}] closed at {close_time}", key, warn=False)
            return
        if start != timestamp or end != timestamp:
            for windowed, _session_value in sessions:
                store.put(windowed, None, windowed.window.end)
        aggregate = value if aggregate is None else self.aggregator(key, value, aggregate)
        store.put(Windowed(key, Window(start, end)), aggregate, end)
        if self.observed_stream_time - self.last_expiry >= self.expire_every:
            self.last_expiry = self.observed_stream_time
            store.expire(self.observed_stream_time - store.retention_ms)
