"""kill -9 a cleaner at every step of a pass: the reopened log is valid and holds the old or the new data.

The cleaner runs in a subprocess that counts its file-system steps (segment writes, fsyncs, renames) and
SIGKILLs itself at step K. The parent then reopens the partition (unclean start: recovery deletes `.cleaned`
files and completes or discards `.swap` files) and checks that every batch is valid, that no record was
invented or moved, that every key still reads its latest value, and that a new pass finishes the job.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from strom.log.cleaner import Cleaner
from strom.log.config import LogConfig
from strom.log.partition import Partition
from strom.protocol.records import BatchBuilder

T0 = 1_700_000_000_000
TP = ("crashy", 0)
CONFIG = LogConfig(
    cleanup_policy=frozenset({"compact"}), segment_bytes=3000, file_delete_delay_ms=0, delete_retention_ms=0
)

_CHILD = """
import os, signal, sys
from pathlib import Path
from strom.log.cleaner import Cleaner
from strom.log.config import LogConfig
from strom.log.partition import Partition
from strom.log.segment import Segment

kill_at = int(sys.argv[2])
steps = 0

def step():
    global steps
    steps += 1
    if steps == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

def counting(fn):
    def wrapper(*args, **kwargs):
        step()
        result = fn(*args, **kwargs)
        step()
        if fn is real_replace:
            print("after", steps, Path(args[1]).suffix)  # where each rename into a state ends
        return result
    return wrapper

real_replace = os.replace

config = LogConfig(cleanup_policy=frozenset({"compact"}), segment_bytes=3000, file_delete_delay_ms=0,
                   delete_retention_ms=0)
part = Partition.open(Path(sys.argv[1]) / "crashy-0", config, clock=lambda: NOW)
os.replace = counting(os.replace)
os.fsync = counting(os.fsync)
os.unlink = counting(os.unlink)
Segment.append_batches = counting(Segment.append_batches)
Cleaner(Path(sys.argv[1]), clock=lambda: NOW).clean(("crashy", 0), part)
print("total", steps)
""".replace("NOW", str(T0 + 1))


Row = tuple[int, bytes | None, bytes | None]


def build_log(data_dir: Path) -> None:
    part = Partition.open(data_dir / "crashy-0", CONFIG, clock=lambda: T0)
    for round_ in range(6):
        for start in range(0, 12, 3):
            builder = BatchBuilder()
            for k in range(start, start + 3):
                value = None if (round_ == 5 and k % 4 == 0) else b"r%d-k%d-" % (round_, k) + b"p" * 40
                builder.append(b"key-%02d" % k, value, T0)
            part.append(builder.build())
        part.roll()
    tail = BatchBuilder()
    tail.append(b"key-01", b"in the active segment", T0)
    part.append(tail.build())
    part.close()


def read_rows(part: Partition) -> list[Row]:
    rows = []
    for segment in part.segments_snapshot():
        for _, batch in segment.batches():
            batch.validate()
            rows.extend((r.offset, r.key, r.value) for r in batch.records())
    return rows


def latest(rows: list[Row]) -> dict[bytes | None, Row]:
    """The last record of every key (a tombstone counts: it is what a reader of the key must see)."""
    return {row[1]: row for row in rows}


def finish_cleaning(data_dir: Path, part: Partition) -> list[Row]:
    """Two more passes: the second runs after every delete horizon, so tombstones go too."""
    for now in (T0 + 2, T0 + 3):
        Cleaner(data_dir).clean(TP, part, now)
    return read_rows(part)


def run_child(data_dir: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CHILD, str(data_dir), str(kill_at)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cleaner_killed_at_any_step_leaves_a_valid_log(tmp_path: Path) -> None:
    reference_dir = tmp_path / "reference"
    build_log(reference_dir)
    part = Partition.open(reference_dir / "crashy-0", CONFIG, clock=lambda: T0)
    original = read_rows(part)
    part.close()
    # A pass that is never interrupted: its step count bounds the kill points, its result is the target.
    finished = run_child(reference_dir, 0)
    assert finished.returncode == 0, finished.stderr
    trace = [line.split() for line in finished.stdout.splitlines()]
    total_steps = int(trace[-1][1])
    assert total_steps > 10
    # Just after the first rename into each state (.cleaned is written, not renamed: its first write).
    renamed_into = {line[2]: int(line[1]) for line in reversed(trace[:-1]) if len(line) == 3}
    assert {".swap", ".deleted"} <= renamed_into.keys(), trace
    part = Partition.open(reference_dir / "crashy-0", CONFIG, clock=lambda: T0)
    cleaned = read_rows(part)
    assert len(cleaned) < len(original)
    want = latest(original)
    assert latest(cleaned) == want
    final = finish_cleaning(reference_dir, part)
    assert {key for _, key, value in final} == {key for key, row in want.items() if row[2] is not None}
    part.close()

    sampled = set(range(1, total_steps + 1, max(1, total_steps // 10)))
    kill_points = sorted(sampled | {renamed_into[".swap"], renamed_into[".deleted"], total_steps - 1})
    seen_states: set[str] = set()
    for kill_at in kill_points:
        data_dir = tmp_path / f"kill-{kill_at}"
        build_log(data_dir)
        child = run_child(data_dir, kill_at)
        assert child.returncode == -signal.SIGKILL, (kill_at, child.stderr)
        seen_states.update(p.suffix for p in (data_dir / "crashy-0").iterdir())

        part = Partition.open(data_dir / "crashy-0", CONFIG, clock=lambda: T0)
        leftovers = [p.name for p in (data_dir / "crashy-0").iterdir() if p.suffix in (".cleaned", ".swap")]
        assert leftovers == [], (kill_at, leftovers)
        rows = read_rows(part)  # validates every batch
        assert [r[0] for r in rows] == sorted({r[0] for r in rows}), kill_at
        assert set(rows) <= set(original), kill_at  # nothing invented, nothing moved
        assert latest(rows) == want, kill_at  # every key still reads its latest record
        assert part.next_offset == original[-1][0] + 1
        assert finish_cleaning(data_dir, part) == final, kill_at  # later passes converge
        part.close()
    assert {".cleaned", ".swap", ".deleted"} <= seen_states  # the kills hit every phase of the swap


@pytest.mark.parametrize("leftover", [".cleaned", ".swap"])
def test_leftover_cleaner_files_are_resolved_on_open(tmp_path: Path, leftover: str) -> None:
    build_log(tmp_path)
    part = Partition.open(tmp_path / "crashy-0", CONFIG, clock=lambda: T0)
    original = read_rows(part)
    part.close()
    reference = tmp_path / "copy"
    build_log(reference)
    ref = Partition.open(reference / "crashy-0", CONFIG, clock=lambda: T0)
    Cleaner(reference, clock=lambda: T0 + 1).clean(TP, ref, T0 + 1)
    ref.close()
    # Plant the cleaned first segment of the reference next to the untouched original log, as a crash
    # right after writing it (.cleaned) or right after renaming it (.swap) would leave it.
    cleaned_first = sorted((reference / "crashy-0").glob("*.log"))[0]
    (tmp_path / "crashy-0" / (cleaned_first.name + leftover)).write_bytes(cleaned_first.read_bytes())

    part = Partition.open(tmp_path / "crashy-0", CONFIG, clock=lambda: T0)
    rows = read_rows(part)
    if leftover == ".cleaned":
        assert rows == original  # discarded
    else:
        assert set(rows) <= set(original) and len(rows) < len(original)  # completed
        assert latest(rows) == latest(original)
    assert not [p for p in (tmp_path / "crashy-0").iterdir() if p.suffix == leftover]
    part.close()
