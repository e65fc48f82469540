"""The default persistent backend: one strom.lsm database per store (per window segment for window stores).

Durability: the LSM's WAL runs in ``buffered`` mode (each write batch is handed to the OS before it is
applied), so a store survives a killed process with everything ``commit()`` flushed into it, and a checkpoint
written after ``commit()`` is consistent with it. Against power loss the changelog is the source of truth: the
last writes before the outage may be missing locally, as with Kafka Streams' RocksDB stores (whose WAL is off)
— wipe the task directory after a machine crash to force a full restore. Flushing the memtable at each commit
would write a table file per commit, so ``flush()`` leaves that to the LSM's own memtable rotation.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from strom.lsm import DB, WriteBatch

log = logging.getLogger("strom.streams")

# Kafka Streams sizes RocksDB per store with a 16 MiB write buffer; a smaller block cache keeps many tasks'
# stores within a reasonable footprint.
MEMTABLE_BYTES = 16 * 1024 * 1024
BLOCK_CACHE_BYTES = 8 * 1024 * 1024


class LsmKeyValueBytesStore:
    persistent = True

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._db = DB.open(
            path, memtable_size=MEMTABLE_BYTES, block_cache_size=BLOCK_CACHE_BYTES, wal="buffered"
        )

    def get(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self._db.put(key, value)

    def delete(self, key: bytes) -> None:
        self._db.delete(key)

    def write_batch(self, items: Iterable[tuple[bytes, bytes | None]]) -> None:
        batch = WriteBatch()
        for key, value in items:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        if len(batch):
            self._db.write(batch)

    def range(self, lo: bytes | None, hi: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        # scan's end is exclusive; hi + b"\0" is the smallest key greater than hi.
        return self._db.scan(lo, None if hi is None else hi + b"\x00")

    def approximate_num_entries(self) -> int:
        return sum(1 for _ in self._db.scan())

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self._db.close()

    def destroy(self) -> None:
        """Close and delete in a background thread: closing flushes the memtable and joins the LSM's threads,
        which takes long and is wasted on a store being dropped (an expired window segment); the caller marks
        the directory dropped first, so a crash half-way leaves nothing that is read again."""
        db, path = self._db, self._path

        def finish() -> None:
            try:
                db.close()
            except Exception as e:  # the directory may already be gone (store wiped)
                log.debug("closing dropped store %s: %s", path, e)
            finally:
                shutil.rmtree(path, ignore_errors=True)

        threading.Thread(target=finish, name=f"strom-drop-{path.name}", daemon=True).start()
