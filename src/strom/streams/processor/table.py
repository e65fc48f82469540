"""KTable nodes. Values flowing between them are ``Change(new, old)``; ``old`` is filled only where a
downstream operator needs it (``send_old_values``, enabled by ``KTable.group_by``), as in Kafka Streams.

A tombstone (``new is None``) deletes the row in the materialising store and travels downstream as such.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NamedTuple

from strom.streams.errors import SerializationError
from strom.streams.processor.node import Node
from strom.streams.serdes import Serde


class Change(NamedTuple):
    new: Any
    old: Any


class StoreForwardingNode(Node):
    """A node whose output comes from its store: the store forwards each write as a ``Change`` when it
    reaches it (at once, or at cache flush), so cached writes of one key collapse into one output.
    ``old`` is sent only while ``send_old_values`` is set."""

    __slots__ = ("send_old_values", "store", "store_name")

    def __init__(self, name: str, store_name: str) -> None:
        super().__init__(name)
        self.store_name = store_name
        self.send_old_values = False

    def init(self, ctx: Any) -> None:
        super().init(ctx)
        self.store = ctx.get_store(self.store_name)
        self.store.set_flush_listener(self._emit)

    def _emit(self, key: Any, new: Any, old: Any, timestamp: int) -> None:
        change = tuple.__new__(Change, (new, old if self.send_old_values else None))
        for child in self.children:
            child.process(key, change, timestamp)


class TableSourceNode(StoreForwardingNode):
    """Materialises a topic as a table: each record upserts its key, a null value deletes it; null keys are
    dropped and counted. Output is forwarded by the store when the write reaches it (at once, or at cache
    flush)."""

    __slots__ = ()

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        if key is None:
            self.ctx.record_dropped("table record with a null key", key)
            return
        store = self.store
        store.update(key, store.lookup(key), value, timestamp)


class TableFilterNode(Node):
    __slots__ = ("keep_when", "predicate", "send_old_values")

    def __init__(self, name: str, predicate: Callable[[Any, Any], bool], keep_when: bool) -> None:
        super().__init__(name)
        self.predicate = predicate
        self.keep_when = keep_when
        self.send_old_values = False

    def _apply(self, key: Any, value: Any) -> Any:
        if value is None or bool(self.predicate(key, value)) is not self.keep_when:
            return None
        return value

    def process(self, key: Any, value: Change, timestamp: int) -> None:
        new = self._apply(key, value.new)
        old = self._apply(key, value.old) if self.send_old_values else None
        if self.send_old_values and new is None and old is None:
            return
        self.forward(key, Change(new, old), timestamp)


class TableMapValuesNode(Node):
    __slots__ = ("mapper", "send_old_values", "with_key")

    def __init__(self, name: str, mapper: Callable[..., Any], with_key: bool) -> None:
        super().__init__(name)
        self.mapper = mapper
        self.with_key = with_key
        self.send_old_values = False

    def _apply(self, key: Any, value: Any) -> Any:
        if value is None:
            return None
        return self.mapper(key, value) if self.with_key else self.mapper(value)

    def process(self, key: Any, value: Change, timestamp: int) -> None:
        old = self._apply(key, value.old) if self.send_old_values else None
        self.forward(key, Change(self._apply(key, value.new), old), timestamp)


class ToStreamNode(Node):
    __slots__ = ()

    def process(self, key: Any, value: Change, timestamp: int) -> None:
        new = value.new
        for child in self.children:
            child.process(key, new, timestamp)


class TableRepartitionMapNode(Node):
    """``KTable.group_by``: re-keys each change with ``selector(key, value) -> (group key, group value)``.

    The old row leaves its old group and the new row joins its new group; when both go to the same group they
    travel as one ``Change`` so the aggregate updates once. Pairs with a null key or value are skipped.
    """

    __slots__ = ("selector",)

    def __init__(self, name: str, selector: Callable[[Any, Any], tuple[Any, Any]]) -> None:
        super().__init__(name)
        self.selector = selector

    def process(self, key: Any, value: Change, timestamp: int) -> None:
        new_pair = None if value.new is None else self.selector(key, value.new)
        old_pair = None if value.old is None else self.selector(key, value.old)
        new_ok = new_pair is not None and new_pair[0] is not None and new_pair[1] is not None
        old_ok = old_pair is not None and old_pair[0] is not None and old_pair[1] is not None
        if new_ok and old_ok and new_pair[0] == old_pair[0]:  # type: ignore[index]
            self.forward(new_pair[0], Change(new_pair[1], old_pair[1]), timestamp)  # type: ignore[index]
            return
        if old_ok:
            self.forward(old_pair[0], Change(None, old_pair[1]), timestamp)  # type: ignore[index]
        if new_ok:
            self.forward(new_pair[0], Change(new_pair[1], None), timestamp)  # type: ignore[index]


_LEN = struct.Struct(">i")


class ChangeSerde(Serde[Change]):
    """Serialises a ``Change`` for a table repartition topic (strom's internal format, not Kafka's): ``4-byte
    length of new (-1 = null) || new || old`` where an empty remainder means old is null; a present but empty
    old value is marked by the one-byte suffix 0x01 after it (0x00 otherwise)."""

    name = "change"

    def __init__(self, inner: Serde[Any] | None) -> None:
        self.inner = inner

    def with_inner(self, inner: Serde[Any]) -> ChangeSerde:
        return ChangeSerde(inner)

    def serialize(self, topic: str, value: Change | None) -> bytes | None:
        if value is None:
            return None
        assert self.inner is not None, "change serde without an inner serde; resolve it with resolve_serde"
        inner = self.inner.serialize
        new = inner(topic, value.new)
        old = inner(topic, value.old)
        head = _LEN.pack(-1) if new is None else _LEN.pack(len(new)) + new
        return head + (b"\x00" if old is None else old + b"\x01")

    def deserialize(self, topic: str, data: bytes | None) -> Change | None:
        if data is None:
            return None
        if len(data) < 5:
            raise SerializationError(f"change record of {len(data)} bytes is too short")
        size = _LEN.unpack_from(data)[0]
        pos = 4 if size < 0 else 4 + size
        if size > len(data) - 5:
            raise SerializationError(
                f"change record: new value length {size} exceeds the {len(data)}-byte record"
            )
        assert self.inner is not None, "change serde without an inner serde; resolve it with resolve_serde"
        inner = self.inner.deserialize
        new = None if size < 0 else inner(topic, data[4:pos])
        old = inner(topic, data[pos:-1]) if data[-1] == 1 else None
        return Change(new, old)
