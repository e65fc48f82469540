"""Crash safety of strom.log: kill -9 of a writing process, torn and corrupt tails, interrupted swaps."""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from strom.log.config import LogConfig
from strom.log.errors import CorruptSegmentError
from strom.log.partition import Partition
from strom.protocol.error_codes import ErrorCode
from strom.protocol.errors import TruncatedBatchError
from strom.protocol.records import BatchBuilder, iter_batches

REPO = Path(__file__).resolve().parents[2]


def payload(tag: int, n: int = 4, size: int = 100) -> bytes:
    builder = BatchBuilder()
    for i in range(n):
        builder.append(b"key-%d" % tag, b"%08d-%d:" % (tag, i) + b"x" * size, 1_000 + tag)
    return builder.build()


def read_all(part: Partition) -> list[tuple[int, bytes | None]]:
    out: list[tuple[int, bytes | None]] = []
    offset = part.log_start_offset
    while offset < part.next_offset:
        data = part.read_bytes(offset, 1 << 20)
        got = [
            (r.offset, r.value)
            for b in iter_batches(data, allow_truncated_tail=True)
            for r in b.records()
            if r.offset >= offset
        ]
        assert got, f"no records readable at {offset}"
        out.extend(got)
        offset = got[-1][0] + 1
    return out


