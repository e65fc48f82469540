"""Range iteration over memtables and a Version: a merge of sorted sources that keeps the newest entry per
key.

Sources are ordered newest first (live memtable, sealed memtables, level-0 files by age, then each deeper
level as one run); ``heapq.merge`` is stable, so among equal keys the newest source's entry comes out first
and the older ones are skipped. Tombstones hide the key and are not yielded.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from itertools import chain
from operator import itemgetter

from .memtable import MemTable
from .version import Version

Entry = tuple[bytes, bytes | None]


def _level_run(files: list, start: bytes | None, end: bytes | None, reverse: bool) -> Iterator[Entry]:  # type: ignore[type-arg]
    chosen = [f for f in files if (end is None or f.smallest < end) and (start is None or f.largest >= start)]
    if reverse:
        chosen.reverse()
    return chain.from_iterable(f.table.iterate(start, end, reverse) for f in chosen)


def merged_scan(
    lists: list[list[Entry]],
    mems: Iterable[MemTable],
    version: Version,
    start: bytes | None,
    end: bytes | None,
    reverse: bool,
) -> Iterator[tuple[bytes, bytes]]:
    """Live ``(key, value)`` pairs in ``[start, end)`` from all sources, in key order or reversed."""
    sources: list[Iterator[Entry]] = [iter(lst) for lst in lists if lst]
    sources.extend(iter(items) for m in mems if (items := m.range_items(start, end, reverse)))
    for f in version.levels[0]:
        if (end is None or f.smallest < end) and (start is None or f.largest >= start):
            sources.append(f.table.iterate(start, end, reverse))  # type: ignore[union-attr]
    for files in version.levels[1:]:
        if files:
            sources.append(_level_run(files, start, end, reverse))
    return _merge(sources, reverse)


def _merge(sources: list[Iterator[Entry]], reverse: bool) -> Iterator[tuple[bytes, bytes]]:
    if not sources:
        return
    if len(sources) == 1:
        for k, v in sources[0]:
            if v is not None:
                yield k, v
        return
    last: bytes | None = None
    for k, v in heapq.merge(*sources, key=itemgetter(0), reverse=reverse):
        if k == last:
            continue
        last = k
        if v is not None:
            yield k, v
