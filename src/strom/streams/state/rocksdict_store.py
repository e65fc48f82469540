"""RocksDB via rocksdict, an optional backend (``default.dsl.store = rocksdict``).

rocksdict is imported only when this backend is chosen, so strom runs without it. As in Kafka Streams the
RocksDB write-ahead log is disabled: the changelog topic is the source of truth, and a crash before a commit
is repaired by replaying the changelog from the last checkpoint.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from strom.streams.errors import StoreError


def _rocksdict() -> Any:
    try:
        import rocksdict
    except ImportError:
        raise StoreError(
            "default.dsl.store=rocksdict needs the rocksdict package: pip install rocksdict"
        ) from None
    return rocksdict


class RocksDictKeyValueBytesStore:
    """One RocksDB database in ``path``, raw bytes in and out."""

    persistent = True

    def __init__(self, path: Path) -> None:
        rd = _rocksdict()
        path.mkdir(parents=True, exist_ok=True)
        self._rd = rd
        self._path = path
        self._db = rd.Rdict(str(path), options=rd.Options(raw_mode=True))
        write_options = rd.WriteOptions()
        write_options.disable_wal = True
        self._db.set_write_options(write_options)

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db.get(key)
        return value

    def put(self, key: bytes, value: bytes) -> None:
        self._db.put(key, value)

    def delete(self, key: bytes) -> None:
        self._db.delete(key)

    def write_batch(self, items: Iterable[tuple[bytes, bytes | None]]) -> None:
        batch = self._rd.WriteBatch(raw_mode=True)
        for key, value in items:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._db.write(batch)

    def range(self, lo: bytes | None, hi: bytes | None) -> Iterator[tuple[bytes, bytes]]:
        it = self._db.iter()
        if lo is None:
            it.seek_to_first()
        else:
            it.seek(lo)
        while it.valid():
            key = it.key()
            if hi is not None and key > hi:
                return
            yield key, it.value()
            it.next()

    def approximate_num_entries(self) -> int:
        value = self._db.property_int_value("rocksdb.estimate-num-keys")
        return int(value or 0)

    def flush(self) -> None:
        self._db.flush()

    def close(self) -> None:
        self._db.close()

    def destroy(self) -> None:
        self.close()
        shutil.rmtree(self._path, ignore_errors=True)
