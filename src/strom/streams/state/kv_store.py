"""Typed key-value store: serdes, record cache and change-logging over a byte-level backend.

This is the store processors and the test driver see. Layers, outermost first (Kafka Streams has the same
stack as separate wrapper classes; here they share one object so the hot path is a dict lookup):

1. the record cache, a dict of deserialised entries; consecutive updates to a key collapse, and only flush (on
   commit, or when the shared budget is exceeded) serialises, writes the backend, sends the changelog record
   and calls the flush listener, which forwards ``(key, new, old, timestamp)`` downstream;
2. change-logging: every backend write is also sent to ``<application.id>-<store>-changelog`` through the
   task's record collector, key = serialised key, value = serialised value (None for a delete), timestamp =
   the value's timestamp, partition = the task's partition, as Kafka's timestamped changelog stores write it;
3. the backend, holding ``8-byte big-endian timestamp || value`` per key.

Invariants: a read sees the latest write (cache first, then backend); after ``flush()`` the backend, the
changelog and downstream have seen every write, in the order keys were first dirtied; values in the cache are
never lost by eviction (a dirty entry is flushed before it is dropped).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from strom.streams.errors import StoreError
from strom.streams.serdes import Serde
from strom.streams.state.bytes_store import KeyValueBytesStore
from strom.streams.state.cache import CachingStore, RecordCacheBudget

_TS = struct.Struct(">q")
_MISSING: Any = object()

FlushListener = Callable[[Any, Any, Any, int], None]
"""Called as ``listener(key, new_value, old_value, timestamp)`` for each write that reaches the backend."""


class ValueAndTimestamp(NamedTuple):
    value: Any
    timestamp: int


class Changelogger:
    """Where a store's writes are logged: a collector, a topic and the task's partition."""

    __slots__ = ("partition", "send", "topic")

    def __init__(self, send: Callable[..., None], topic: str, partition: int) -> None:
        self.send = send
        self.topic = topic
        self.partition = partition


class KeyValueStore(CachingStore[KeyValueBytesStore]):
    """A named, typed, timestamped key-value store. ``put(key, None)`` deletes; None keys are refused."""

    kind = "key_value"

    def __init__(
        self,
        name: str,
        backend: KeyValueBytesStore,
        key_serde: Serde[Any],
        value_serde: Serde[Any],
        budget: RecordCacheBudget | None,
        changelog: Changelogger | None,
        current_timestamp: Callable[[], int] = lambda: 0,
    ) -> None:
        # cache: key -> [value, timestamp, flushed value (or _MISSING), dirty, serialised key (or None)]
        super().__init__(name, backend, key_serde, value_serde, budget, changelog, current_timestamp)

    @property
    def persistent(self) -> bool:
        return bool(self.backend.persistent)

    @property
    def caching(self) -> bool:
        return self._budget is not None

    def set_flush_listener(self, listener: FlushListener | None) -> None:
        self._listener = listener

    # -- reads -----------------------------------------------------------------------------------------

    def lookup(self, key: Any) -> list[Any]:
        """Fast path for DSL processors: the cache entry ``[value, timestamp, ...]`` of ``key`` (value None
        when absent), loaded from the backend on a miss. Pass it back to ``update``."""
        entry = self._cache.get(key)
        if entry is not None:
            return entry
        kb = self.key_serde.serialize(self._topic, key)
        raw = self.backend.get(kb)  # type: ignore[arg-type]
        if raw is None:
            entry = [None, -1, None, False, kb]
        else:
            value = self.value_serde.deserialize(self._topic, raw[8:])
            entry = [value, _TS.unpack_from(raw)[0], value, False, kb]
        if self._budget is not None:
            self._insert(key, entry)
        return entry

    def get_with_timestamp(self, key: Any) -> ValueAndTimestamp | None:
        if key is None:
            return None
        entry = self.lookup(key)
        return None if entry[0] is None else tuple.__new__(ValueAndTimestamp, (entry[0], entry[1]))

    def get(self, key: Any) -> Any:
        if key is None:
            return None
        return self.lookup(key)[0]

    # -- writes ----------------------------------------------------------------------------------------

    def update(self, key: Any, entry: list[Any], value: Any, timestamp: int) -> None:
        """Fast path: write ``value`` for ``key`` whose entry came from ``lookup``."""
        if self._budget is None:
            self._write_through(key, value, timestamp, entry[0], entry[4])
            return
        entry[0] = value
        entry[1] = timestamp
        if not entry[3]:
            entry[3] = True
            self._dirty[key] = entry

    def put(self, key: Any, value: Any, timestamp: int | None = None) -> None:
        """Insert or replace ``key``; a None value deletes it. The timestamp defaults to the current record's.
        """
        if key is None:
            raise StoreError(f"store {self.name!r}: null keys are not allowed")
        if not self._open:
            raise StoreError(f"store {self.name!r} is closed")
        ts = self._now() if timestamp is None else timestamp
        if self._budget is None:
            self._write_through(key, value, ts, _MISSING, None)
            return
        entry = self._cache.get(key)
        if entry is None:
            entry = [value, ts, _MISSING, True, None]
            self._insert(key, entry)
            self._dirty[key] = entry
        else:
            entry[0] = value
            entry[1] = ts
            if not entry[3]:
                entry[3] = True
                self._dirty[key] = entry

    def put_if_absent(self, key: Any, value: Any, timestamp: int | None = None) -> Any:
        old = self.get(key)
        if old is None:
            self.put(key, value, timestamp)
        return old

    def put_all(self, entries: Iterable[tuple[Any, Any]]) -> None:
        for key, value in entries:
            self.put(key, value)

    def delete(self, key: Any) -> Any:
        """Remove ``key``; returns the value it had (None if absent)."""
        old = self.get(key)
        self.put(key, None)
        return old

    def _write_through(self, key: Any, value: Any, ts: int, old: Any, kb: bytes | None) -> None:
        if kb is None:
            kb = self.key_serde.serialize(self._topic, key)
            assert kb is not None
        listener = self._listener
        if listener is not None and old is _MISSING:
            raw = self.backend.get(kb)
            old = None if raw is None else self.value_serde.deserialize(self._topic, raw[8:])
        vb = None if value is None else self.value_serde.serialize(self._topic, value)
        if vb is None:
            self.backend.delete(kb)
        else:
            self.backend.put(kb, _TS.pack(ts) + vb)
        log = self._changelog
        if log is not None:
            log.send(log.topic, kb, vb, ts, log.partition)
        if listener is not None:
            listener(key, value, old, ts)

    def flush_cache(self) -> None:
        """Write every dirty entry to the backend and changelog and forward it; keep entries cached (clean).
        """
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
        batch: list[tuple[bytes, bytes | None]] = []
        total = 0
        for key, entry in dirty.items():
            value, ts, old, _dirty, kb = entry
            if kb is None:
                kb = entry[4] = kser(topic, key)
            vb = None if value is None else vser(topic, value)
            if vb is None:
                batch.append((kb, None))
                total += len(kb)
            else:
                batch.append((kb, pack(ts) + vb))
                total += len(kb) + len(vb)
            if log is not None:
                log.send(log.topic, kb, vb, ts, log.partition)
            if listener is not None:
                if old is _MISSING:
                    raw = backend.get(kb)
                    old = None if raw is None else self.value_serde.deserialize(topic, raw[8:])
                listener(key, value, old, ts)
            entry[2] = value
            entry[3] = False
        backend.write_batch(batch)
        if self._budget is not None:
            self._budget.observe(total, len(batch))

    # -- range queries ---------------------------------------------------------------------------------

    def range(self, key_from: Any = None, key_to: Any = None) -> Iterator[tuple[Any, Any]]:
        """``(key, value)`` pairs with ``key_from <= key <= key_to`` in serialised-key order (None = open)."""
        topic = self._topic
        lo = None if key_from is None else self.key_serde.serialize(topic, key_from)
        hi = None if key_to is None else self.key_serde.serialize(topic, key_to)
        merged: dict[bytes, tuple[Any, Any]] = {}
        kde, vde = self.key_serde.deserialize, self.value_serde.deserialize
        for kb, raw in self.backend.range(lo, hi):
            merged[kb] = (kde(topic, kb), vde(topic, raw[8:]))
        for key, entry in self._dirty.items():
            dirty_kb = self.key_serde.serialize(topic, key)
            assert dirty_kb is not None
            if (lo is None or dirty_kb >= lo) and (hi is None or dirty_kb <= hi):
                merged[dirty_kb] = (key, entry[0])
        for kb in sorted(merged):
            key, value = merged[kb]
            if value is not None:
                yield key, value

    def all(self) -> Iterator[tuple[Any, Any]]:
        return self.range()

    def approximate_num_entries(self) -> int:
        return self.backend.approximate_num_entries() + sum(
            1 for e in self._dirty.values() if e[0] is not None
        )

    # -- restore and lifecycle -------------------------------------------------------------------------

    def restore(self, records: Iterable[tuple[bytes, bytes | None, int]]) -> int:
        """Apply changelog records ``(key, value or None, timestamp)`` straight to the backend, in one batch;
        nothing is logged or forwarded. Returns the number of records applied."""
        pack = _TS.pack
        batch = [(k, None if v is None else pack(ts) + v) for k, v, ts in records]
        self.backend.write_batch(batch)
        self._drop_cache()
        return len(batch)

    def __repr__(self) -> str:
        return f"<KeyValueStore {self.name!r}>"
