"""The record cache layer shared by the typed stores, and the cache budget shared by every caching store of
one Streams instance.

Kafka Streams gives each instance ``statestore.cache.max.bytes`` (formerly ``cache.max.bytes.buffering``,
default 10 MiB) for all of its caches. The caches here hold deserialised Python objects, so the size of an
entry is estimated from its serialised size, measured each time a cache is flushed (a running average,
starting at ``INITIAL_ENTRY_BYTES``). A budget of 0 bytes disables caching: every update is written through,
logged and forwarded at once, which is what the book's FraudService relies on.

``CachingStore`` owns the one write path of the key-value, session and window stores (lookup, update,
write-through, flush); a store only says how its cache keys map to backend rows, changelog keys and the keys
its flush listener sees.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from strom.streams.errors import StoreError

if TYPE_CHECKING:
    from strom.streams.serdes import Serde

DEFAULT_CACHE_MAX_BYTES = 10 * 1024 * 1024
INITIAL_ENTRY_BYTES = 96.0
# Per-entry overhead Kafka's ThreadCache charges (LRU node + key wrapper); keeps tiny entries from being free.
ENTRY_OVERHEAD_BYTES = 64


class RecordCacheBudget:
    """Counts cached entries across stores; a store that grows the total past the budget evicts from itself.

    Invariant: ``entries`` equals the number of entries held by all caches registered with this budget.
    """

    __slots__ = ("avg_entry_bytes", "entries", "max_bytes", "max_entries")

    def __init__(self, max_bytes: int = DEFAULT_CACHE_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"cache.max.bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.entries = 0
        self.avg_entry_bytes = INITIAL_ENTRY_BYTES
        self.max_entries = int(max_bytes / (INITIAL_ENTRY_BYTES + ENTRY_OVERHEAD_BYTES))

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def observe(self, total_bytes: int, count: int) -> None:
        """Fold the serialised sizes seen in a flush into the per-entry estimate."""
        if count:
            sample = total_bytes / count
            self.avg_entry_bytes = 0.8 * self.avg_entry_bytes + 0.2 * sample
            self.max_entries = max(1, int(self.max_bytes / (self.avg_entry_bytes + ENTRY_OVERHEAD_BYTES)))


TIMESTAMP = struct.Struct(">q")
"""Backend values are ``8-byte big-endian timestamp || serialised value``, as Kafka's timestamped stores."""

MISSING: Any = object()
"""``CacheEntry.flushed`` of an entry put without reading the backend: the old value is read only if a flush
listener needs it."""

FlushListener = Callable[[Any, Any, Any, int], None]
"""Called as ``listener(key, new_value, old_value, timestamp)`` for each write that reaches the backend."""


class Changelogger:
    """Where a store's writes are logged: a collector, a topic and the task's partition."""

    __slots__ = ("partition", "send", "topic")

    def __init__(self, send: Callable[..., None], topic: str, partition: int) -> None:
        self.send = send
        self.topic = topic
        self.partition = partition


class CacheEntry:
    """The cached value of one key (a key-value key, or a key and window start).

    ``value`` None means absent; ``flushed`` is the value the backend holds (``MISSING``: not read);
    ``key_bytes`` is the serialised key once known. Invariant: ``dirty`` is True exactly while the entry is
    in its store's dirty map, i.e. ``value`` has not reached the backend, changelog and listener yet.
    """

    __slots__ = ("dirty", "flushed", "key_bytes", "timestamp", "value")

    def __init__(
        self, value: Any, timestamp: int, flushed: Any, dirty: bool, key_bytes: bytes | None
    ) -> None:
        self.value = value
        self.timestamp = timestamp
        self.flushed = flushed
        self.dirty = dirty
        self.key_bytes = key_bytes


