"""strom.lsm next to RocksDB (rocksdict: defaults, Kafka Streams options), LevelDB, LMDB and SQLite.

The reference workload (shared/reference/lsm.md section 7): N unique random 16-byte keys in random order
with 100-byte values (50 random bytes repeated twice), and per store:
  single puts      one atomic write per key into a fresh database, then close
  batched puts     batches of 1,000 into a second fresh database, then close
  gets             every key of the first database in random order, after reopening it
  missing gets     N/10 absent keys
  full scan        one ordered pass over keys and values
  range scans      1,000 scans of 100 keys from random start keys
  size on disk     allocated bytes of the first database after close, against the raw key+value bytes
Every store runs in its own process, one after the other; every run is verified (all keys found, no absent key
found, scan complete and ordered). Durability is each store's default except LMDB (sync=False) and SQLite
(WAL journal, synchronous=NORMAL), as in the reference's "no fsync" rows; strom.lsm's default WAL mode is
``buffered`` (every write handed to the OS, like RocksDB's default). Ratios are against rocksdict defaults.

Usage: python bench/lsm.py [--n 1000000] [--repeat 3] [--stores strom,rocksdict,...] [--dir PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

STORES = ["strom", "strom-ks", "rocksdict", "rocksdict-ks", "plyvel", "lmdb", "sqlite3"]
LABELS = {
    "strom": "strom.lsm default",
    "strom-ks": "strom.lsm wal=off,tiered",
    "rocksdict": "RocksDB default",
    "rocksdict-ks": "RocksDB KS opts",
    "plyvel": "LevelDB",
    "lmdb": "LMDB (nosync)",
    "sqlite3": "SQLite (WAL)",
}
ROWS = [
    ("single_puts", "single puts/s"),
    ("batched_puts", "batched puts/s"),
    ("gets", "gets/s"),
    ("missing_gets", "missing gets/s"),
    ("scan", "full scan keys/s"),
    ("range_scans", "100-key range scans/s"),
    ("size_ratio", "size on disk / raw"),
]
BATCH = 1000
RANGE_SCANS = 1000
RANGE_LEN = 100


def make_data(n: int, seed: int = 42) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """Keys (unique, random order), values, and n/10 absent keys."""
    rng = random.Random(seed)
    keys_set: set[bytes] = set()
    while len(keys_set) < n:
        keys_set.add(rng.randbytes(16))
    keys = list(keys_set)
    rng.shuffle(keys)
    values = [rng.randbytes(50) * 2 for _ in range(n)]
    missing: list[bytes] = []
    while len(missing) < max(1, n // 10):
        k = rng.randbytes(16)
        if k not in keys_set:
            missing.append(k)
    return keys, values, missing


def disk_usage(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


class Adapter:
    """One store behind the operations the workload needs."""

    def open(self, path: Path) -> None: ...
    def close(self) -> None: ...
    def put(self) -> Callable[[bytes, bytes], Any]: ...
    def write_batch(self, pairs: list[tuple[bytes, bytes]]) -> None: ...
    def get(self) -> Callable[[bytes], bytes | None]: ...
    def scan(self, start: bytes | None, limit: int | None) -> Iterator[tuple[bytes, bytes]]: ...


class Strom(Adapter):
    def __init__(self, **options: Any) -> None:
        self.options = options

    def open(self, path: Path) -> None:
        from strom.lsm import DB

        self.db = DB.open(path, **self.options)

    def close(self) -> None:
        self.db.close()

    def put(self) -> Callable[[bytes, bytes], Any]:
        return self.db.put

    def write_batch(self, pairs: list[tuple[bytes, bytes]]) -> None:
        from strom.lsm import WriteBatch

        b = WriteBatch()
        for k, v in pairs:
            b.put(k, v)
        self.db.write(b)

    def get(self) -> Callable[[bytes], bytes | None]:
        return self.db.get

    def scan(self, start: bytes | None, limit: int | None) -> Iterator[tuple[bytes, bytes]]:
        it = self.db.scan(start)
        if limit is None:
            return it
        return (kv for _, kv in zip(range(limit), it, strict=False))


class Rocks(Adapter):
    def __init__(self, kafka_streams: bool) -> None:
        self.ks = kafka_streams

    def _options(self) -> Any:
        import rocksdict as r

        opts = r.Options(raw_mode=True)
        if self.ks:
            # Kafka Streams' RocksDBStore.openDB(): no WAL, universal compaction, no compression, 16 MiB x 3
            # write buffers, 50 MiB LRU cache, 4 KiB blocks, 10 bits/key bloom, optimizeFiltersForHits.
            table = r.BlockBasedOptions()
            table.set_block_cache(r.Cache(50 * 1024 * 1024))
            table.set_block_size(4096)
            table.set_bloom_filter(10, False)
            opts.set_block_based_table_factory(table)
            opts.set_compaction_style(r.DBCompactionStyle.universal())
            opts.set_compression_type(r.DBCompressionType.none())
            opts.set_write_buffer_size(16 * 1024 * 1024)
            opts.set_max_write_buffer_number(3)
            opts.set_optimize_filters_for_hits(True)
            opts.increase_parallelism(max(os.cpu_count() or 2, 2))
        return opts

    def open(self, path: Path) -> None:
        import rocksdict as r

        self.db = r.Rdict(str(path), self._options())
        if self.ks:
            wo = r.WriteOptions()
            wo.disable_wal = True
            self.db.set_write_options(wo)

    def close(self) -> None:
        self.db.close()

    def put(self) -> Callable[[bytes, bytes], Any]:
        return self.db.put

    def write_batch(self, pairs: list[tuple[bytes, bytes]]) -> None:
        import rocksdict as r

        b = r.WriteBatch(raw_mode=True)
        for k, v in pairs:
            b.put(k, v)
        self.db.write(b)

    def get(self) -> Callable[[bytes], bytes | None]:
        return self.db.get

    def scan(self, start: bytes | None, limit: int | None) -> Iterator[tuple[bytes, bytes]]:
        it = self.db.items(from_key=start) if start is not None else self.db.items()
        if limit is None:
            return iter(it)
        return (kv for _, kv in zip(range(limit), it, strict=False))


class Level(Adapter):
    def open(self, path: Path) -> None:
        import plyvel

        self.db = plyvel.DB(str(path), create_if_missing=True)

    def close(self) -> None:
        self.db.close()

    def put(self) -> Callable[[bytes, bytes], Any]:
        return self.db.put

    def write_batch(self, pairs: list[tuple[bytes, bytes]]) -> None:
        with self.db.write_batch() as b:
            for k, v in pairs:
                b.put(k, v)

    def get(self) -> Callable[[bytes], bytes | None]:
        return self.db.get

    def scan(self, start: bytes | None, limit: int | None) -> Iterator[tuple[bytes, bytes]]:
        it = self.db.iterator(start=start) if start is not None else self.db.iterator()
        if limit is None:
            return iter(it)
        return (kv for _, kv in zip(range(limit), it, strict=False))


class Lmdb(Adapter):
    def open(self, path: Path) -> None:
        import lmdb

        self.env = lmdb.open(str(path), map_size=4 << 30, sync=False)
        self.txn: Any = None

    def close(self) -> None:
        if self.txn is not None:
            self.txn.abort()
        self.env.close()

    def put(self) -> Callable[[bytes, bytes], Any]:
        env = self.env

        def put(k: bytes, v: bytes) -> None:
            with env.begin(write=True) as txn:
                txn.put(k, v)

        return put

    def write_batch(self, pairs: list[tuple[bytes, bytes]]) -> None:
        with self.env.begin(write=True) as txn:
            for k, v in pairs:
                txn.put(k, v)

    def get(self) -> Callable[[bytes], bytes | None]:
        if self.txn is None:
            self.txn = self.env.begin()
        return self.txn.get  # type: ignore[no-any-return]

    def scan(self, start: bytes | None, limit: int | None) -> Iterator[tuple[bytes, bytes]]:
        if self.txn is None:
            self.txn = self.env.begin()
        cur = self.txn.cursor()
        if start is not None:
            cur.set_range(start)
        else:
            cur.first()
        it = cur.iternext()
        if limit is None:
            return iter(it)
        return (kv for _, kv in zip(range(limit), it, strict=False))


class Sqlite(Adapter):
    def open(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path / "kv.sqlite", check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")

    def close(self) -> None:
        self.db.close()

    def put(self) -> Callable[[bytes, bytes], Any]:
        db = self.db

        def put(k: bytes, v: bytes) -> None:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (k, v))
            db.commit()

        return put

    def write_batch(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", pairs)
        self.db.commit()

    def get(self) -> Callable[[bytes], bytes | None]:
        db = self.db

        def get(k: bytes) -> bytes | None:
            row = db.execute("SELECT v FROM kv WHERE k = ?", (k,)).fetchone()
            return None if row is None else row[0]

        return get

    def scan(self, start: bytes | None, limit: int | None) -> Iterator[tuple[bytes, bytes]]:
        sql = "SELECT k, v FROM kv" + (" WHERE k >= ?" if start is not None else "") + " ORDER BY k"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return iter(self.db.execute(sql, (start,) if start is not None else ()))


def adapter(name: str) -> Adapter:
    return {
        "strom": lambda: Strom(),
        "strom-ks": lambda: Strom(wal="off", compaction_style="tiered", memtable_size=16 << 20),
        "rocksdict": lambda: Rocks(False),
        "rocksdict-ks": lambda: Rocks(True),
        "plyvel": lambda: Level(),
        "lmdb": lambda: Lmdb(),
        "sqlite3": lambda: Sqlite(),
    }[name]()


def run_store(name: str, n: int, base: Path) -> dict[str, float]:
    """The whole workload for one store; returns ops/s per row (and the size ratio)."""
    keys, values, missing = make_data(n)
    raw = n * (16 + 100)
    store = adapter(name)
    out: dict[str, float] = {}
    a, b = base / "single", base / "batched"

    store.open(a)
    put = store.put()
    t = time.perf_counter()
    for k, v in zip(keys, values, strict=True):
        put(k, v)
    out["single_puts"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    store.close()
    out["close_after_puts_s"] = time.perf_counter() - t
    if isinstance(store, Strom):
        out["write_amplification"] = store.db.stats().write_amplification

    store.open(b)
    pairs = list(zip(keys, values, strict=True))
    t = time.perf_counter()
    for i in range(0, n, BATCH):
        store.write_batch(pairs[i : i + BATCH])
    out["batched_puts"] = n / (time.perf_counter() - t)
    store.close()
    del pairs
    shutil.rmtree(b)

    store.open(a)
    get = store.get()
    order = list(range(n))
    random.Random(1).shuffle(order)
    probe = [keys[i] for i in order]
    t = time.perf_counter()
    found = [get(k) for k in probe]
    out["gets"] = n / (time.perf_counter() - t)
    assert all(found[j] == values[i] for j, i in enumerate(order)), f"{name}: a get returned a wrong value"
    del found
    t = time.perf_counter()
    absent = [get(k) for k in missing]
    out["missing_gets"] = len(missing) / (time.perf_counter() - t)
    assert not any(absent), f"{name}: an absent key was found"

    t = time.perf_counter()
    count = 0
    last = b""
    for k, _v in store.scan(None, None):
        count += 1
        if k <= last:
            raise AssertionError(f"{name}: scan out of order")
        last = k
    out["scan"] = count / (time.perf_counter() - t)
    assert count == n, f"{name}: scan returned {count} of {n} keys"

    rng = random.Random(2)
    starts = [rng.randbytes(16) for _ in range(RANGE_SCANS)]
    t = time.perf_counter()
    got = 0
    for s in starts:
        got += sum(1 for _ in store.scan(s, RANGE_LEN))
    out["range_scans"] = RANGE_SCANS / (time.perf_counter() - t)
    assert got >= RANGE_SCANS * RANGE_LEN * 0.9, f"{name}: range scans returned {got} keys"
    if isinstance(store, Strom):
        s = store.db.stats()
        out["files_per_level"] = s.files_per_level  # type: ignore[assignment]
    store.close()
    out["size_ratio"] = disk_usage(a) / raw
    return out


def _median(rounds: list[dict[str, float]]) -> dict[str, float]:
    out = dict(rounds[-1])
    for key, _ in ROWS:
        out[key] = statistics.median(r[key] for r in rounds)
    return out


def fmt(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    if v >= 1e3:
        return f"{v / 1e3:.1f} k"
    return f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="number of keys (default 1,000,000)")
    ap.add_argument("--stores", default=",".join(STORES), help=f"comma-separated subset of {STORES}")
    ap.add_argument("--dir", default=None, help="where to put the databases (default: a temp dir)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; each figure is the median (default 1)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(run_store(args.worker, args.n, Path(args.dir))))
        return
    stores = [s for s in args.stores.split(",") if s]
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in stores}
    root = Path(tempfile.mkdtemp(prefix="bench-lsm-", dir=args.dir))
    try:
        for rnd in range(args.repeat):
            # Alternate the order between rounds so that load drifting over time biases no store.
            for s in stores if rnd % 2 == 0 else reversed(stores):
                d = root / f"{s}-{rnd}"
                d.mkdir()
                cmd = [sys.executable, __file__, "--worker", s, "--n", str(args.n), "--dir", str(d)]
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
                shutil.rmtree(d, ignore_errors=True)
                if proc.returncode != 0:
                    print(f"{s}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
                    continue
                runs[s].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(f"  round {rnd + 1}/{args.repeat}: {s} done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results = {s: _median(r) for s, r in runs.items() if r}
    base = results.get("rocksdict")
    names = list(results)
    print(
        f"\nstrom.lsm benchmark: N={args.n:,} keys of 16 B, values of 100 B "
        f"(raw {args.n * 116 / 2**20:.1f} MiB)"
    )
    width = 24
    print(f"{'':{width}}" + "".join(f"{LABELS[s]:>26}" for s in names))
    for key, label in ROWS:
        cells = []
        for s in names:
            v = results[s][key]
            cell = fmt(v)
            if base is not None and s != "rocksdict":
                ratio = (base[key] / v) if key == "size_ratio" else (v / base[key])
                cell += f" ({ratio:.2f}x)"
            cells.append(f"{cell:>26}")
        print(f"{label:{width}}" + "".join(cells))
    print("\n(ratio) = ops/s relative to RocksDB default; for size, RocksDB size / this size (>1 = smaller).")
    for s in names:
        extra = {k: v for k, v in results[s].items() if k not in dict(ROWS)}
        print(
            f"{LABELS[s]}: "
            + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items())
        )


if __name__ == "__main__":
    main()