def check_consistent(part: Partition, tags: int) -> None:
    """Records are exactly tags 0..tags-1, each with its 4 records, at consecutive offsets."""
    got = read_all(part)
    assert [o for o, _ in got] == list(range(4 * tags))
    for offset, value in got:
        assert value is not None and value.startswith(b"%08d-%d:" % (offset // 4, offset % 4))


WRITER = """
import sys
from pathlib import Path
from strom.log.config import LogConfig
from strom.log.partition import Partition
from tests.crash.test_log_crash import payload

path, flush_messages = Path(sys.argv[1]), int(sys.argv[2])
config = LogConfig(segment_bytes=64 * 1024, flush_messages=flush_messages)
part = Partition.open(path, config)
tag = part.next_offset // 4
out = sys.stdout
while True:
    result = part.append(payload(tag, size=2000))
    out.write(f"{result.base_offset} {result.last_offset}\\n")
    out.flush()
    tag += 1
"""


def run_writer_and_kill(path: Path, flush_messages: int, acks_before_kill: int) -> int:
    """Start a writer process, wait (on its pipe) for `acks_before_kill` acknowledged appends, SIGKILL it
    while it keeps appending, and return the highest acknowledged last offset."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(flush_messages)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    acked = -1
    buffer = b""
    deadline = time.monotonic() + 60
    try:
        seen = 0
        while seen < acks_before_kill:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "writer did not acknowledge appends in time"
            ready, _, _ = select.select([proc.stdout], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"writer exited early: {proc.stderr.read().decode() if proc.stderr else ''}"
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                acked = int(line.split()[1])
                seen += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # Acknowledgements written before the kill but not read yet still count.
        rest = proc.stdout.read()
        for line in (buffer + rest).split(b"\n"):
            if line.strip():
                acked = max(acked, int(line.split()[1]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return acked


@pytest.mark.parametrize("flush_messages", [1, 2**63 - 1], ids=["fsync-each", "os-flush"])
def test_kill_9_during_appends_loses_no_acknowledged_batch(tmp_path: Path, flush_messages: int):
    path = tmp_path / "crash-0"
    for round_ in range(3):
        acked = run_writer_and_kill(path, flush_messages, acks_before_kill=40 + 13 * round_)
        part = Partition.open(path, LogConfig(segment_bytes=64 * 1024))
        assert part.next_offset > acked
        check_consistent(part, part.next_offset // 4)
        part.close()


def build_log(path: Path, batches: int, **cfg: object) -> None:
    """A closed partition holding tags 0..batches-1."""
    part = Partition.open(path, LogConfig(**cfg))  # type: ignore[arg-type]
    for tag in range(batches):
        part.append(payload(tag))
    part.close()


def segment_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.log"))


@pytest.mark.parametrize("cut", [1, 30, 61, 200])
def test_a_torn_tail_is_truncated_to_the_last_whole_batch(tmp_path: Path, cut: int):
    path = tmp_path / "torn-0"
    build_log(path, 10)
    log = segment_files(path)[-1]
    os.truncate(log, log.stat().st_size - cut)
    part = Partition.open(path, LogConfig())
    assert part.truncated_bytes > 0
    check_consistent(part, 9)
    assert part.append(payload(9)).base_offset == 36
    check_consistent(part, 10)


def test_garbage_after_the_last_batch_is_cut_off(tmp_path: Path):
    path = tmp_path / "junk-0"
    build_log(path, 5)
    log = segment_files(path)[-1]
    with open(log, "ab") as f:
        f.write(b"\x00" * 100 + os.urandom(300))
    part = Partition.open(path, LogConfig())
    assert part.truncated_bytes == 400
    check_consistent(part, 5)


def test_a_corrupt_batch_truncates_there_and_drops_later_segments(tmp_path: Path):
    path = tmp_path / "rot-0"
    build_log(path, 40, segment_bytes=2000)
    logs = segment_files(path)
    assert len(logs) >= 4
    victim = logs[1]
    raw = bytearray(victim.read_bytes())
    first_size = int.from_bytes(raw[8:12], "big") + 12
    raw[first_size + 100] ^= 0x55  # inside the second batch of the second segment
    victim.write_bytes(bytes(raw))
    part = Partition.open(path, LogConfig(segment_bytes=2000))  # no recovery point: verify everything
    segs = part.segments_snapshot()
    assert len(segs) == 2 and segs[1].size == first_size
    tags = part.next_offset // 4
    check_consistent(part, tags)
    assert not any(p.name > victim.name for p in segment_files(path))


def test_a_flushed_segment_below_the_recovery_point_is_trusted(tmp_path: Path):
    path = tmp_path / "trust-0"
    build_log(path, 40, segment_bytes=2000)
    part = Partition.open(path, LogConfig(segment_bytes=2000), recovery_point=10**9)
    assert part.recovered_segments == 1  # only the last segment is re-validated
    check_consistent(part, 40)


def test_an_interrupted_swap_is_completed_on_recovery(tmp_path: Path):
    path = tmp_path / "swap-0"
    build_log(path, 30, segment_bytes=2000)
    logs = segment_files(path)
    assert len(logs) >= 3
    # A cleaner that merged segments 0 and 1 crashed after renaming its output .swap and deleting half the
    # old files: .swap holds both segments' batches, segment 1 is already .deleted, segment 0 is still live.
    merged = logs[0].read_bytes() + logs[1].read_bytes()
    (path / (logs[0].name + ".swap")).write_bytes(merged)
    shutil.move(logs[1], str(logs[1]) + ".deleted")
    (path / (logs[0].stem + ".log.cleaned")).write_bytes(b"partial")
    part = Partition.open(path, LogConfig(segment_bytes=2000))
    first = part.segments_snapshot()[0]
    assert (first.base_offset, first.size) == (0, len(merged))
    assert len(part.segments_snapshot()) == len(logs) - 1
    check_consistent(part, 30)
    assert (
        not list(path.glob("*.swap"))
        and not list(path.glob("*.deleted"))
        and not list(path.glob("*.cleaned"))
    )


def test_a_swap_whose_old_segments_are_all_live_replaces_them(tmp_path: Path):
    path = tmp_path / "swap2-0"
    build_log(path, 30, segment_bytes=2000)
    logs = segment_files(path)
    merged = logs[0].read_bytes() + logs[1].read_bytes()
    (path / (logs[0].name + ".swap")).write_bytes(merged)
    part = Partition.open(path, LogConfig(segment_bytes=2000))
    assert len(part.segments_snapshot()) == len(logs) - 1
    check_consistent(part, 30)


def test_damage_inside_a_cleanly_shut_down_log_is_still_caught(tmp_path: Path):
    path = tmp_path / "clean-rot-0"
    build_log(path, 40, segment_bytes=2000)
    logs = segment_files(path)
    victim = logs[-1]
    os.truncate(victim, victim.stat().st_size - 7)  # the tail is torn although the log was closed cleanly
    part = Partition.open(path, LogConfig(segment_bytes=2000), clean_shutdown=True)
    tags = part.next_offset // 4
    assert tags == 39
    check_consistent(part, tags)


MANAGER_WRITER = """
import sys
from pathlib import Path
from strom.log import LogConfig, LogManager
from tests.crash.test_log_crash import payload

config = LogConfig(segment_bytes=16 * 1024, retention_ms=-1)
logs = LogManager(Path(sys.argv[1]), default_config=config, checkpoint_interval_ms=0)
parts = [logs.get_or_create("left", 0), logs.get_or_create("right", 1)]
out = sys.stdout
n = 0
while True:
    part = parts[n % 2]
    result = part.append(payload(part.next_offset // 4, size=500))
    if n % 25 == 0:
        logs.maintain()  # writes checkpoints now and then, as the broker's maintenance thread does
    out.write(f"{n % 2} {result.last_offset}\\n")
    out.flush()
    n += 1
"""


def test_kill_9_of_a_log_manager_recovers_every_partition(tmp_path: Path):
    proc = subprocess.Popen(
        [sys.executable, "-c", MANAGER_WRITER, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    acked = {0: -1, 1: -1}
    try:
        deadline = time.monotonic() + 60
        seen = 0
        buffer = b""
        while seen < 300:
            assert time.monotonic() < deadline, "writer too slow"
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not ready:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, proc.stderr.read().decode()
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                which, last = line.split()
                acked[int(which)] = int(last)
                seen += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    from strom.log import LogManager

    assert not (tmp_path / ".kafka_cleanshutdown").exists()
    logs = LogManager(tmp_path, default_config=LogConfig(segment_bytes=16 * 1024, retention_ms=-1))
    try:
        for which, (topic, index) in enumerate([("left", 0), ("right", 1)]):
            part = logs.get(topic, index)
            assert part is not None
            assert part.next_offset > acked[which]
            check_consistent(part, part.next_offset // 4)
            assert part.recovered_segments >= 1
            assert part.recovered_segments < len(part.segments_snapshot())  # the checkpoint spared some
    finally:
        logs.close()


def test_a_segment_cut_short_under_a_running_reader_raises_instead_of_hanging(tmp_path: Path):
    path = tmp_path / "shrunk-0"
    part = Partition.open(path, LogConfig())
    for tag in range(5):
        part.append(payload(tag))
    seg = part.active_segment
    os.truncate(seg.log_path, seg.size - 5)  # another process damages the file behind the log's back
    with pytest.raises(TruncatedBatchError):
        list(seg.batches())
    part.close()


# -- every recovery decision is logged; damage outside the CRC is found before it is served -------------


def recovery_lines(caplog: pytest.LogCaptureFixture, level: int, containing: str = "") -> list[str]:
    """strom.log's messages at `level` that contain `containing`."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("strom.log") and r.levelno == level and containing in r.getMessage()
    ]


def test_a_torn_tail_is_logged_with_the_segment_position_and_bytes_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "torn-0"
    build_log(path, 10)
    log = segment_files(path)[-1]
    whole = log.stat().st_size
    os.truncate(log, whole - 30)
    with caplog.at_level(logging.INFO, logger="strom.log"):
        part = Partition.open(path, LogConfig())
    (line,) = recovery_lines(caplog, logging.WARNING, "truncating")
    last_batch = whole - len(payload(9))
    assert f"truncating segment {log.name} at byte {last_batch} (offset 36, after 9 valid batches)" in line
    assert f"{len(payload(9)) - 30} bytes cut" in line and "0 later segment(s)" in line
    assert not recovery_lines(caplog, logging.ERROR)
    check_consistent(part, 9)


def test_damage_in_an_unflushed_segment_is_logged_with_every_later_segment_it_deletes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rot-0"
    build_log(path, 40, segment_bytes=2000)
    logs = segment_files(path)
    victim = logs[1]
    raw = bytearray(victim.read_bytes())
    first_size = int.from_bytes(raw[8:12], "big") + 12
    raw[first_size + 100] ^= 0x55
    victim.write_bytes(bytes(raw))
    later = logs[2:]
    later_bytes = sum(p.stat().st_size for p in later)
    with caplog.at_level(logging.INFO, logger="strom.log"):
        part = Partition.open(path, LogConfig(segment_bytes=2000))
    (line,) = recovery_lines(caplog, logging.ERROR, "truncating")
    assert f"truncating segment {victim.name} at byte {first_size}" in line
    assert "CRC-32C" in line
    assert f"{len(raw) - first_size} bytes cut from it" in line
    assert f"{len(later)} later segment(s) deleted with it ({later_bytes} bytes" in line
    assert ", ".join(str(int(p.stem)) for p in later) in line
    assert part.next_offset == int(victim.stem) + 4


def test_a_damaged_index_is_rebuilt_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "index-0"
    build_log(path, 40, segment_bytes=2000, index_interval_bytes=100)
    index = sorted(path.glob("*.index"))[0]
    index.write_bytes(index.read_bytes()[:-3])  # not a whole number of entries
    with caplog.at_level(logging.INFO, logger="strom.log"):
        part = Partition.open(path, LogConfig(segment_bytes=2000), recovery_point=10**9)
    (line,) = recovery_lines(caplog, logging.WARNING, "rebuilding")
    assert f"rebuilding the indexes of segment {path / index.stem}.log" in line
    assert "not a multiple of 8" in line
    check_consistent(part, 40)


def test_a_producer_snapshot_that_does_not_read_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "snap-0"
    build_log(path, 40, segment_bytes=2000)
    snapshot = path / f"{segment_files(path)[-1].stem}.snapshot"  # the one recovery reads
    snapshot.write_bytes(b"\x00\x01garbage")
    with caplog.at_level(logging.INFO, logger="strom.log"):
        Partition.open(path, LogConfig(segment_bytes=2000), recovery_point=10**9)
    assert recovery_lines(caplog, logging.ERROR, f"producer snapshot {int(snapshot.stem)} does not read")


@pytest.mark.parametrize(("byte", "flip"), [(0, 0x80), (7, 0x80), (7, 0x01)], ids=["negative", "far", "near"])
def test_a_flipped_base_offset_in_a_flushed_segment_is_reported_not_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, byte: int, flip: int
) -> None:
    path = tmp_path / "flip-0"
    build_log(path, 40, segment_bytes=2000)
    victim = segment_files(path)[1]
    raw = bytearray(victim.read_bytes())
    first_size = int.from_bytes(raw[8:12], "big") + 12
    raw[first_size + byte] ^= flip  # the second batch's base offset: outside the CRC
    victim.write_bytes(bytes(raw))
    part = Partition.open(path, LogConfig(segment_bytes=2000), recovery_point=10**9)  # trusted
    damaged = int(victim.stem) + 4
    served = []
    offset = 0
    with caplog.at_level(logging.INFO, logger="strom.log"), pytest.raises(CorruptSegmentError) as refused:
        while offset < part.next_offset:
            got = [r.offset for b in iter_batches(part.read_bytes(offset, 1 << 20)) for r in b.records()]
            served.extend(o for o in got if o >= offset)
            offset = served[-1] + 1
    assert served == list(range(damaged))  # in order up to the damage: nothing skipped, nothing negative
    assert refused.value.error_code is ErrorCode.KAFKA_STORAGE_ERROR
    (line,) = recovery_lines(caplog, logging.ERROR, "is damaged")
    assert f"segment {victim} is damaged" in line and f"reads stop at byte {first_size}" in line
