"""Typed window store: values per (key, window start), with the same cache and change-logging layers as
``kv_store.KeyValueStore``.

Changelog records follow Kafka Streams' window-store format so the topic is readable by Java tools: key =
``serialised key || 8-byte window start || 4-byte sequence number (0)``, value = serialised value, timestamp =
the value's timestamp. The changelog topic is ``compact,delete`` with retention = store retention + 1 day.

Invariants: as ``KeyValueStore``; in addition windows older than the retention (by the largest window start
written) are dropped by the backend and reads of them return None.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from strom.streams.errors import StoreError
from strom.streams.serdes import Serde
from strom.streams.state.cache import CachingStore, RecordCacheBudget
from strom.streams.state.kv_store import Changelogger, FlushListener, ValueAndTimestamp
from strom.streams.state.window_bytes import WindowBytesStore
from strom.streams.windows import Window, Windowed

_TS = struct.Struct(">q")
_SEQ0 = b"\x00\x00\x00\x00"
_MISSING: Any = object()


def changelog_key(key: bytes, start: int) -> bytes:
    """Kafka's ``WindowKeySchema.toStoreKeyBinary(key, start, seqnum=0)``."""
    return key + _TS.pack(start) + _SEQ0


class WindowStore(CachingStore[WindowBytesStore]):
    """A named, typed window store. ``put(key, None, start)`` deletes that window's value."""

    kind = "window"

    def __init__(
        self,
        name: str,
        backend: WindowBytesStore,
        key_serde: Serde[Any],
        value_serde: Serde[Any],
        window_size_ms: int,
        retention_ms: int,
        budget: RecordCacheBudget | None,
        changelog: Changelogger | None,
        current_timestamp: Callable[[], int] = lambda: 0,
    ) -> None:
        # cache: (key, start) -> [value, timestamp, flushed value or _MISSING, dirty, serialised key or None]
        super().__init__(name, backend, key_serde, value_serde, budget, changelog, current_timestamp)
        self.window_size_ms = window_size_ms
        self.retention_ms = retention_ms

    @property
    def persistent(self) -> bool:
        return bool(getattr(self.backend, "persistent", False))

    def set_flush_listener(self, listener: FlushListener | None) -> None:
        """The listener receives ``Windowed`` keys."""
        self._listener = listener

    def lookup(self, key: Any, window_start: int) -> list[Any]:
        """Fast path for DSL processors: the cache entry ``[value, timestamp, ...]`` of ``key`` in the window
        starting at ``window_start`` (None value: absent), loaded on a miss. Pass it to ``update``."""
        ck = (key, window_start)
        entry = self._cache.get(ck)
        if entry is not None:
            return entry
        kb = self.key_serde.serialize(self._topic, key)
        raw = self.backend.get(kb, window_start)  # type: ignore[arg-type]
        if raw is None:
            entry = [None, -1, None, False, kb]
        else:
            value = self.value_serde.deserialize(self._topic, raw[8:])
            entry = [value, _TS.unpack_from(raw)[0], value, False, kb]
        if self._budget is not None:
            self._insert(ck, entry)
        return entry

    def get_with_timestamp(self, key: Any, window_start: int) -> ValueAndTimestamp | None:
        if key is None:
            return None
        entry = self.lookup(key, window_start)
        return None if entry[0] is None else tuple.__new__(ValueAndTimestamp, (entry[0], entry[1]))

    def get(self, key: Any, window_start: int) -> Any:
        """The value of ``key`` in the window starting at ``window_start`` (Kafka's ``fetch(key, time)``)."""
        if key is None:
            return None
        return self.lookup(key, window_start)[0]

    def update(self, key: Any, window_start: int, entry: list[Any], value: Any, timestamp: int) -> None:
        """Fast path: write ``value`` for the entry ``lookup`` returned."""
        if self._budget is None:
            self._write_through(key, window_start, value, timestamp, entry[0], entry[4])
            return
        entry[0] = value
        entry[1] = timestamp
        if not entry[3]:
            entry[3] = True
            self._dirty[(key, window_start)] = entry

    def put(self, key: Any, value: Any, window_start: int, timestamp: int | None = None) -> None:
        if key is None:
            raise StoreError(f"store {self.name!r}: null keys are not allowed")
        if not self._open:
            raise StoreError(f"store {self.name!r} is closed")
        ts = self._now() if timestamp is None else timestamp
        if self._budget is None:
            self._write_through(key, window_start, value, ts, _MISSING, None)
            return
        ck = (key, window_start)
        entry = self._cache.get(ck)
        if entry is None:
            entry = [value, ts, _MISSING, True, None]
            self._insert(ck, entry)
            self._dirty[ck] = entry
        else:
            entry[0] = value
            entry[1] = ts
            if not entry[3]:
                entry[3] = True
                self._dirty[ck] = entry

    def _write_through(self, key: Any, start: int, value: Any, ts: int, old: Any, kb: bytes | None) -> None:
        topic = self._topic
        if kb is None:
            kb = self.key_serde.serialize(topic, key)
            assert kb is not None
        listener = self._listener
        if listener is not None and old is _MISSING:
            raw = self.backend.get(kb, start)
            old = None if raw is None else self.value_serde.deserialize(topic, raw[8:])
        vb = None if value is None else self.value_serde.serialize(topic, value)
        self.backend.put(kb, start, None if vb is None else _TS.pack(ts) + vb)
        log = self._changelog
        if log is not None:
            log.send(log.topic, changelog_key(kb, start), vb, ts, log.partition)
        if listener is not None:
            listener(Windowed(key, Window(start, start + self.window_size_ms)), value, old, ts)

    def flush_cache(self) -> None:
        dirty = self._dirty
        if not dirty:
            return
        self._dirty = {}  # writes made by downstream processors during the flush go to the next flush
        topic = self._topic
        kser = self.key_serde.serialize
        vser = self.value_serde.serialize
        pack = _TS.pack
        log = self._changelog
        listener = self._listener
        backend = self.backend
        size = self.window_size_ms
        batch: list[tuple[bytes, int, bytes | None]] = []
        total = 0
        new_tuple = tuple.__new__
        for (key, start), entry in dirty.items():
            value, ts, old, _dirty, kb = entry
            if kb is None:
                kb = entry[4] = kser(topic, key)
            vb = None if value is None else vser(topic, value)
            key_and_start = kb + pack(start)
            batch.append((key_and_start, start, None if vb is None else pack(ts) + vb))
            total += len(kb) + (0 if vb is None else len(vb))
            if log is not None:
                log.send(log.topic, key_and_start + _SEQ0, vb, ts, log.partition)
            if listener is not None:
                if old is _MISSING:
                    raw = backend.get(kb, start)
                    old = None if raw is None else self.value_serde.deserialize(topic, raw[8:])
                window = new_tuple(Window, (start, start + size))
                listener(new_tuple(Windowed, (key, window)), value, old, ts)
            entry[2] = value
            entry[3] = False
        backend.write_raw(batch)
        if self._budget is not None:
            self._budget.observe(total, len(batch))

    def fetch(self, key: Any, time_from: int, time_to: int) -> Iterator[tuple[int, Any]]:
        """``(window start, value)`` for ``key`` with ``time_from <= start <= time_to``, ascending."""
        topic = self._topic
        kb = self.key_serde.serialize(topic, key)
        assert kb is not None
        found = {start: raw for start, raw in self.backend.fetch(kb, time_from, time_to)}
        merged: dict[int, Any] = {s: self.value_serde.deserialize(topic, raw[8:]) for s, raw in found.items()}
        for (k, start), entry in self._dirty.items():
            if k == key and time_from <= start <= time_to:
                merged[start] = entry[0]
        for start in sorted(merged):
            if merged[start] is not None:
                yield start, merged[start]

    def fetch_all(self, time_from: int, time_to: int) -> Iterator[tuple[Windowed, Any]]:
        """Every ``(Windowed key, value)`` whose window start is in ``[time_from, time_to]``, by start."""
        for windowed, found in self.fetch_all_with_timestamps(time_from, time_to):
            yield windowed, found.value

    def fetch_all_with_timestamps(
        self, time_from: int, time_to: int
    ) -> Iterator[tuple[Windowed, ValueAndTimestamp]]:
        """As ``fetch_all``, with each value's timestamp."""
        topic = self._topic
        kde, vde = self.key_serde.deserialize, self.value_serde.deserialize
        size = self.window_size_ms
        merged: dict[tuple[int, bytes], tuple[Any, Any, int]] = {}
        for kb, start, raw in self.backend.fetch_all(time_from, time_to):
            merged[(start, kb)] = (kde(topic, kb), vde(topic, raw[8:]), _TS.unpack_from(raw)[0])
        for (key, start), entry in self._dirty.items():
            if time_from <= start <= time_to:
                dirty_kb = self.key_serde.serialize(topic, key)
                assert dirty_kb is not None
                merged[(start, dirty_kb)] = (key, entry[0], entry[1])
        for start, kb in sorted(merged):
            key, value, ts = merged[(start, kb)]
            if value is not None:
                yield Windowed(key, Window(start, start + size)), ValueAndTimestamp(value, ts)

    def all(self) -> Iterator[tuple[Windowed, Any]]:
        return self.fetch_all(0, 2**63 - 1)

    def restore(self, records: Iterable[tuple[bytes, bytes | None, int]]) -> int:
        """Apply changelog records (Kafka's window key layout) straight to the backend; returns how many."""
        pack = _TS.pack
        unpack = _TS.unpack_from
        batch: list[tuple[bytes, int, bytes | None]] = []
        append = batch.append
        for k, v, ts in records:
            size = len(k)
            if size < 12:
                raise StoreError(f"window changelog key of {size} bytes is shorter than the 12-byte suffix")
            append((k[:-4], unpack(k, size - 12)[0], None if v is None else pack(ts) + v))
        self.backend.write_raw(batch)
        self._drop_cache()
        return len(batch)

    def __repr__(self) -> str:
        return f"<WindowStore {self.name!r}>"
