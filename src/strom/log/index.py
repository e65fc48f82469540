"""The sparse offset index (`.index`) and time index (`.timeindex`) of one segment, in Kafka's file format.

`.index`: 8-byte big-endian entries `relative_offset int32, position int32`. An entry maps the LAST offset of
a batch to the file position where that batch starts, exactly what current Kafka writes and what
`kafka-dump-log --verify-index-only` checks.

`.timeindex`: 12-byte big-endian entries `timestamp int64, relative_offset int32`: the largest batch max
timestamp seen so far in the segment and the last offset of the batch that carried it. Timestamps are
strictly increasing, offsets non-decreasing.

Both indexes live in memory (two parallel arrays each, searched with `bisect`) and are written to disk only
when the segment is flushed (`persist`): an index is a cache of the log, rebuilt from the `.log` file whenever
it could be stale (unclean shutdown past the recovery point) or fails the checks in `load`. Files are never
pre-allocated, so a file's size is always a whole number of entries on a clean shutdown.
"""

from __future__ import annotations

import bisect
import os
import struct
import sys
from array import array
from pathlib import Path

from strom.log.errors import LogStorageError

OFFSET_ENTRY = struct.Struct(">ii")
TIME_ENTRY = struct.Struct(">qi")
OFFSET_ENTRY_SIZE = OFFSET_ENTRY.size
TIME_ENTRY_SIZE = TIME_ENTRY.size
_BIG_ENDIAN_HOST = sys.byteorder == "big"


class CorruptIndexError(LogStorageError):
    """An index file breaks its invariants; the segment rebuilds it from the log instead of trusting it."""


