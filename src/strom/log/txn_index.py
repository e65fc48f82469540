"""The aborted-transaction index (`.txnindex`) of one segment, in Kafka's file format.

Each entry is 34 big-endian bytes: `version int16 (0), producer_id int64, first_offset int64,
last_offset int64, last_stable_offset int64`. An entry is added to the segment holding the ABORT marker of
a transaction; `first_offset` is the transaction's first data offset in this partition and `last_offset` the
marker's offset. A read_committed Fetch from offset F collects the entries of the segments from the one
holding F onward whose `last_offset >= F` and `first_offset < upper bound`, and sends them as
`AbortedTransactions` so the consumer can drop those records. Like the other indexes this file is derived
from the log: recovery rebuilds it by replaying transaction markers. The file exists only once a segment has
an aborted transaction.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from pathlib import Path

from strom.log.index import CorruptIndexError

_ENTRY = struct.Struct(">hqqqq")
TXN_ENTRY_SIZE = _ENTRY.size


@dataclasses.dataclass(frozen=True, slots=True)
class AbortedTxn:
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


class TransactionIndex:
    """Aborted transactions whose marker lies in one segment, in marker order.

    Invariant: `last_offset` of the entries increases. Entries `[0, _persisted)` are on disk.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[AbortedTxn] = []
        self._persisted = 0
        self._rewrite = False

    @classmethod
    def load(cls, path: Path) -> TransactionIndex:
        """Read an existing `.txnindex` (a missing file is empty); CorruptIndexError if malformed."""
        index = cls(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return index
        if len(data) % TXN_ENTRY_SIZE:
            raise CorruptIndexError(f"{path}: size {len(data)} is not a multiple of {TXN_ENTRY_SIZE}")
        prev = -1
        for version, pid, first, last, lso in _ENTRY.iter_unpack(data):
            if version != 0 or last <= prev or (first > last and first != -1):
                raise CorruptIndexError(
                    f"{path}: malformed entry (version {version}, pid {pid}, {first}..{last})"
                )
            index.entries.append(AbortedTxn(pid, first, last, lso))
            prev = last
        index._persisted = len(index.entries)
        return index

    def append(self, txn: AbortedTxn) -> None:
        self.entries.append(txn)

    def collect(self, fetch_offset: int, upper_bound: int) -> list[AbortedTxn]:
        """Entries overlapping [fetch_offset, upper_bound)."""
        return [t for t in self.entries if t.last_offset >= fetch_offset and t.first_offset < upper_bound]

    def clear(self) -> None:
        """Forget every entry (before a rebuild); the next persist rewrites the file if it exists."""
        self.entries = []
        self._persisted = 0
        self._rewrite = True

    def persist(self, sync: bool) -> None:
        """Write new entries (or rewrite after a truncation); never creates an empty file."""
        if not self._rewrite and self._persisted == len(self.entries):
            return
        if not self.entries and not self.path.exists():
            self._rewrite = False
            return
        data = b"".join(
            _ENTRY.pack(0, t.producer_id, t.first_offset, t.last_offset, t.last_stable_offset)
            for t in self.entries[self._persisted :]
        )
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            start = self._persisted * TXN_ENTRY_SIZE
            if self._rewrite:
                os.ftruncate(fd, start)
            os.pwrite(fd, data, start)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self._persisted = len(self.entries)
        self._rewrite = False
