"""MemTable: the newest writes, held in a dict, with a key index that is sorted only when a scan needs it.

A put costs one dict store (plus a list append for a new key) instead of a sorted insert; flushes sort once,
and scans bring a ``SortedList`` of the keys up to date incrementally. Values are bytes, or None for a
tombstone. The dict holds only the newest value per key: consistent reads of older states use frozen memtables
(see ``DB.snapshot``), not per-entry sequence numbers.
"""

from __future__ import annotations

import threading

from sortedcontainers import SortedList


class MemTable:
    """Invariants: every key of ``data`` is in ``pending`` or in the sorted index, never in both;
    ``user_bytes`` counts the key and value bytes written into it; ``min_seq..max_seq`` covers its writes.
    Writers mutate it only under the DB's write lock; once sealed it never changes.
    """

    __slots__ = ("_lock", "_sorted", "data", "max_seq", "min_seq", "pending", "user_bytes", "wal_number")

    def __init__(self, wal_number: int, min_seq: int) -> None:
        self.data: dict[bytes, bytes | None] = {}
        self.pending: list[bytes] = []
        self._sorted: SortedList = SortedList()
        self._lock = threading.Lock()
        self.user_bytes = 0
        self.wal_number = wal_number
        self.min_seq = min_seq
        self.max_seq = min_seq - 1

    def __len__(self) -> int:
        return len(self.data)

    def apply(self, ops: list[tuple[bytes, bytes | None]], last_seq: int) -> None:
        """Apply a batch's entries (the caller has logged them); ``last_seq`` is the batch's last sequence."""
        data = self.data
        pending = self.pending
        n = 0
        for key, value in ops:
            if key not in data:
                pending.append(key)
            data[key] = value
            n += len(key) + (len(value) if value is not None else 0)
        self.user_bytes += n
        self.max_seq = last_seq

    def _sorted_keys(self) -> SortedList:
        with self._lock:
            if self.pending:
                batch = self.pending[:]
                del self.pending[: len(batch)]
                self._sorted.update(batch)
            return self._sorted

    def range_items(
        self, start: bytes | None, end: bytes | None, reverse: bool
    ) -> list[tuple[bytes, bytes | None]]:
        """Entries with ``start <= key < end`` in order (or reversed), tombstones included, as a new list."""
        keys = self._sorted_keys().irange(start, end, inclusive=(True, False), reverse=reverse)
        data = self.data
        return [(k, data[k]) for k in keys]

    def frozen_copy(self) -> MemTable:
        """An independent copy that later writes to this memtable do not affect."""
        copy = MemTable(self.wal_number, self.min_seq)
        copy.data = dict(self.data)
        copy.pending = list(copy.data)
        copy.max_seq = self.max_seq
        copy.user_bytes = self.user_bytes
        return copy