def _write_file(path: Path, data: bytes, offset: int, truncate_to: int | None, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        if truncate_to is not None:
            os.ftruncate(fd, truncate_to)
        if data:
            os.pwrite(fd, data, offset)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


class OffsetIndex:
    """Sparse offset -> position map of one segment.

    Invariants: relative offsets and positions are strictly increasing; each entry's offset is the last
    offset of the batch that starts at its position; at most `max_entries` entries (the segment rolls when
    full). Entries `[0, _persisted)` are on disk; later ones exist only in memory until `persist`.
    """

    def __init__(self, path: Path, base_offset: int, max_index_bytes: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max(1, max_index_bytes // OFFSET_ENTRY_SIZE)
        self._rel = array("i")
        self._pos = array("i")
        self._persisted = 0
        self._rewrite = True  # the file does not yet match entries [0, _persisted)
        self._synced = False  # the file's content is known to be fsynced

    @classmethod
    def load(cls, path: Path, base_offset: int, max_index_bytes: int, log_size: int) -> OffsetIndex:
        """Read an existing `.index`, raising CorruptIndexError unless every entry is plausible."""
        index = cls(path, base_offset, max_index_bytes)
        data = path.read_bytes()
        if len(data) % OFFSET_ENTRY_SIZE:
            raise CorruptIndexError(f"{path}: size {len(data)} is not a multiple of {OFFSET_ENTRY_SIZE}")
        both = array("i")
        both.frombytes(data)
        if not _BIG_ENDIAN_HOST:
            both.byteswap()
        rel, pos = both[0::2], both[1::2]
        prev_rel, prev_pos = -1, -1
        for r, p in zip(rel, pos, strict=True):
            if r <= prev_rel or p <= prev_pos or p >= log_size:
                raise CorruptIndexError(
                    f"{path}: entry (relative offset {r}, position {p}) is not after "
                    f"({prev_rel}, {prev_pos}) "
                    f"or lies beyond the log size {log_size}"
                )
            prev_rel, prev_pos = r, p
        index._rel, index._pos = rel, pos
        index._persisted = len(rel)
        index._rewrite = False
        index._synced = True
        return index

    def __len__(self) -> int:
        return len(self._rel)

    @property
    def is_full(self) -> bool:
        return len(self._rel) >= self.max_entries

    @property
    def last_offset(self) -> int:
        """The offset of the last entry, or base_offset - 1 when empty."""
        return self.base_offset + self._rel[-1] if self._rel else self.base_offset - 1

    def entry(self, i: int) -> tuple[int, int]:
        """Entry i as (absolute offset, position)."""
        return self.base_offset + self._rel[i], self._pos[i]

    def append(self, last_offset: int, position: int) -> None:
        """Add an entry for the batch at `position` whose last offset is `last_offset`."""
        self._rel.append(last_offset - self.base_offset)
        self._pos.append(position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """(entry offset, position) of the greatest entry <= `offset`, where a scan for `offset` may start;
        (base_offset - 1, 0) when there is none."""
        i = bisect.bisect_right(self._rel, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset - 1, 0
        return self.base_offset + self._rel[i], self._pos[i]

    def clear(self) -> None:
        """Forget every entry (before a rebuild); the next persist rewrites the file."""
        del self._rel[:]
        del self._pos[:]
        self._persisted = 0
        self._rewrite = True

    def persist(self, sync: bool) -> None:
        """Write entries not yet on disk (rewriting the file after a truncation), fsync when `sync`.
        Does nothing when the file is already complete (and synced, if `sync`)."""
        if not self._rewrite and self._persisted == len(self._rel) and (self._synced or not sync):
            return
        both = array("i", bytes(8 * (len(self._rel) - self._persisted)))
        both[0::2] = self._rel[self._persisted :]
        both[1::2] = self._pos[self._persisted :]
        if not _BIG_ENDIAN_HOST:
            both.byteswap()
        start = self._persisted * OFFSET_ENTRY_SIZE
        _write_file(self.path, both.tobytes(), start, start if self._rewrite else None, sync)
        self._persisted = len(self._rel)
        self._rewrite = False
        self._synced = sync


class TimeIndex:
    """Sparse max-timestamp -> offset map of one segment.

    Invariants: timestamps strictly increase and relative offsets never decrease; the last entry holds the
    segment's largest timestamp once the segment is inactive (`Segment.seal` appends it). Persisted like
    `OffsetIndex`.
    """

    def __init__(self, path: Path, base_offset: int, max_index_bytes: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max(1, max_index_bytes // TIME_ENTRY_SIZE)
        self._ts = array("q")
        self._rel = array("i")
        self._persisted = 0
        self._rewrite = True
        self._synced = False

    @classmethod
    def load(cls, path: Path, base_offset: int, max_index_bytes: int, last_offset: int) -> TimeIndex:
        """Read an existing `.timeindex`, raising CorruptIndexError unless every entry is plausible."""
        index = cls(path, base_offset, max_index_bytes)
        data = path.read_bytes()
        if len(data) % TIME_ENTRY_SIZE:
            raise CorruptIndexError(f"{path}: size {len(data)} is not a multiple of {TIME_ENTRY_SIZE}")
        prev_ts, prev_rel = -(2**63), -1
        limit = last_offset - base_offset
        for ts, rel in TIME_ENTRY.iter_unpack(data):
            if ts <= prev_ts or rel < prev_rel or rel < 0 or rel > limit:
                raise CorruptIndexError(
                    f"{path}: entry (timestamp {ts}, relative offset {rel}) is not after "
                    f"({prev_ts}, {prev_rel}) "
                    f"or lies outside the segment's offsets [0, {limit}]"
                )
            index._ts.append(ts)
            index._rel.append(rel)
            prev_ts, prev_rel = ts, rel
        index._persisted = len(index._ts)
        index._rewrite = False
        index._synced = True
        return index

    def __len__(self) -> int:
        return len(self._ts)

    @property
    def is_full(self) -> bool:
        return len(self._ts) >= self.max_entries

    def last_entry(self) -> tuple[int, int] | None:
        """(timestamp, absolute offset) of the last entry, or None when empty."""
        if not self._ts:
            return None
        return self._ts[-1], self.base_offset + self._rel[-1]

    def entry(self, i: int) -> tuple[int, int]:
        return self._ts[i], self.base_offset + self._rel[i]

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add (timestamp, offset) if it raises the largest timestamp indexed so far."""
        if self._ts and timestamp <= self._ts[-1]:
            return
        self._ts.append(timestamp)
        self._rel.append(offset - self.base_offset)

    def lookup(self, timestamp: int) -> tuple[int, int] | None:
        """(timestamp, offset) of the last entry whose timestamp is < `timestamp`: every record up to and
        including that offset is older than `timestamp`, so a search may start after it. None when no entry
        qualifies."""
        i = bisect.bisect_left(self._ts, timestamp) - 1
        return (self._ts[i], self.base_offset + self._rel[i]) if i >= 0 else None

    def clear(self) -> None:
        """Forget every entry (before a rebuild); the next persist rewrites the file."""
        del self._ts[:]
        del self._rel[:]
        self._persisted = 0
        self._rewrite = True

    def persist(self, sync: bool) -> None:
        """Write entries not yet on disk (rewriting the file after a truncation), fsync when `sync`.
        Does nothing when the file is already complete (and synced, if `sync`)."""
        if not self._rewrite and self._persisted == len(self._ts) and (self._synced or not sync):
            return
        data = b"".join(
            TIME_ENTRY.pack(self._ts[i], self._rel[i]) for i in range(self._persisted, len(self._ts))
        )
        start = self._persisted * TIME_ENTRY_SIZE
        _write_file(self.path, data, start, start if self._rewrite else None, sync)
        self._persisted = len(self._ts)
        self._rewrite = False
        self._synced = sync
