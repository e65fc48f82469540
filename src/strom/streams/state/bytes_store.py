"""The byte-level key-value store interface that every backend implements, and the in-memory backend.

Typed stores (``kv_store.KeyValueStore``, ``window_store.WindowStore``) serialise and cache on top of this
interface, so a backend only moves bytes: strom.lsm (default, persistent), a dict (``in_memory``) or
rocksdict. Keys are compared as unsigned bytes, the order Kafka Streams' RocksDB stores use for range queries.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Protocol


class KeyValueBytesStore(Protocol):
    """What a backend provides. ``write_batch`` applies puts and deletes (value None) in order, atomically
    where the backend can; restore uses it, so it should be the fastest way in."""

    persistent: bool

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def write_batch(self, items: Iterable[tuple[bytes, bytes | None]]) -> None: ...

    def range(self, lo: bytes | None, hi: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        """Entries with ``lo <= key <= hi`` (None = unbounded), ascending."""
        ...

    def approximate_num_entries(self) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def destroy(self) -> None:
        """Close and remove every file (used when a segment expires)."""
        ...


class InMemoryKeyValueBytesStore:
    """A dict of bytes; range queries sort the keys on demand and reuse the sorted list until the next write
    that adds or removes a key. Nothing survives a restart: the changelog restores it."""

    persistent = False

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._sorted: list[bytes] | None = None

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        data = self._data
        if self._sorted is not None and key not in data:
            self._sorted = None
        data[key] = value

    def delete(self, key: bytes) -> None:
        if self._data.pop(key, None) is not None:
            self._sorted = None

    def write_batch(self, items: Iterable[tuple[bytes, bytes | None]]) -> None:
        data = self._data
        self._sorted = None
        for key, value in items:
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value

    def range(self, lo: bytes | None, hi: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        if self._sorted is None:
            self._sorted = sorted(self._data)
        keys = self._sorted
        data = self._data
        start = 0 if lo is None else bisect.bisect_left(keys, lo)
        end = len(keys) if hi is None else bisect.bisect_right(keys, hi)
        # Snapshot the slice so writes during iteration do not disturb it.
        for key in keys[start:end]:
            value = data.get(key)
            if value is not None:
                yield key, value

    def approximate_num_entries(self) -> int:
        return len(self._data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def destroy(self) -> None:
        self._data.clear()
        self._sorted = None
