"""strom.lsm on-disk robustness: WAL framing, torn tails, corrupt blocks, foreign directories, versions."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from pathlib import Path

import pytest

from strom.lsm import (
    DB,
    CorruptionError,
    IncompatibleVersionError,
    NotADatabaseError,
    WriteBatch,
    filename,
)
from strom.lsm import manifest as manifest_module
from strom.lsm.wal import BLOCK_SIZE, LogReader, LogWriter


def _tree_digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(path.rglob("*"))
    }


def test_log_records_of_every_size_roundtrip_across_block_boundaries(tmp_path: Path) -> None:
    sizes = [0, 1, 100, BLOCK_SIZE - 7, BLOCK_SIZE - 13, BLOCK_SIZE, 3 * BLOCK_SIZE + 5, 17, 70000]
    payloads = [os.urandom(n) for n in sizes]
    writer = LogWriter(tmp_path / "x.log")
    for p in payloads:
        writer.add_record(p)
    writer.close()
    reader = LogReader(tmp_path / "x.log")
    assert list(reader) == payloads
    assert reader.error is None


def test_log_reader_stops_at_a_flipped_bit(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "x.log")
    payloads = [b"record-%d" % i * 10 for i in range(50)]
    offsets = [writer.add_record(p) for p in payloads]
    writer.close()
    data = bytearray((tmp_path / "x.log").read_bytes())
    data[offsets[20] + 9] ^= 0x01  # inside record 21's payload
    (tmp_path / "x.log").write_bytes(bytes(data))
    reader = LogReader(tmp_path / "x.log")
    assert list(reader) == payloads[:21]
    assert reader.error is not None and "checksum" in reader.error


def test_resyncing_log_reader_skips_a_damaged_fragmented_record_and_keeps_the_rest(tmp_path: Path) -> None:
    payloads = [os.urandom(100), os.urandom(70000), os.urandom(100), os.urandom(100)]
    writer = LogWriter(tmp_path / "x.log")
    ends = [writer.add_record(p) for p in payloads]
    writer.close()
    data = bytearray((tmp_path / "x.log").read_bytes())
    data[ends[0] + BLOCK_SIZE] ^= 0x01  # inside the second fragment of record 1
    (tmp_path / "x.log").write_bytes(bytes(data))
    reader = LogReader(tmp_path / "x.log", resync=True)
    assert list(reader) == [payloads[0], payloads[2], payloads[3]]
    (damage,) = reader.damage
    assert (damage.offset, damage.offset + damage.length) == (ends[0], ends[1])
    stopping = LogReader(tmp_path / "x.log")
    assert list(stopping) == payloads[:1] and stopping.error is not None


def _open_copy_truncated(src: Path, dst: Path, cut: int) -> DB:
    """A copy of a live database directory (what kill -9 leaves) with its WAL truncated to ``cut`` bytes."""
    shutil.copytree(src, dst)
    (log,) = [p for p in dst.iterdir() if p.suffix == ".log"]
    with open(log, "r+b") as f:
        f.truncate(cut)
    return DB.open(dst)


def test_torn_wal_tail_keeps_every_whole_batch_and_no_partial_one(tmp_path: Path) -> None:
    db = DB.open(tmp_path / "live")
    ends = []
    for i in range(40):
        batch = WriteBatch()
        for j in range(i % 5 + 1):
            batch.put(b"b%02d-%d" % (i, j), os.urandom(30 * j))
        db.write(batch)
        ends.append((i, db._wal.written))  # type: ignore[union-attr]
    try:
        for cut in sorted(
            {1, 6, 7, 100, 501, 1234, 2000, ends[-1][1] - 1, ends[-1][1], *(e for _, e in ends[::7])}
        ):
            with _open_copy_truncated(tmp_path / "live", tmp_path / f"cut{cut}", cut) as copy:
                whole = [i for i, end in ends if end <= cut]
                keys = {k for k, _ in copy.scan()}
                for i in range(40):
                    expected = {b"b%02d-%d" % (i, j) for j in range(i % 5 + 1)}
                    present = expected & keys
                    assert present == (expected if i in whole else set()), (cut, i)
    finally:
        db.close()


def test_wal_garbage_tail_is_tolerated(tmp_path: Path) -> None:
    db = DB.open(tmp_path / "live")
    for i in range(10):
        db.put(b"k%d" % i, b"v")
    shutil.copytree(tmp_path / "live", tmp_path / "copy")
    db.close()
    (log,) = [p for p in (tmp_path / "copy").iterdir() if p.suffix == ".log"]
    with open(log, "ab") as f:
        f.write(b"\x00" * 100 + os.urandom(50))
    with DB.open(tmp_path / "copy") as copy:
        assert [k for k, _ in copy.scan()] == [b"k%d" % i for i in range(10)]


def _corrupt_first_data_block(db_path: Path) -> None:
    (sst,) = [p for p in db_path.iterdir() if p.suffix == ".sst"]
    data = bytearray(sst.read_bytes())
    data[50] ^= 0x40
    sst.write_bytes(bytes(data))


def test_corrupt_table_block_is_reported_never_returned(tmp_path: Path) -> None:
    with DB.open(tmp_path / "db", block_cache_size=0) as db:
        for i in range(1000):
            db.put(b"k%04d" % i, b"value-%04d" % i)
    _corrupt_first_data_block(tmp_path / "db")
    with DB.open(tmp_path / "db", block_cache_size=0) as db:
        with pytest.raises(CorruptionError, match=r"checksum mismatch in block at offset 0"):
            db.get(b"k0000")
        with pytest.raises(CorruptionError):
            list(db.scan())
        assert db.get(b"k0999") == b"value-0999"  # other blocks still read


def test_corrupt_block_fails_compaction_with_a_clear_error(tmp_path: Path) -> None:
    with DB.open(tmp_path / "db") as db:
        for i in range(1000):
            db.put(b"k%04d" % i, b"value-%04d" % i)
    _corrupt_first_data_block(tmp_path / "db")
    with DB.open(tmp_path / "db") as db, pytest.raises(CorruptionError, match="checksum mismatch"):
        db.compact_range()


def test_truncated_table_footer_is_a_corruption_error_at_open(tmp_path: Path) -> None:
    with DB.open(tmp_path / "db") as db:
        db.put(b"k", b"v")
    (sst,) = [p for p in (tmp_path / "db").iterdir() if p.suffix == ".sst"]
    sst.write_bytes(sst.read_bytes()[:-3])
    with pytest.raises(CorruptionError, match=r"magic|footer"):
        DB.open(tmp_path / "db")


def test_directory_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff\xd8 not a db")
    before = _tree_digest(foreign)
    with pytest.raises(NotADatabaseError, match=r"not a strom\.lsm database"):
        DB.open(foreign)
    assert _tree_digest(foreign) == before
    regular = tmp_path / "file"
    regular.write_bytes(b"x")
    with pytest.raises(NotADatabaseError, match="not a directory"):
        DB.open(regular)


def test_garbage_current_file_is_refused_untouched(tmp_path: Path) -> None:
    d = tmp_path / "db"
    d.mkdir()
    (d / "CURRENT").write_bytes(b"hello\n")
    before = _tree_digest(d)
    with pytest.raises(NotADatabaseError, match="CURRENT"):
        DB.open(d)
    assert _tree_digest(d) == before


def test_incompatible_format_version_is_refused_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manifest_module, "FORMAT_VERSION", 99)
    with DB.open(tmp_path / "db") as db:
        db.put(b"k", b"v")
    monkeypatch.undo()
    before = _tree_digest(tmp_path / "db")
    with pytest.raises(IncompatibleVersionError, match="version 99"):
        DB.open(tmp_path / "db")
    assert _tree_digest(tmp_path / "db") == before


def test_torn_manifest_tail_is_ignored(tmp_path: Path) -> None:
    with DB.open(tmp_path / "db") as db:
        db.put(b"k", b"v")
    manifest = next(p for p in (tmp_path / "db").iterdir() if p.name.startswith("MANIFEST-"))
    with open(manifest, "ab") as f:
        f.write(b"\x12\x34\x56\x78\x20\x00\x01partial")
    with DB.open(tmp_path / "db") as db:
        assert db.get(b"k") == b"v"


def test_verify_checksums_finds_a_corrupt_block_nobody_has_read(tmp_path: Path) -> None:
    with DB.open(tmp_path / "db") as db:
        for i in range(1000):
            db.put(b"k%04d" % i, b"value-%04d" % i)
    with DB.open(tmp_path / "db") as db:
        db.verify_checksums()
    _corrupt_first_data_block(tmp_path / "db")
    with DB.open(tmp_path / "db") as db, pytest.raises(CorruptionError, match="checksum mismatch"):
        db.verify_checksums()


def test_bloom_filter_has_no_false_negatives_and_few_false_positives() -> None:
    from strom.lsm.table.bloom import build_filter, may_contain

    keys = [os.urandom(16) for _ in range(20000)]
    filt = build_filter(keys, len(keys), 10)
    assert all(may_contain(filt, k) for k in keys)
    absent = [os.urandom(17) for _ in range(20000)]
    assert sum(may_contain(filt, k) for k in absent) / len(absent) < 0.03
    assert may_contain(build_filter([], 0, 0), b"anything")


def test_every_numbered_file_name_parses_back_to_its_kind_and_number() -> None:
    kinds = filename.FileType
    for number in (1, 42, 999_999, 1_234_567):
        assert filename.parse(filename.log_name(number)) == (kinds.LOG, number)
        assert filename.parse(filename.table_name(number)) == (kinds.TABLE, number)
        assert filename.parse(filename.temp_table_name(number, 4321)) == (kinds.TEMP_TABLE, number)
        assert filename.parse(filename.manifest_name(number)) == (kinds.MANIFEST, number)
    for other in ("LOCK", "CURRENT", "CURRENT.tmp", "12345.log", "000001.log.tmp", "000001.sst.x.tmp", "x"):
        assert filename.parse(other) is None


def test_open_deletes_orphans_and_temporaries_and_numbers_new_files_past_them(tmp_path: Path) -> None:
    with DB.open(tmp_path, background="thread") as db:
        db.put(b"k", b"v")
    orphans = [filename.table_name(90), filename.temp_table_name(91, 1), filename.log_name(3), "CURRENT.tmp"]
    for name in orphans:
        (tmp_path / name).write_bytes(b"left by a crash")
    with DB.open(tmp_path, background="thread") as db:
        assert db.get(b"k") == b"v"
        names = set(os.listdir(tmp_path))
        assert not names & set(orphans)
        parsed = [p for p in map(filename.parse, names) if p is not None]
        started = [n for kind, n in parsed if kind in (filename.FileType.LOG, filename.FileType.MANIFEST)]
        assert len(started) == 2 and min(started) > 91  # the new WAL and MANIFEST


def _damaged_wal_copy(tmp_path: Path, batches: int = 600) -> tuple[Path, Path, int]:
    """A database holding ``batches`` sync-acknowledged batches only in its WAL, copied while open (as kill -9
    leaves it), with 2 bytes flipped in the middle of the WAL. Returns the copy, its WAL and the damaged
    offset."""
    with DB.open(tmp_path / "live", wal="sync") as db:
        for i in range(batches):
            db.write(WriteBatch().put(b"b%04d" % i, b"value-%04d" % i).put(b"m%04d" % i, b""))
        shutil.copytree(tmp_path / "live", tmp_path / "copy")
    (log,) = [p for p in (tmp_path / "copy").iterdir() if p.suffix == ".log"]
    data = bytearray(log.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0xFF
    data[middle + 1] ^= 0xFF
    log.write_bytes(bytes(data))
    return tmp_path / "copy", log, middle


def _present(db: DB) -> list[int]:
    return [int(k[1:]) for k, _ in db.prefix(b"m")]


def test_mid_wal_damage_refuses_to_open_by_default_naming_file_and_offset(tmp_path: Path) -> None:
    copy, log, _ = _damaged_wal_copy(tmp_path)
    before = _tree_digest(copy)
    with pytest.raises(CorruptionError, match=rf"{log.name}.* at offset (\d+).*intact write batches follow"):
        DB.open(copy)
    assert _tree_digest(copy) == before  # refused before anything was written
    with pytest.raises(CorruptionError, match="absolute_consistency"):
        DB.open(copy, wal_recovery_mode="absolute_consistency")


def test_point_in_time_recovery_stops_at_mid_wal_damage_and_reports_what_it_dropped(tmp_path: Path) -> None:
    copy, log, middle = _damaged_wal_copy(tmp_path)
    size = log.stat().st_size
    with DB.open(copy, wal_recovery_mode="point_in_time") as db:
        present = _present(db)
        report = db.recovery
    assert present == list(range(len(present))) and 200 < len(present) < 400
    assert report.mode == "point_in_time"
    assert report.records_replayed == len(present)
    assert report.records_dropped == 600 - len(present) - 1  # the damaged batch is not counted as intact
    assert report.stop_file == log.name and report.stop_offset is not None
    assert report.stop_offset <= middle < report.stop_offset + 40
    assert report.bytes_dropped == size - report.stop_offset
    assert not report.clean


def test_skip_any_corrupted_records_keeps_every_intact_batch(tmp_path: Path) -> None:
    copy, log, middle = _damaged_wal_copy(tmp_path)
    with DB.open(copy, wal_recovery_mode="skip_any_corrupted_records") as db:
        present = _present(db)
        report = db.recovery
    (lost,) = sorted(set(range(600)) - set(present))
    assert report.records_replayed == 599 and report.records_dropped == 0
    (damage,) = report.damage
    assert damage.file == log.name and damage.offset <= middle < damage.offset + damage.length
    assert 0 < lost < 599


def test_without_paranoid_checks_wal_damage_is_skipped_and_reported(tmp_path: Path) -> None:
    copy, _, _ = _damaged_wal_copy(tmp_path)
    with DB.open(copy, paranoid_checks=False) as db:
        assert len(_present(db)) == 599
        assert db.recovery.damage and db.recovery.records_dropped == 0


def test_torn_tail_is_tolerated_by_default_and_reported_but_refused_by_absolute_consistency(
    tmp_path: Path,
) -> None:
    with DB.open(tmp_path / "live", wal="sync") as db:
        for i in range(50):
            db.put(b"m%04d" % i, b"")
        shutil.copytree(tmp_path / "live", tmp_path / "copy")
    (log,) = [p for p in (tmp_path / "copy").iterdir() if p.suffix == ".log"]
    size = log.stat().st_size
    with open(log, "r+b") as f:
        f.truncate(size - 3)
    shutil.copytree(tmp_path / "copy", tmp_path / "copy2")
    with pytest.raises(CorruptionError, match=rf"{log.name}.*offset"):
        DB.open(tmp_path / "copy", wal_recovery_mode="absolute_consistency")
    with DB.open(tmp_path / "copy") as db:
        assert _present(db) == list(range(49))
        report = db.recovery
    assert report.mode == "tolerate_corrupted_tail_records"
    assert report.records_replayed == 49 and report.records_dropped == 0
    assert report.stop_file == log.name and report.bytes_dropped == size - 3 - report.stop_offset  # type: ignore[operator]
    with DB.open(tmp_path / "copy2", wal_recovery_mode="point_in_time") as db:
        assert _present(db) == list(range(49))


def test_clean_wal_replay_is_reported(tmp_path: Path) -> None:
    with DB.open(tmp_path / "live") as db:
        for i in range(30):
            db.put(b"m%04d" % i, b"")
        shutil.copytree(tmp_path / "live", tmp_path / "copy")
    with DB.open(tmp_path / "copy") as db:
        report = db.recovery
    assert report.clean and report.records_replayed == 30 and len(report.logs) == 1
    with DB.open(tmp_path / "copy") as db:  # closed cleanly: nothing left to replay
        assert db.recovery.clean and db.recovery.records_replayed == 0


def test_unknown_wal_recovery_mode_is_an_option_error(tmp_path: Path) -> None:
    from strom.lsm import InvalidOptionError

    with pytest.raises(InvalidOptionError, match="wal_recovery_mode"):
        DB.open(tmp_path / "db", wal_recovery_mode="kPointInTimeRecovery")


def test_open_logs_every_recovery_decision(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with DB.open(tmp_path / "live", wal="sync") as db:
        for i in range(20):
            db.put(b"m%04d" % i, b"")
        shutil.copytree(tmp_path / "live", tmp_path / "copy")
    copy = tmp_path / "copy"
    (log,) = [p for p in copy.iterdir() if p.suffix == ".log"]
    with open(log, "r+b") as f:
        f.truncate(log.stat().st_size - 2)
    manifest = next(p for p in copy.iterdir() if p.name.startswith("MANIFEST-"))
    with open(manifest, "ab") as f:
        f.write(b"\x12\x34\x56\x78\x20\x00\x01partial")
    (copy / filename.table_name(90)).write_bytes(b"left by a crash")
    with caplog.at_level(logging.INFO, logger="strom.lsm"), DB.open(copy):
        pass
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith("strom.lsm")]
    text = "\n".join(m for _, m in messages)
    assert f"{manifest.name}: ignored a torn final record" in text
    assert re.search(rf"replayed \S*{manifest.name}: \d+ edits, \d+ tables, last sequence \d+", text)
    assert any(
        lvl == logging.WARNING and f"{log.name}" in m and "dropped the torn tail" in m for lvl, m in messages
    )
    assert "replayed 19 write batches from " + log.name in text
    assert f"deleted {filename.table_name(90)} (an orphaned table)" in text
    assert f"deleted {log.name} (an obsolete WAL: its writes are in tables)" in text
