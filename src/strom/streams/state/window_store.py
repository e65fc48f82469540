"""Typed window store: values per (key, window start), with the same cache and change-logging layers as
``kv_store.KeyValueStore``.

Changelog records follow Kafka Streams' window-store format so the topic is readable by Java tools: key =
``serialised key || 8-byte window start || 4-byte sequence number (0)``, value = serialised value, timestamp =
the value's timestamp. The changelog topic is ``compact,delete`` with retention = store retention + 1 day.

Invariants: as ``KeyValueStore``; in addition windows older than the retention (by the largest window start
written) are dropped by the backend and reads of them return None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from strom.streams.errors import StoreError
from strom.streams.serdes import Serde
from strom.streams.state.cache import TIMESTAMP, CacheEntry, CachingStore, Changelogger, RecordCacheBudget
from strom.streams.state.kv_store import ValueAndTimestamp
from strom.streams.state.window_bytes import WindowBytesStore
from strom.streams.windows import Window, Windowed

_SEQ0 = b"\x00\x00\x00\x00"


def changelog_key(key: bytes, start: int) -> bytes:
    """Kafka's ``WindowKeySchema.toStoreKeyBinary(key, start, seqnum=0)``."""
    return key + TIMESTAMP.pack(start) + _SEQ0


class WindowStore(CachingStore[WindowBytesStore]):
    """A named, typed window store. ``put(key, None, start)`` deletes that window's value. The cache key is
    ``(key, window start)``."""

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
        super().__init__(name, backend, key_serde, value_serde, budget, changelog, current_timestamp)
        self.window_size_ms = window_size_ms
        self.retention_ms = retention_ms

    @property
    def persistent(self) -> bool:
        return bool(getattr(self.backend, "persistent", False))

    # -- cache keys -> backend rows ----------------------------------------------------------------------

    def _user_key(self, cache_key: tuple[Any, int]) -> Any:
        return cache_key[0]

    def _read(self, cache_key: tuple[Any, int], key_bytes: bytes) -> bytes | None:
        return self.backend.get(key_bytes, cache_key[1])

    def _changelog_key(self, cache_key: tuple[Any, int], key_bytes: bytes) -> bytes:
        return changelog_key(key_bytes, cache_key[1])

    def _event_key(self, cache_key: tuple[Any, int]) -> Windowed:
        """The listener receives ``Windowed`` keys."""
        key, start = cache_key
        return tuple.__new__(Windowed, (key, tuple.__new__(Window, (start, start + self.window_size_ms))))

    def _write(self, cache_key: tuple[Any, int], key_bytes: bytes, stored: bytes | None) -> None:
        self.backend.put(key_bytes, cache_key[1], stored)

    def _row(
        self, cache_key: tuple[Any, int], key_bytes: bytes, stored: bytes | None
    ) -> tuple[bytes, int, bytes | None]:
        start = cache_key[1]
        return key_bytes + TIMESTAMP.pack(start), start, stored

    def _write_rows(self, rows: list[tuple[bytes, int, bytes | None]]) -> None:
        self.backend.write_raw(rows)

    # -- reads and writes ----------------------------------------------------------------------------------

    def lookup(self, key: Any, window_start: int) -> CacheEntry:
        """Fast path for DSL processors: the cache entry of ``key`` in the window starting at
        ``window_start`` (value None: absent), loaded on a miss. Pass it to ``update``."""
        return self._lookup((key, window_start), key)

    def get_with_timestamp(self, key: Any, window_start: int) -> ValueAndTimestamp | None:
        if key is None:
            return None
        entry = self._lookup((key, window_start), key)
        value = entry.value
        return None if value is None else tuple.__new__(ValueAndTimestamp, (value, entry.timestamp))

    def get(self, key: Any, window_start: int) -> Any:
        """The value of ``key`` in the window starting at ``window_start`` (Kafka's ``fetch(key, time)``)."""
        if key is None:
            return None
        return self._lookup((key, window_start), key).value

    def update(self, key: Any, window_start: int, entry: CacheEntry, value: Any, timestamp: int) -> None:
        """Fast path: write ``value`` for the entry ``lookup`` returned."""
        self._update((key, window_start), entry, value, timestamp)

    def put(self, key: Any, value: Any, window_start: int, timestamp: int | None = None) -> None:
        self._put(key, (key, window_start), value, timestamp)

    def fetch(self, key: Any, time_from: int, time_to: int) -> Iterator[tuple[int, Any]]:
        """``(window start, value)`` for ``key`` with ``time_from <= start <= time_to``, ascending."""
        topic = self._topic
        kb = self.key_serde.serialize(topic, key)
        assert kb is not None
        found = {start: raw for start, raw in self.backend.fetch(kb, time_from, time_to)}
        merged: dict[int, Any] = {s: self.value_serde.deserialize(topic, raw[8:]) for s, raw in found.items()}
        for (k, start), entry in self._dirty.items():
            if k == key and time_from <= start <= time_to:
                merged[start] = entry.value
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
            merged[(start, kb)] = (kde(topic, kb), vde(topic, raw[8:]), TIMESTAMP.unpack_from(raw)[0])
        for (key, start), entry in self._dirty.items():
            if time_from <= start <= time_to:
                dirty_kb = self.key_serde.serialize(topic, key)
                assert dirty_kb is not None
                merged[(start, dirty_kb)] = (key, entry.value, entry.timestamp)
        for start, kb in sorted(merged):
            key, value, ts = merged[(start, kb)]
            if value is not None:
                yield Windowed(key, Window(start, start + size)), ValueAndTimestamp(value, ts)

    def all(self) -> Iterator[tuple[Windowed, Any]]:
        return self.fetch_all(0, 2**63 - 1)

    def restore(self, records: Iterable[tuple[bytes, bytes | None, int]]) -> int:
        """Apply changelog records (Kafka's window key layout) straight to the backend; returns how many."""
        pack = TIMESTAMP.pack
        unpack = TIMESTAMP.unpack_from
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
