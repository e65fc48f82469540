"""The record cache budget shared by every caching store of one Streams instance.

Kafka Streams gives each instance ``statestore.cache.max.bytes`` (formerly ``cache.max.bytes.buffering``,
default 10 MiB) for all of its caches. The caches here hold deserialised Python objects, so the size of an
entry is estimated from its serialised size, measured each time a cache is flushed (a running average,
starting at ``INITIAL_ENTRY_BYTES``). A budget of 0 bytes disables caching: every update is written through,
logged and forwarded at once, which is what the book's FraudService relies on.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from strom.streams.serdes import Serde
    from strom.streams.state.kv_store import Changelogger, FlushListener

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


def evict(
    cache: dict[Any, list[Any]], budget: RecordCacheBudget, flush: Callable[[], None], keep: Any
) -> None:
    """Make room in one store's cache (oldest entries first, never ``keep``, the entry just inserted): drop a
    tenth of it, or at least the overflow. Clean entries go without any I/O; only when too few are clean is
    the cache flushed first, so dirty values always reach the backend, changelog and downstream before they
    go. Entries are lists whose index 3 is the dirty flag."""
    want = max(1, len(cache) // 10, budget.entries - budget.max_entries)
    victims = []
    for key, entry in cache.items():
        if not entry[3] and key != keep:
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
    backend. Subclasses key the cache and write through their own way (``flush_cache``).

    Invariants: ``_dirty`` holds the cache entries not yet written (a subset of ``_cache`` by identity);
    ``_budget`` counts exactly the entries of ``_cache``; a closed store has dropped its cache and backend.
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
        # cache key -> [value, timestamp, flushed value (or a marker), dirty, serialised key (or None)]
        self._cache: dict[Any, list[Any]] = {}
        self._dirty: dict[Any, list[Any]] = {}
        self._open = True

    def flush_cache(self) -> None:
        raise NotImplementedError

    def _insert(self, key: Any, entry: list[Any]) -> None:
        self._cache[key] = entry
        budget = self._budget
        assert budget is not None
        budget.entries += 1
        if budget.entries > budget.max_entries:
            evict(self._cache, budget, self.flush_cache, key)

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
