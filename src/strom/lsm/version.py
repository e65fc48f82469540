"""Version: the immutable set of live table files, arranged in levels, that a read sees.

Level 0 holds tables flushed from memtables (and, in size-tiered mode, every sorted run); they may overlap and
are ordered newest first by the highest sequence number they contain. Each level >= 1 is one sorted run:
its files are ordered by key and do not overlap. A read consults level 0 newest first, then one file per
level.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import CorruptionError
from .table.sstable import MISSING, Table, TableInfo


@dataclass(eq=False)
class FileMeta(TableInfo):
    """A live table and what the MANIFEST says about it: what writing it learnt, and the range of sequence
    numbers of the writes it holds (which orders level-0 files). ``table`` is set once the file is opened."""

    min_seq: int
    max_seq: int
    table: Table | None = field(default=None, repr=False)


class Version:
    """An immutable arrangement of files in levels.

    Invariants (checked by :meth:`check_invariants`): level 0 is ordered by ``max_seq`` descending and the
    sequence ranges of its files do not interleave; every level >= 1 is sorted by key with
    ``files[i].largest < files[i + 1].smallest``; each file's ``smallest <= largest``; no file appears twice.
    """

    __slots__ = ("_deep", "_l0", "levels")

    def __init__(self, levels: list[list[FileMeta]], skip_last_filter: bool = False) -> None:
        """``skip_last_filter``: the oldest place a key can be is probed without its bloom filter (RocksDB's
        optimize_filters_for_hits): a get that reaches it usually finds its key there."""
        levels = [list(lv) for lv in levels]
        levels[0].sort(key=lambda f: f.max_seq, reverse=True)
        for lv in levels[1:]:
            lv.sort(key=lambda f: f.smallest)
        self.levels = levels
        # Flat probe lists for get(): per level-0 file (smallest, largest, lookup); per non-empty deeper
        # level (largest keys, smallest keys, lookups), so a get does no attribute chasing.
        self._l0: list[tuple[bytes, bytes, Callable[[bytes], object]]] = [
            (f.smallest, f.largest, f.table.get) for f in levels[0] if f.table is not None
        ]
        deep = [lv for lv in levels[1:] if lv]
        self._deep: list[tuple[list[bytes], list[bytes], list[Callable[[bytes], object]]]] = [
            (
                [f.largest for f in lv],
                [f.smallest for f in lv],
                [f.table.get for f in lv if f.table is not None],
            )
            for lv in deep
        ]
        if skip_last_filter and deep:
            largest, smallest, _ = self._deep[-1]
            self._deep[-1] = (
                largest,
                smallest,
                [f.table.get_unfiltered for f in deep[-1] if f.table is not None],
            )
        elif skip_last_filter and self._l0 and levels[0][-1].table is not None:
            lo, hi, _ = self._l0[-1]
            self._l0[-1] = (lo, hi, levels[0][-1].table.get_unfiltered)

    def get(self, key: bytes) -> object:
        """The newest value for ``key`` (bytes), None if its newest entry is a tombstone, else MISSING."""
        for lo, hi, get in self._l0:
            if lo <= key <= hi:
                r = get(key)
                if r is not MISSING:
                    return r
        for largest, smallest, gets in self._deep:
            i = bisect_left(largest, key)
            if i < len(gets) and smallest[i] <= key:
                r = gets[i](key)
                if r is not MISSING:
                    return r
        return MISSING

    def files(self) -> list[tuple[int, FileMeta]]:
        """Every ``(level, file)`` pair."""
        return [(lvl, f) for lvl, lv in enumerate(self.levels) for f in lv]

    def level_bytes(self, level: int) -> int:
        """Total size of the files in ``level``."""
        return sum(f.size for f in self.levels[level])

    def overlapping(self, level: int, start: bytes | None, end: bytes | None) -> list[FileMeta]:
        """Files of ``level`` whose key range meets ``[start, end]`` (inclusive; None = unbounded)."""
        return [
            f
            for f in self.levels[level]
            if (end is None or f.smallest <= end) and (start is None or f.largest >= start)
        ]

    def deepest_nonempty(self) -> int:
        """Deepest level holding a file (0 if the version is empty)."""
        for lvl in range(len(self.levels) - 1, 0, -1):
            if self.levels[lvl]:
                return lvl
        return 0

    def check_invariants(self) -> None:
        """Raise CorruptionError describing the first violated level invariant."""
        seen: set[int] = set()
        for lvl, f in self.files():
            if f.number in seen:
                raise CorruptionError(f"file {f.number} appears twice in the version")
            seen.add(f.number)
            if f.smallest > f.largest:
                raise CorruptionError(f"file {f.number} at level {lvl}: smallest key > largest key")
        l0 = self.levels[0]
        for a, b in itertools.pairwise(l0):
            if a.min_seq <= b.max_seq:
                raise CorruptionError(
                    f"level 0 files {a.number} (seq {a.min_seq}..{a.max_seq}) and {b.number} "
                    f"(seq {b.min_seq}..{b.max_seq}) are not ordered newest first by disjoint sequence ranges"
                )
        for lvl in range(1, len(self.levels)):
            lv = self.levels[lvl]
            for a, b in itertools.pairwise(lv):
                if not a.largest < b.smallest:
                    raise CorruptionError(
                        f"level {lvl} files {a.number} and {b.number} overlap: "
                        f"{a.largest!r} >= {b.smallest!r}"
                    )
