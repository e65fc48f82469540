"""Range iteration over memtables and a Version: a merge of sorted sources that keeps the newest entry per
key.

Sources are ordered newest first (live memtable, sealed memtables, level-0 files by age, then each deeper
level as one run), each yielding lists of entries (a block at a time). Forward scans merge them a window at a
time (:func:`strom.lsm.compaction.merge_blocks`); reverse scans use ``heapq.merge``, which is stable, so
among equal keys the newest source's entry comes out first. Tombstones hide the key and are not yielded.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from itertools import chain
from operator import itemgetter

from .compaction import merge_blocks
from .memtable import MemTable
from .version import FileMeta, Version

Entry = tuple[bytes, bytes | None]


def _level_run(
    files: list[FileMeta], start: bytes | None, end: bytes | None, reverse: bool
) -> Iterator[list[Entry]]:
    chosen = [f for f in files if (end is None or f.smallest < end) and (start is None or f.largest >= start)]
    if reverse:
        chosen.reverse()
    return chain.from_iterable(f.table.iter_blocks(start, end, reverse) for f in chosen)  # type: ignore[union-attr]


def merged_scan(
    lists: list[list[Entry]],
    mems: Iterable[MemTable],
    version: Version,
    start: bytes | None,
    end: bytes | None,
    reverse: bool,
) -> Iterator[tuple[bytes, bytes]]:
    """Live ``(key, value)`` pairs in ``[start, end)`` from all sources, in key order or reversed."""
    runs: list[Iterator[list[Entry]]] = [iter([lst]) for lst in lists if lst]
    runs.extend(iter([items]) for m in mems if (items := m.range_items(start, end, reverse)))
    for f in version.levels[0]:
        if (end is None or f.smallest < end) and (start is None or f.largest >= start):
            runs.append(f.table.iter_blocks(start, end, reverse))  # type: ignore[union-attr]
    for files in version.levels[1:]:
        if files:
            runs.append(_level_run(files, start, end, reverse))
    return _merge(runs, reverse)


def _merge(runs: list[Iterator[list[Entry]]], reverse: bool) -> Iterator[tuple[bytes, bytes]]:
    if not runs:
        return
    if not reverse or len(runs) == 1:
        lists = runs[0] if len(runs) == 1 else merge_blocks(runs)
        for lst in lists:
            yield from [kv for kv in lst if kv[1] is not None]  # type: ignore[misc]
        return
    last: bytes | None = None
    sources = [chain.from_iterable(r) for r in runs]
    for k, v in heapq.merge(*sources, key=itemgetter(0), reverse=True):
        if k == last:
            continue
        last = k
        if v is not None:
            yield k, v
