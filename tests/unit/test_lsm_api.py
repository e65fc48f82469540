"""strom.lsm public API: reads, writes, batches, scans, snapshots, options, statistics and bad input."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from strom.lsm import (
    DB,
    DatabaseClosedError,
    DatabaseLockedError,
    InvalidOptionError,
    WriteBatch,
)

SMALL = {
    "memtable_size": 4096,
    "level0_file_trigger": 2,
    "level1_size": 16384,
    "target_file_size": 8192,
    "block_size": 512,
    "paranoid_checks": True,
}


def _key(i: int) -> bytes:
    return b"k%06d" % i


def test_put_get_delete_roundtrip(tmp_path: Path) -> None:
    with DB.open(tmp_path / "db") as db:
        db.put(b"a", b"1")
        db.put(b"b", b"")
        assert db.get(b"a") == b"1"
        assert db.get(b"b") == b""
        assert db.get(b"missing") is None
        assert db.get(b"missing", b"dflt") == b"dflt"
        db.delete(b"a")
        db.delete(b"never-there")
        assert db.get(b"a") is None
        assert b"b" in db and b"a" not in db
        with pytest.raises(KeyError):
            db[b"a"]


def test_write_batch_applies_all_entries_in_order(tmp_path: Path) -> None:
    with DB.open(tmp_path / "db") as db:
        db.put(b"x", b"old")
        batch = WriteBatch().put(b"a", b"1").put(b"a", b"2").delete(b"x").put(b"y", b"3")
        assert len(batch) == 4
        db.write(batch)
        assert (db.get(b"a"), db.get(b"x"), db.get(b"y")) == (b"2", None, b"3")
        db.write(WriteBatch())  # empty batch is a no-op


def test_values_survive_flush_compaction_and_reopen(tmp_path: Path) -> None:
    rng = random.Random(7)
    model: dict[bytes, bytes] = {}
    with DB.open(tmp_path / "db", **SMALL) as db:
        for _i in range(3000):
            k = _key(rng.randrange(1500))
            if rng.random() < 0.2:
                db.delete(k)
                model.pop(k, None)
            else:
                v = os.urandom(rng.randrange(40))
                db.put(k, v)
                model[k] = v
        db.wait_for_compactions()
        stats = db.stats()
        assert stats.flushes > 0 and stats.compactions > 0
        db.check_invariants()
        assert list(db.scan()) == sorted(model.items())
    with DB.open(tmp_path / "db", **SMALL) as db:
        assert all(db.get(k) == v for k, v in model.items())
        assert list(db.scan(reverse=True)) == sorted(model.items(), reverse=True)


def test_scan_bounds_are_start_inclusive_end_exclusive(tmp_path: Path) -> None:
    with DB.open(tmp_path / "db", **SMALL) as db:
        for i in range(200):
            db.put(_key(i), b"v%d" % i)
        db.flush()
        for i in range(0, 200, 3):
            db.put(_key(i), b"new%d" % i)  # newer values in the memtable shadow the table
        got = list(db.scan(_key(10), _key(20)))
        assert [k for k, _ in got] == [_key(i) for i in range(10, 20)]
        assert got[2] == (_key(12), b"new12")
        rev = list(db.scan(_key(10), _key(20), reverse=True))
        assert rev == list(reversed(got))
        assert [k for k, _ in db.scan(end=_key(3))] == [_key(0), _key(1), _key(2)]
        assert [k for k, _ in db.scan(start=_key(197))] == [_key(197), _key(198), _key(199)]
        assert list(db.scan(_key(5), _key(5))) == []


def test_prefix_handles_trailing_ff_bytes(tmp_path: Path) -> None:
    with DB.open(tmp_path / "db") as db:
        for k in (b"a", b"a\xff", b"a\xff\xff", b"a\xff\x00", b"b", b"\xff", b"\xff\xff"):
            db.put(k, k)
        assert [k for k, _ in db.prefix(b"a\xff")] == [b"a\xff", b"a\xff\x00", b"a\xff\xff"]
        assert [k for k, _ in db.prefix(b"\xff")] == [b"\xff", b"\xff\xff"]
        assert [k for k, _ in db.prefix(b"a", reverse=True)] == [b"a\xff\xff", b"a\xff\x00", b"a\xff", b"a"]


@pytest.mark.parametrize("entries", [10, 5000])  # copied memtable, and a sealed one
def test_snapshot_does_not_see_later_writes(tmp_path: Path, entries: int) -> None:
    with DB.open(tmp_path / "db", **{**SMALL, "memtable_size": 1 << 20}) as db:
        for i in range(entries):
            db.put(_key(i), b"before")
        snap = db.snapshot()
        for i in range(entries):
            db.put(_key(i), b"after")
        db.delete(_key(0))
        db.put(b"zzz", b"new")
        db.compact_range()
        assert snap.get(_key(0)) == b"before"
        assert snap.get(b"zzz") is None
        assert all(v == b"before" for _, v in snap.scan())
        assert len(list(snap.scan())) == entries
        assert db.get(_key(0)) is None and db.get(_key(1)) == b"after"
        snap.release()


def test_scan_iterator_is_a_consistent_view(tmp_path: Path) -> None:
    with DB.open(tmp_path / "db", **SMALL) as db:
        for i in range(100):
            db.put(_key(i), b"1")
        it = db.scan()
        first = next(it)
        for i in range(100):
            db.put(_key(i), b"2")
        db.put(_key(1000), b"2")
        rest = list(it)
        assert first == (_key(0), b"1")
        assert all(v == b"1" for _, v in rest) and len(rest) == 99


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda db: db.put("k", b"v"), "key"),
        (lambda db: db.put(b"k", "v"), "value"),
        (lambda db: db.put(b"k", None), "value"),
        (lambda db: db.get(1), "key"),
        (lambda db: db.delete(bytearray(b"k")), "key"),
        (lambda db: db.scan("a"), "start"),
        (lambda db: db.scan(None, 5), "end"),
        (lambda db: db.prefix("p"), "prefix"),
        (lambda db: WriteBatch().put(b"k", 3), "value"),
        (lambda db: WriteBatch().delete("k"), "key"),
        (lambda db: db.write({b"k": b"v"}), "batch"),
    ],
)
def test_non_bytes_arguments_raise_type_error_naming_them(tmp_path: Path, call: object, name: str) -> None:
    with DB.open(tmp_path / "db") as db:
        with pytest.raises(TypeError, match=name):
            call(db)  # type: ignore[operator]
        assert list(db.scan()) == []


def test_unknown_or_bad_options_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="memtable_sise"):
        DB.open(tmp_path / "db", memtable_sise=10)
    with pytest.raises(InvalidOptionError, match="wal"):
        DB.open(tmp_path / "db", wal="always")
    with pytest.raises(InvalidOptionError, match="block_size"):
        DB.open(tmp_path / "db", block_size=0)
    assert not (tmp_path / "db").exists()


def test_second_open_of_same_database_is_a_lock_error(tmp_path: Path) -> None:
    with DB.open(tmp_path / "db") as db:
        db.put(b"k", b"v")
        with pytest.raises(DatabaseLockedError):
            DB.open(tmp_path / "db")
        assert db.get(b"k") == b"v"
    with DB.open(tmp_path / "db") as db:
        assert db.get(b"k") == b"v"


def test_closed_database_refuses_operations(tmp_path: Path) -> None:
    db = DB.open(tmp_path / "db")
    snap = db.snapshot()
    db.close()
    db.close()  # idempotent
    for call in (lambda: db.put(b"k", b"v"), lambda: db.get(b"k"), lambda: db.scan(), lambda: snap.get(b"k")):
        with pytest.raises(DatabaseClosedError):
            call()


@pytest.mark.parametrize("mode", ["off", "buffered", "sync"])
def test_every_wal_mode_persists_after_close(tmp_path: Path, mode: str) -> None:
    with DB.open(tmp_path / "db", wal=mode) as db:
        for i in range(500):
            db.put(_key(i), b"v")
        db.write(WriteBatch().delete(_key(0)))
    with DB.open(tmp_path / "db", wal=mode) as db:
        assert db.get(_key(0)) is None
        assert len(list(db.scan())) == 499


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_compression_roundtrips_and_shrinks_tables(tmp_path: Path, compression: str) -> None:
    value = os.urandom(25) * 4
    sizes = {}
    for comp in ("none", compression):
        with DB.open(tmp_path / comp, compression=comp) as db:
            for i in range(2000):
                db.put(_key(i), value)
            db.flush()
            sizes[comp] = sum(db.stats().bytes_per_level)
        with DB.open(tmp_path / comp, compression=comp) as db:
            assert all(db.get(_key(i)) == value for i in range(0, 2000, 7))
    assert sizes[compression] < sizes["none"] * 0.8


def test_compact_range_drops_tombstones_at_the_bottom(tmp_path: Path) -> None:
    with DB.open(tmp_path / "db", **SMALL) as db:
        for i in range(1000):
            db.put(_key(i), b"x" * 20)
        db.flush()
        for i in range(1000):
            db.delete(_key(i))
        db.put(b"survivor", b"1")
        db.compact_range()
        db.check_invariants()
        assert list(db.scan()) == [(b"survivor", b"1")]
        stats = db.stats()
        assert sum(stats.files_per_level) == 1
        assert stats.bytes_per_level[max(i for i, n in enumerate(stats.files_per_level) if n)] < 1000


def test_size_tiered_compaction_bounds_the_number_of_runs(tmp_path: Path) -> None:
    model = {}
    with DB.open(tmp_path / "db", **{**SMALL, "compaction_style": "tiered"}) as db:
        for i in range(4000):
            k = _key(i % 1700)
            db.put(k, b"%d" % i)
            model[k] = b"%d" % i
        db.wait_for_compactions()
        stats = db.stats()
        assert stats.compactions > 0
        assert stats.files_per_level[0] < 4 and sum(stats.files_per_level[1:]) == 0
        assert list(db.scan()) == sorted(model.items())


def test_statistics_count_bytes_and_write_amplification(tmp_path: Path) -> None:
    with DB.open(tmp_path / "db", **SMALL) as db:
        for i in range(2000):
            db.put(_key(i), b"v" * 30)
        db.wait_for_compactions()
        s = db.stats()
        assert s.user_bytes_written == 2000 * (7 + 30)
        assert s.wal_bytes_written > s.user_bytes_written
        assert s.flush_bytes_written > 0 and s.bytes_written > s.flush_bytes_written
        assert s.write_amplification > 1.0


def test_concurrent_writers_and_readers(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with DB.open(tmp_path / "db", **SMALL) as db:

        def writer(t: int) -> None:
            try:
                for i in range(600):
                    db.put(b"t%d-%05d" % (t, i), b"%d" % i)
            except BaseException as exc:
                errors.append(exc)

        def reader() -> None:
            try:
                for _ in range(30):
                    keys = [k for k, _ in db.scan()]
                    assert keys == sorted(keys)
                    for k in keys[:20]:
                        assert db.get(k) is not None
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
        threads += [threading.Thread(target=reader) for _ in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        assert not errors
        db.wait_for_compactions()
        assert len(list(db.scan())) == 1800
        db.check_invariants()


@pytest.mark.parametrize("background", ["thread", "process"])
def test_background_modes_flush_and_compact_alike(tmp_path: Path, background: str) -> None:
    events: list[str] = []
    opts = {**SMALL, "background": background, "event_listener": lambda name, details: events.append(name)}
    with DB.open(tmp_path / "db", **opts) as db:
        for i in range(1500):
            db.put(_key(i % 700), b"%d" % i)
        db.wait_for_compactions()
        assert {"flush_begin", "flush_end", "compaction_begin", "compaction_end"} <= set(events)
        assert [v for _, v in db.scan()] == [b"%d" % (j + 1400 if j < 100 else j + 700) for j in range(700)]


def test_a_dead_worker_process_is_replaced(tmp_path: Path) -> None:
    from strom.lsm.worker import worker

    with DB.open(tmp_path / "db", background="process") as db:
        db.put(b"a", b"1")
        db.flush()
        proc = worker("flush")._proc
        assert proc is not None
        proc.kill()
        proc.wait(timeout=30)
        db.put(b"b", b"2")
        db.flush()
        assert worker("flush")._proc is not proc
        assert list(db.scan()) == [(b"a", b"1"), (b"b", b"2")]
