"""`strom check DATA_DIR`: every kind of file of a data directory damaged on purpose, each reported with its
file, place and fault (exit status 1); a clean directory exits 0; nothing is ever modified."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from strom.cli import main
from strom.log.config import LogConfig
from strom.log.log_manager import LogManager
from strom.protocol.records import BatchBuilder

CONFIG = LogConfig(segment_bytes=2000, index_interval_bytes=100)


def payload(tag: int) -> bytes:
    builder = BatchBuilder(producer_id=1, producer_epoch=0, base_sequence=4 * tag)
    for i in range(4):
        builder.append(b"key-%d" % tag, b"%08d-%d:" % (tag, i) + b"x" * 100, 1_000 + tag)
    return builder.build()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A closed data directory with one partition of 40 batches over several segments."""
    root = tmp_path / "data"
    manager = LogManager(root, default_config=CONFIG, cleaner_enabled=False)
    part = manager.create("orders", 0)
    for tag in range(40):
        part.append(payload(tag))
    manager.close()
    return root


def fingerprint(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under `root` with its content hash and mtime."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def run_check(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    before = fingerprint(root)
    code = main(["check", str(root)])
    assert fingerprint(root) == before  # never modifies anything
    return code, capsys.readouterr().out


def segment(root: Path, index: int, kind: str = ".log") -> Path:
    return sorted((root / "orders-0").glob("*.log"))[index].with_suffix(kind)


def flip(path: Path, position: int, mask: int = 0x01) -> None:
    raw = bytearray(path.read_bytes())
    raw[position] ^= mask
    path.write_bytes(bytes(raw))


def second_batch(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[8:12], "big") + 12


def test_a_clean_data_directory_exits_0(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_check(data_dir, capsys)
    assert code == 0, out
    assert "DAMAGE" not in out
    assert "checked 1 partition(s)" in out and "40 batch(es): no damage" in out


def crc_byte(root: Path) -> str:
    log = segment(root, 1)
    flip(log, second_batch(log) + 100)
    return (
        f"orders-0/{log.name} byte {second_batch(log)} (offset {int(log.stem) + 4}): record batch at offset"
    )


def torn_tail(root: Path) -> str:
    log = segment(root, -1)
    raw = log.read_bytes()
    last = 0
    while last + int.from_bytes(raw[last + 8 : last + 12], "big") + 12 < len(raw):
        last += int.from_bytes(raw[last + 8 : last + 12], "big") + 12
    os.truncate(log, len(raw) - 10)
    offset = int.from_bytes(raw[last : last + 8], "big")
    return f"orders-0/{log.name} byte {last} (offset {offset}): batch length"


def base_offset(root: Path) -> str:
    log = segment(root, 1)
    flip(log, second_batch(log) + 7, 0x80)  # outside the CRC: only the offset order shows it
    return f"orders-0/{log.name} byte {second_batch(log)}"


def offset_index(root: Path) -> str:
    index = segment(root, 1, ".index")
    assert index.stat().st_size >= 8
    flip(index, 7)  # the first entry's position
    return f"orders-0/{index.name} entry 0"


def time_index_size(root: Path) -> str:
    index = segment(root, 1, ".timeindex")
    index.write_bytes(index.read_bytes() + b"\x00")
    return f"orders-0/{index.name}: size"


def txn_index(root: Path) -> str:
    index = segment(root, 1, ".txnindex")
    index.write_bytes(b"\x00\x07" + bytes(32))
    return f"orders-0/{index.name}: "


def snapshot(root: Path) -> str:
    snap = sorted((root / "orders-0").glob("*.snapshot"))[-1]
    flip(snap, len(snap.read_bytes()) - 1)
    return f"orders-0/{snap.name}: producer snapshot does not read"


def recovery_point(root: Path) -> str:
    (root / "recovery-point-offset-checkpoint").write_text("0\n1\norders 0 9999\n")
    return (
        "recovery-point-offset-checkpoint entry orders 0: offset 9999 is beyond the partition's log end 160"
    )


def checkpoint_format(root: Path) -> str:
    (root / "log-start-offset-checkpoint").write_text("0\n2\norders 0 0\n")
    return "log-start-offset-checkpoint: "


def leader_epochs(root: Path) -> str:
    (root / "orders-0" / "leader-epoch-checkpoint").write_text("0\n2\n0 0\nnonsense\n")
    return "orders-0/leader-epoch-checkpoint: malformed"


DAMAGE: dict[str, Callable[[Path], str]] = {
    f.__name__: f
    for f in (
        crc_byte,
        torn_tail,
        base_offset,
        offset_index,
        time_index_size,
        txn_index,
        snapshot,
        recovery_point,
        checkpoint_format,
        leader_epochs,
    )
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_damage_is_reported_with_file_place_and_fault(
    data_dir: Path, capsys: pytest.CaptureFixture[str], damage: Callable[[Path], str]
) -> None:
    expected = damage(data_dir)
    code, out = run_check(data_dir, capsys)
    assert code == 1, out
    damage_lines = [line for line in out.splitlines() if line.startswith("DAMAGE: ")]
    assert any(expected in line for line in damage_lines), out


def test_crash_leftovers_are_notes_and_do_not_fail_the_check(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = segment(data_dir, 0)
    (log.parent / (log.name + ".cleaned")).write_bytes(b"")
    (data_dir / "recovery-point-offset-checkpoint.tmp").write_text("0\n")
    code, out = run_check(data_dir, capsys)
    assert code == 0, out
    assert f"note: orders-0/{log.name}.cleaned: left by an unfinished clean or delete" in out
    assert "note: recovery-point-offset-checkpoint.tmp" in out


def test_quiet_prints_only_damage(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = segment(data_dir, 1)
    flip(log, second_batch(log) + 100)
    assert main(["check", "--quiet", str(data_dir)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("DAMAGE: ")


def test_a_missing_directory_is_damage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nowhere")]) == 1
    assert "is not a directory" in capsys.readouterr().out
