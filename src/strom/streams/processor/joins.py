"""Joins: KStream-KTable and KStream-GlobalKTable (inner, left), as Kafka's ``KStreamKTableJoinProcessor``,
windowed KStream-KStream joins (inner, left, outer), as Kafka's ``KStreamKStreamJoin``, and KTable-KTable
joins.

Only stream records trigger output; table updates change the table and emit nothing. Rules:

- a stream record with a null value never joins and is dropped (counted);
- the join key is the record key (KTable) or ``key_selector(key, value)`` (GlobalKTable); a null join key
  drops the record, except that a left join passes a null-keyed record through with a null table value
  (KIP-962);
- inner: no table row, no output; left: ``joiner(value, None)``;
- the output keeps the stream record's key and timestamp.

KTable-KTable joins (inner, left, outer; ``KTableKTable*Join``) recompute the result on an update of either
side and retract it with a tombstone when it stops holding; foreign-key joins will live here too.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from strom.streams.errors import SerializationError
from strom.streams.processor.node import Node
from strom.streams.processor.table import Change
from strom.streams.serdes import Serde
from strom.streams.state.kv_store import ValueAndTimestamp

ValueGetter = Callable[[Any], Any]  # key -> ValueAndTimestamp | None
Joiner = Callable[[Any, Any], Any]  # (stream value, table value) -> joined value


class StreamTableJoinNode(Node):
    __slots__ = ("getter", "getter_factory", "joiner", "key_selector", "left")

    def __init__(
        self,
        name: str,
        getter_factory: Callable[[Any], ValueGetter],
        joiner: Joiner,
        left: bool,
        key_selector: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        super().__init__(name)
        self.getter_factory = getter_factory
        self.joiner = joiner
        self.left = left
        self.key_selector = key_selector

    def init(self, ctx: Any) -> None:
        super().init(ctx)
        self.getter = self.getter_factory(ctx)

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        if value is None:
            self.ctx.record_dropped("join input with a null value", key)
            return
        join_key = key if self.key_selector is None else self.key_selector(key, value)
        if join_key is None:
            if self.left and key is None:
                self.forward(key, self.joiner(value, None), timestamp)
            else:
                self.ctx.record_dropped("join input with a null join key", key)
            return
        found = self.getter(join_key)
        if found is None:
            if self.left:
                self.forward(key, self.joiner(value, None), timestamp)
            return
        self.forward(key, self.joiner(value, found.value), timestamp)


# -- stream-stream joins -------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------

_LIST_LEN = struct.Struct(">i")
_OUTER_KEY = struct.Struct(">q?")


class ValueListSerde(Serde[list[Any]]):
    """The values one join window store keeps per (key, timestamp), in arrival order: ``4-byte count`` then
    per value ``4-byte length || bytes``. (Kafka keeps duplicates as separate keys with a sequence number;
    strom keeps them as one list, so its join-store changelogs are not byte-compatible with Kafka's.)"""

    name = "value-list"

    def __init__(self, inner: Serde[Any] | None) -> None:
        self.inner = inner

    def with_inner(self, inner: Serde[Any]) -> ValueListSerde:
        return ValueListSerde(inner)

    def serialize(self, topic: str, value: list[Any] | None) -> bytes | None:
        if value is None:
            return None
        assert self.inner is not None, "value-list serde without an inner serde (resolve_serde sets it)"
        parts = [_LIST_LEN.pack(len(value))]
        for item in value:
            data = self.inner.serialize(topic, item) or b""
            parts.append(_LIST_LEN.pack(len(data)))
            parts.append(data)
        return b"".join(parts)

    def deserialize(self, topic: str, data: bytes | None) -> list[Any] | None:
        if data is None:
            return None
        assert self.inner is not None, "value-list serde without an inner serde (resolve_serde sets it)"
        try:
            count = _LIST_LEN.unpack_from(data)[0]
            pos, items = 4, []
            for _ in range(count):
                size = _LIST_LEN.unpack_from(data, pos)[0]
                pos += 4
                if pos + size > len(data):
                    raise SerializationError(f"value list truncated: item of {size} bytes at {pos}")
                items.append(self.inner.deserialize(topic, data[pos : pos + size]))
                pos += size
        except struct.error as e:
            raise SerializationError(f"value list of {len(data)} bytes is corrupt: {e}") from None
        return items


class OuterKeySerde(Serde[tuple[int, bool, Any]]):
    """Kafka's ``TimestampedKeyAndJoinSide``: ``8-byte timestamp || side byte (1 = left) || key``, so that a
    scan of the store visits pending non-joined records in timestamp order."""

    name = "timestamped-key-and-join-side"

    def __init__(self, inner: Serde[Any] | None) -> None:
        self.inner = inner

    def with_inner(self, inner: Serde[Any]) -> OuterKeySerde:
        return OuterKeySerde(inner)

    def serialize(self, topic: str, value: tuple[int, bool, Any] | None) -> bytes | None:
        if value is None:
            return None
        assert self.inner is not None, "outer key serde without an inner serde; resolve it with resolve_serde"
        return _OUTER_KEY.pack(value[0], value[1]) + (self.inner.serialize(topic, value[2]) or b"")

    def deserialize(self, topic: str, data: bytes | None) -> tuple[int, bool, Any] | None:
        if data is None:
            return None
        assert self.inner is not None, "outer key serde without an inner serde; resolve it with resolve_serde"
        if len(data) < 9:
            raise SerializationError(f"outer-join store key of {len(data)} bytes is shorter than 9")
        ts, left = _OUTER_KEY.unpack_from(data)
        return ts, left, self.inner.deserialize(topic, data[9:])


class OuterValueSerde(Serde[tuple[bool, list[Any]]]):
    """``(is_left, values)`` of a pending non-joined record: a side byte, then the values as
    ``ValueListSerde`` with that side's value serde."""

    name = "left-or-right-value"

    def __init__(self, left: Serde[Any] | None, right: Serde[Any] | None) -> None:
        self.left = ValueListSerde(left)
        self.right = ValueListSerde(right)

    @property
    def inner(self) -> Serde[Any] | None:
        return None if self.left.inner is None or self.right.inner is None else self.left.inner

    def with_inner(self, inner: Serde[Any]) -> OuterValueSerde:
        return OuterValueSerde(self.left.inner or inner, self.right.inner or inner)

    def serialize(self, topic: str, value: tuple[bool, list[Any]] | None) -> bytes | None:
        if value is None:
            return None
        side = self.left if value[0] else self.right
        return (b"\x01" if value[0] else b"\x00") + (side.serialize(topic, value[1]) or b"")

    def deserialize(self, topic: str, data: bytes | None) -> tuple[bool, list[Any]] | None:
        if data is None:
            return None
        if not data:
            raise SerializationError("outer-join store value is empty")
        left = data[0] == 1
        values = (self.left if left else self.right).deserialize(topic, data[1:])
        return left, values or []


class JoinTimeTracker:
    """Stream time shared by the two sides of one stream-stream join in one task, and the smallest timestamp
    still pending in the outer-join store (``minTime`` in Kafka)."""

    __slots__ = ("min_time", "next_emit", "stream_time")

    def __init__(self) -> None:
        self.stream_time = -1
        self.min_time = 2**63 - 1
        self.next_emit = -1


class JoinWindowNode(Node):
    """Stores each record with a key and a value in its side's window store (at its timestamp), then passes it
    on to the join node."""

    __slots__ = ("store", "store_name")

    def __init__(self, name: str, store_name: str) -> None:
        super().__init__(name)
        self.store_name = store_name

    def init(self, ctx: Any) -> None:
        super().init(ctx)
        self.store = ctx.get_store(self.store_name)

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        if key is not None and value is not None:
            store = self.store
            entry = store.lookup(key, timestamp)
            store.update(key, timestamp, entry, [*(entry.value or ()), value], timestamp)
        for child in self.children:
            child.process(key, value, timestamp)


class StreamStreamJoinNode(Node):
    """One side of a windowed stream-stream join (``KStreamKStreamJoin``): looks up the other side's window
    store for records with the same key within the join window and emits ``joiner(left, right)`` at the later
    of the two timestamps. With ``outer`` set (left join on the left side, outer join on both), a record that
    found no partner is held in the shared outer store and emitted with a None partner once its window has
    closed in stream time, unless a partner arrives first."""

    __slots__ = (
        "after",
        "before",
        "emit_interval",
        "grace",
        "is_left",
        "join_name",
        "joiner",
        "other",
        "other_name",
        "outer",
        "outer_name",
        "outer_store",
        "tracker",
        "windows",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        join_name: str,
        is_left: bool,
        windows: Any,
        joiner: Joiner,
        other_store: str,
        outer: bool,
        outer_store: str | None,
    ) -> None:
        super().__init__(name)
        self.join_name = join_name
        self.is_left = is_left
        self.windows = windows
        self.before = windows.before_ms if is_left else windows.after_ms
        self.after = windows.after_ms if is_left else windows.before_ms
        self.grace = windows.grace_ms
        self.joiner = joiner
        self.other_name = other_store
        self.outer = outer
        self.outer_name = outer_store

    def init(self, ctx: Any) -> None:
        super().init(ctx)
        self.other = ctx.get_store(self.other_name)
        self.outer_store = None if self.outer_name is None else ctx.get_store(self.outer_name)
        self.tracker = ctx.shared.setdefault(self.join_name, JoinTimeTracker())
        self.emit_interval = int(ctx.config.get(EMIT_INTERVAL_CONFIG, 1000))

    def _join(self, mine: Any, others: Any) -> Any:
        return self.joiner(mine, others) if self.is_left else self.joiner(others, mine)

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        tracker = self.tracker
        if timestamp > tracker.stream_time:
            tracker.stream_time = timestamp
        if key is None or value is None:
            if self.outer and key is None and value is not None:
                self.forward(key, self._join(value, None), timestamp)  # KIP-962
            else:
                self.ctx.record_dropped("stream-stream join input with a null key or value", key)
            return
        outer_store = self.outer_store
        if outer_store is not None and timestamp == tracker.stream_time:
            self._emit_non_joined()
        time_from = max(0, timestamp - self.before)
        time_to = max(0, timestamp + self.after)
        found = False
        for other_ts, values in self.other.fetch(key, time_from, time_to):
            if outer_store is not None:
                other_key = (other_ts, not self.is_left, key)
                if outer_store.get(other_key) is not None:
                    outer_store.put(other_key, None, other_ts)
            out_ts = timestamp if timestamp > other_ts else other_ts
            for other_value in values:
                found = True
                self.forward(key, self._join(value, other_value), out_ts)
        if found or not self.outer:
            return
        if outer_store is None or time_to < tracker.stream_time:
            self.forward(key, self._join(value, None), timestamp)
            return
        if timestamp < tracker.min_time:
            tracker.min_time = timestamp
        mine = (timestamp, self.is_left, key)
        pending = outer_store.get(mine)
        outer_store.put(mine, (self.is_left, [*(pending[1] if pending else ()), value]), timestamp)

    def _emit_non_joined(self) -> None:
        tracker = self.tracker
        windows = self.windows
        if tracker.min_time + self.after + self.grace >= tracker.stream_time:
            return
        now = self.ctx.wall_clock()
        if now < tracker.next_emit:
            return
        tracker.next_emit = now + self.emit_interval
        tracker.min_time = 2**63 - 1
        left_open = right_open = False
        store = self.outer_store
        assert store is not None
        emitted = []
        for outer_key, (is_left, values) in store.all():
            ts, _side, key = outer_key
            tracker.min_time = ts
            if left_open and right_open:
                break
            lookback = windows.after_ms if is_left else windows.before_ms
            if ts + lookback + self.grace >= tracker.stream_time:
                if is_left:
                    left_open = True
                else:
                    right_open = True
                continue
            for value in values:
                self.forward(key, self.joiner(value, None) if is_left else self.joiner(None, value), ts)
            emitted.append((outer_key, ts))
        for outer_key, ts in emitted:
            store.put(outer_key, None, ts)


EMIT_INTERVAL_CONFIG = "__emit.interval.ms.kstreams.outer.join.spurious.results.fix__"
"""Kafka's internal config: the least wall-clock time between two scans for expired non-joined records."""


# -- table-table joins ---------------------------------------------------------------------------------------


class TableTableJoinNode(Node):
    """One side of a KTable-KTable join (``KTableKTable{Inner,Left,Outer}Join``): an update of this table
    looks up the other table's current row and emits the recomputed result as ``Change(new, old)`` at the
    later of the two timestamps. ``kind`` is ``inner``, ``left`` or ``outer``; for a left join the right side
    emits only while a left row exists, and a tombstone on either side retracts the result with a None value.
    """

    __slots__ = ("getter", "getter_factory", "is_left", "joiner", "kind", "send_old_values")

    def __init__(
        self,
        name: str,
        kind: str,
        is_left: bool,
        getter_factory: Callable[[Any], ValueGetter],
        joiner: Joiner,
    ) -> None:
        super().__init__(name)
        self.kind = kind
        self.is_left = is_left
        self.getter_factory = getter_factory
        self.joiner = joiner
        self.send_old_values = False

    def init(self, ctx: Any) -> None:
        super().init(ctx)
        self.getter = self.getter_factory(ctx)

    def _join(self, mine: Any, other: Any) -> Any:
        return self.joiner(mine, other) if self.is_left else self.joiner(other, mine)

    def _result(self, mine: Any, other: Any) -> Any:
        kind = self.kind
        if kind == "inner":
            return None if mine is None or other is None else self._join(mine, other)
        if kind == "outer":
            return None if mine is None and other is None else self._join(mine, other)
        # left join: the left row decides
        left = mine if self.is_left else other
        return None if left is None else self._join(mine, other)

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        if key is None:
            self.ctx.record_dropped("table-table join input with a null key", key)
            return
        found = self.getter(key)
        other = None if found is None else found.value
        if self.kind == "inner" or (self.kind == "left" and not self.is_left):
            if other is None:
                return
        elif other is None and value.new is None and value.old is None:
            return
        if found is not None and found.timestamp > timestamp:
            timestamp = found.timestamp
        new = self._result(value.new, other)
        old = self._result(value.old, other) if self.send_old_values else None
        self.forward(key, Change(new, old), timestamp)


def table_join_getter(
    kind: str, left: Callable[[Any], ValueGetter], right: Callable[[Any], ValueGetter], joiner: Joiner
) -> Callable[[Any], ValueGetter]:
    """The value getter of a table-table join result, computed from both sides' getters."""

    def factory(ctx: Any) -> ValueGetter:
        get_left, get_right = left(ctx), right(ctx)

        def get(key: Any) -> Any:
            found_left, found_right = get_left(key), get_right(key)
            lv = None if found_left is None else found_left.value
            rv = None if found_right is None else found_right.value
            if (kind == "inner" and (lv is None or rv is None)) or (kind == "left" and lv is None):
                return None
            if lv is None and rv is None:
                return None
            ts = max(-1 if found_left is None else found_left.timestamp,
                     -1 if found_right is None else found_right.timestamp)  # fmt: skip
            return ValueAndTimestamp(joiner(lv, rv), ts)

        return get

    return factory
