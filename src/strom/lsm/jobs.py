"""Background jobs that turn sorted data into table files: flushing a memtable and merging tables.

Both are pure functions of their inputs (a dict, or table paths) and write only the output paths they are
given, so they run the same in a thread or in the worker process (:mod:`strom.lsm.worker`). Outputs are
written and fsynced under temporary names; the DB renames them into place after the job returns, so a
worker orphaned by a crashed parent can never write over a live file name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain

from .compaction import merge_blocks
from .table.sstable import Table, TableInfo, TableSettings, write_tables


def flush_memtable(
    data: dict[bytes, bytes | None], outputs: list[tuple[int, str]], settings: TableSettings
) -> list[TableInfo]:
    """Write the entries of a (merged) memtable, sorted, as level-0 table(s)."""
    keys = sorted(data)
    return write_tables([(keys, list(map(data.__getitem__, keys)))], outputs, settings)


def _chunks(
    lists: Iterator[list[tuple[bytes, bytes | None]]], drop_tombstones: bool
) -> Iterator[tuple[list[bytes], list[bytes | None]]]:
    for lst in lists:
        if drop_tombstones:
            lst = [kv for kv in lst if kv[1] is not None]
        if lst:
            keys, vals = zip(*lst, strict=True)
            yield list(keys), list(vals)


def merge_tables(
    sources: list[list[str]], drop_tombstones: bool, outputs: list[tuple[int, str]], settings: TableSettings
) -> list[TableInfo]:
    """Merge sorted runs (``sources``: newest first, each a list of table paths in key order)."""
    tables = [[Table(path, -1, None) for path in run] for run in sources]
    try:
        runs: list[Iterator[list[tuple[bytes, bytes | None]]]] = [
            chain.from_iterable(t.iter_blocks(None, None) for t in run) for run in tables
        ]
        return write_tables(_chunks(merge_blocks(runs), drop_tombstones), outputs, settings)
    finally:
        for run in tables:
            for t in run:
                t.close()


JOBS: dict[str, Callable[..., list[TableInfo]]] = {"flush": flush_memtable, "merge": merge_tables}
