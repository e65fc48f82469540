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

from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from strom.streams.serdes import Serde
from strom.streams.state.bytes_store import KeyValueBytesStore
from strom.streams.state.cache import TIMESTAMP, CacheEntry, CachingStore, Changelogger, RecordCacheBudget


class ValueAndTimestamp(NamedTuple):
    value: Any
    timestamp: int


class KeyValueStore(CachingStore[KeyValueBytesStore]):
    """A named, typed, timestamped key-value store. ``put(key, None)`` deletes; None keys are refused.
    The cache key is the key itself."""

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
        super().__init__(name, backend, key_serde, value_serde, budget, changelog, current_timestamp)

    @property
    def persistent(self) -> bool:
        return bool(self.backend.persistent)

    @property
    def caching(self) -> bool:
        return self._budget is not None

    # -- cache keys -> backend rows ----------------------------------------------------------------------

    def _user_key(self, cache_key: Any) -> Any:
        return cache_key

    def _read(self, cache_key: Any, key_bytes: bytes) -> bytes | None:
        return self.backend.get(key_bytes)

    def _changelog_key(self, cache_key: Any, key_bytes: bytes) -> bytes:
        return key_bytes

    def _event_key(self, cache_key: Any) -> Any:
        return cache_key

    def _write(self, cache_key: Any, key_bytes: bytes, stored: bytes | None) -> None:
        if stored is None:
            self.backend.delete(key_bytes)
        else:
            self.backend.put(key_bytes, stored)

    def _row(self, cache_key: Any, key_bytes: bytes, stored: bytes | None) -> tuple[bytes, bytes | None]:
        return key_bytes, stored

    def _write_rows(self, rows: list[tuple[bytes, bytes | None]]) -> None:
        self.backend.write_batch(rows)

    # -- reads -----------------------------------------------------------------------------------------

    def lookup(self, key: Any) -> CacheEntry:
        """Fast path for DSL processors: the cache entry of ``key`` (value None when absent), loaded from the
        backend on a miss. Pass it back to ``update``."""
        return self._lookup(key, key)

    def get_with_timestamp(self, key: Any) -> ValueAndTimestamp | None:
        if key is None:
            return None
        entry = self._lookup(key, key)
        value = entry.value
        return None if value is None else tuple.__new__(ValueAndTimestamp, (value, entry.timestamp))

    def get(self, key: Any) -> Any:
        if key is None:
            return None
        return self._lookup(key, key).value

    # -- writes ----------------------------------------------------------------------------------------

    def update(self, key: Any, entry: CacheEntry, value: Any, timestamp: int) -> None:
        """Fast path: write ``value`` for ``key`` whose entry came from ``lookup``."""
        self._update(key, entry, value, timestamp)

    def put(self, key: Any, value: Any, timestamp: int | None = None) -> None:
        """Insert or replace ``key``; a None value deletes it. The timestamp defaults to the current record's.
        """
        self._put(key, key, value, timestamp)

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
                merged[dirty_kb] = (key, entry.value)
        for kb in sorted(merged):
            key, value = merged[kb]
            if value is not None:
                yield key, value

    def all(self) -> Iterator[tuple[Any, Any]]:
        return self.range()

    def approximate_num_entries(self) -> int:
        return self.backend.approximate_num_entries() + sum(
            1 for e in self._dirty.values() if e.value is not None
        )

    # -- restore and lifecycle -------------------------------------------------------------------------

    def restore(self, records: Iterable[tuple[bytes, bytes | None, int]]) -> int:
        """Apply changelog records ``(key, value or None, timestamp)`` straight to the backend, in one batch;
        nothing is logged or forwarded. Returns the number of records applied."""
        pack = TIMESTAMP.pack
        batch = [(k, None if v is None else pack(ts) + v) for k, v, ts in records]
        self.backend.write_batch(batch)
        self._drop_cache()
        return len(batch)

    def __repr__(self) -> str:
        return f"<KeyValueStore {self.name!r}>"