def evict(
    cache: dict[Any, CacheEntry], budget: RecordCacheBudget, flush: Callable[[], None], keep: Any
) -> None:
    """Make room in one store's cache (oldest entries first, never ``keep``, the entry just inserted): drop a
    tenth of it, or at least the overflow. Clean entries go without any I/O; only when too few are clean is
    the cache flushed first, so dirty values always reach the backend, changelog and downstream before they
    go."""
    want = max(1, len(cache) // 10, budget.entries - budget.max_entries)
    victims = []
    for key, entry in cache.items():
        if not entry.dirty and key != keep:
            victims.append(key)
            if len(victims) == want:
                break
    if len(victims) < want:
        flush()
        victims = [key for key in islice(cache, want + 1) if key != keep][:want]
    for key in victims:
        del cache[key]
    budget.entries -= len(victims)


class _Backend(Protocol):
    def flush(self) -> None: ...

    def close(self) -> None: ...


BackendT = TypeVar("BackendT", bound=_Backend)


class CachingStore(Generic[BackendT]):
    """What the typed stores share: serdes, changelog, flush listener and a record cache in front of a bytes
    backend, with the one write path (lookup, update, write-through, flush) all of them use.

    A subclass names its cache keys (the key, or ``(key, window start)``) and maps them with the ``_``-hooks
    below to the user key, the backend row, the changelog key and the key its flush listener sees.

    Invariants: ``_dirty`` holds the cache entries not yet written (a subset of ``_cache`` by identity), in
    the order they were first dirtied, which is the order a flush writes them; ``_budget`` counts exactly the
    entries of ``_cache``; a closed store has dropped its cache and backend.
    """

    def __init__(
        self,
        name: str,
        backend: BackendT,
        key_serde: Serde[Any],
        value_serde: Serde[Any],
        budget: RecordCacheBudget | None,
        changelog: Changelogger | None,
        current_timestamp: Callable[[], int],
    ) -> None:
        self.name = name
        self.backend = backend
        self.key_serde = key_serde
        self.value_serde = value_serde
        self._budget = budget if budget is not None and budget.enabled else None
        self._changelog = changelog
        self._topic = changelog.topic if changelog is not None else name
        self._now = current_timestamp
        self._listener: FlushListener | None = None
        self._cache: dict[Any, CacheEntry] = {}
        self._dirty: dict[Any, CacheEntry] = {}
        self._open = True

    # -- what a store says about its cache keys -----------------------------------------------------------

    def _user_key(self, cache_key: Any) -> Any:
        """The user's key within ``cache_key``."""
        raise NotImplementedError

    def _read(self, cache_key: Any, key_bytes: bytes) -> bytes | None:
        """The backend value (timestamp || value) of ``cache_key``."""
        raise NotImplementedError

    def _changelog_key(self, cache_key: Any, key_bytes: bytes) -> bytes:
        raise NotImplementedError

    def _event_key(self, cache_key: Any) -> Any:
        """The key the flush listener is called with."""
        raise NotImplementedError

    def _write(self, cache_key: Any, key_bytes: bytes, stored: bytes | None) -> None:
        """Write one backend value (None deletes)."""
        raise NotImplementedError

    def _row(self, cache_key: Any, key_bytes: bytes, stored: bytes | None) -> Any:
        """The backend's batch item for one value; a flush hands the list of them to ``_write_rows``."""
        raise NotImplementedError

    def _write_rows(self, rows: list[Any]) -> None:
        raise NotImplementedError

    # -- the write path -------------------------------------------------------------------------------------

    def _lookup(self, cache_key: Any, key: Any) -> CacheEntry:
        """The cache entry of ``cache_key`` (of user key ``key``; value None when absent), loaded from the
        backend on a miss and kept when caching is on."""
        entry = self._cache.get(cache_key)
        if entry is not None:
            return entry
        topic = self._topic
        kb = self.key_serde.serialize(topic, key)
        assert kb is not None
        raw = self._read(cache_key, kb)
        if raw is None:
            entry = CacheEntry(None, -1, None, False, kb)
        else:
            value = self.value_serde.deserialize(topic, raw[8:])
            entry = CacheEntry(value, TIMESTAMP.unpack_from(raw)[0], value, False, kb)
        if self._budget is not None:
            self._insert(cache_key, entry)
        return entry

    def _update(self, cache_key: Any, entry: CacheEntry, value: Any, timestamp: int) -> None:
        """Write ``value`` for ``cache_key`` whose entry came from ``_lookup``."""
        if self._budget is None:
            self._write_through(cache_key, value, timestamp, entry.value, entry.key_bytes)
            return
        entry.value = value
        entry.timestamp = timestamp
        if not entry.dirty:
            entry.dirty = True
            self._dirty[cache_key] = entry

    def _put(self, key: Any, cache_key: Any, value: Any, timestamp: int | None) -> None:
        """Write ``value`` for ``cache_key`` (of user key ``key``) without reading it first."""
        if key is None:
            raise StoreError(f"store {self.name!r}: null keys are not allowed")
        if not self._open:
            raise StoreError(f"store {self.name!r} is closed")
        ts = self._now() if timestamp is None else timestamp
        if self._budget is None:
            self._write_through(cache_key, value, ts, MISSING, None)
            return
        entry = self._cache.get(cache_key)
        if entry is None:
            entry = CacheEntry(value, ts, MISSING, True, None)
            self._insert(cache_key, entry)
            self._dirty[cache_key] = entry
        else:
            entry.value = value
            entry.timestamp = ts
            if not entry.dirty:
                entry.dirty = True
                self._dirty[cache_key] = entry

    def _old_value(self, cache_key: Any, key_bytes: bytes) -> Any:
        raw = self._read(cache_key, key_bytes)
        return None if raw is None else self.value_serde.deserialize(self._topic, raw[8:])

    def _write_through(
        self, cache_key: Any, value: Any, ts: int, old: Any, key_bytes: bytes | None
    ) -> None:
        """Without a cache: backend, changelog and listener see the write at once."""
        topic = self._topic
        if key_bytes is None:
            key_bytes = self.key_serde.serialize(topic, self._user_key(cache_key))
            assert key_bytes is not None
        listener = self._listener
        if listener is not None and old is MISSING:
            old = self._old_value(cache_key, key_bytes)
        vb = None if value is None else self.value_serde.serialize(topic, value)
        self._write(cache_key, key_bytes, None if vb is None else TIMESTAMP.pack(ts) + vb)
        log = self._changelog
        if log is not None:
            log.send(log.topic, self._changelog_key(cache_key, key_bytes), vb, ts, log.partition)
        if listener is not None:
            listener(self._event_key(cache_key), value, old, ts)

    def flush_cache(self) -> None:
        """Write every dirty entry to the backend (one batch) and changelog and forward it to the listener;
        keep entries cached (clean)."""
        dirty = self._dirty
        if not dirty:
            return
        self._dirty = {}  # writes made by downstream processors during the flush go to the next flush
        topic = self._topic
        kser = self.key_serde.serialize
        vser = self.value_serde.serialize
        pack = TIMESTAMP.pack
        log = self._changelog
        listener = self._listener
        make_row = self._row
        rows: list[Any] = []
        total = 0
        for cache_key, entry in dirty.items():
            value = entry.value
            ts = entry.timestamp
            kb = entry.key_bytes
            if kb is None:
                kb = entry.key_bytes = kser(topic, self._user_key(cache_key))
                assert kb is not None
            vb = None if value is None else vser(topic, value)
            if vb is None:
                row = make_row(cache_key, kb, None)
                total += len(kb)
            else:
                row = make_row(cache_key, kb, pack(ts) + vb)
                total += len(kb) + len(vb)
            rows.append(row)
            if log is not None:
                log.send(log.topic, self._changelog_key(cache_key, kb), vb, ts, log.partition)
            if listener is not None:
                old = entry.flushed
                if old is MISSING:
                    old = self._old_value(cache_key, kb)
                listener(self._event_key(cache_key), value, old, ts)
            entry.flushed = value
            entry.dirty = False
        self._write_rows(rows)
        if self._budget is not None:
            self._budget.observe(total, len(rows))

    def _insert(self, key: Any, entry: CacheEntry) -> None:
        self._cache[key] = entry
        budget = self._budget
        assert budget is not None
        budget.entries += 1
        if budget.entries > budget.max_entries:
            evict(self._cache, budget, self.flush_cache, key)

    def set_flush_listener(self, listener: FlushListener | None) -> None:
        self._listener = listener

    def flush(self) -> None:
        """Commit-time flush: cache, then the backend's own buffers."""
        self.flush_cache()
        self.backend.flush()

    def _drop_cache(self) -> None:
        if self._budget is not None:
            self._budget.entries -= len(self._cache)
        self._cache.clear()
        self._dirty.clear()

    def close(self) -> None:
        """Close without flushing: call ``flush()`` first for a clean close (a dirty close loses the cache,
        which the changelog and the uncommitted input offsets make good)."""
        if self._open:
            self._open = False
            self._drop_cache()
            self.backend.close()


def cache_max_bytes(config: dict[str, object]) -> int:
    """The cache size from config, accepting Kafka's current and older key names."""
    for key in ("statestore.cache.max.bytes", "cache.max.bytes", "cache.max.bytes.buffering"):
        if key in config:
            return int(str(config[key]))
    return DEFAULT_CACHE_MAX_BYTES
