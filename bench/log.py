"""strom.log throughput next to the physical limit of the same disk, measured in the same run.

For each batch size (16 KiB and 256 KiB of 1 KiB records) it times:
- raw write: the same batch bytes written sequentially with os.write to a file in the same directory, then
  one fsync (what a log append costs at best);
- append: Partition.append of every batch (validation, offset assignment, index upkeep), then flush();
- raw read and log read: the file read back sequentially in 1 MiB chunks, and the log read back through
  Partition.read (the Fetch path) in 1 MiB slices. Both read from the page cache: the files were just
  written and this script does not drop caches (that would disturb everybody else on the machine).
Then the cleaner: a compacted partition of 1 KiB records with random keys (about 40% survive), cleaned in
one pass, uncompressed and lz4; throughput is MB of input segments per second (wall clock and CPU).

Targets (issue 2): append >= 0.8x raw at 256 KiB batches; cleaner >= 50 MB/s.
Usage: python bench/log.py [--mib N] [--dir PATH]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import struct
import tempfile
import time
from pathlib import Path

from strom.log.cleaner import Cleaner
from strom.log.config import LogConfig
from strom.log.partition import Partition
from strom.protocol.records import BatchBuilder, Compression

RECORD = 1024
MIB = 1 << 20
T0 = 1_700_000_000_000
_HEAD = struct.Struct(">qi")
_DELTA = struct.Struct(">i")


def make_batches(batch_bytes: int, total_bytes: int, key_space: int | None = None) -> list[bytes]:
    """Batches of 1 KiB records (16-byte keys, random-looking values) adding up to about total_bytes."""
    per_batch = max(1, batch_bytes // RECORD)
    value = os.urandom(RECORD - 30)
    template = []
    count = 0
    # 16 distinct batch bodies are reused: distinct enough for the cleaner's key map, cheap to build.
    for b in range(16):
        builder = BatchBuilder()
        for i in range(per_batch):
            n = (b * per_batch + i) if key_space is None else (count % key_space)
            builder.append(b"key-%012d" % n, value, T0)
            count += 1
        template.append(builder.build())
    size = len(template[0])
    return [template[i % len(template)] for i in range(max(1, total_bytes // size))]


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def raw_write(path: Path, batches: list[bytes]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        for batch in batches:
            os.write(fd, batch)
        os.fsync(fd)
    finally:
        os.close(fd)


def raw_read(path: Path) -> int:
    total = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        while chunk := os.read(fd, MIB):
            total += len(chunk)
    finally:
        os.close(fd)
    return total


def log_append(part: Partition, batches: list[bytes]) -> None:
    for batch in batches:
        part.append(batch)
    part.flush()


def log_read(part: Partition) -> int:
    """Read the whole log through the Fetch path, 1 MiB at a time; returns the bytes read."""
    total = 0
    offset = part.log_start_offset
    end = part.next_offset
    while offset < end:
        data = part.read(offset, MIB).read()
        pos = 0
        while pos + 61 <= len(data):  # advance past the last whole batch (a consumer's only work here)
            base, length = _HEAD.unpack_from(data, pos)
            if pos + length + 12 > len(data):
                break
            offset = base + _DELTA.unpack_from(data, pos + 23)[0] + 1
            pos += length + 12
        total += pos  # whole batches only: a cut-off last batch is read again by the next call
    return total


def report(label: str, nbytes: int, seconds: float, raw_seconds: float | None = None) -> float:
    rate = nbytes / seconds / 1e6
    line = f"  {label:<34} {rate:9.1f} MB/s"
    if raw_seconds is not None:
        line += f"   {raw_seconds / seconds:5.2f}x raw"
    print(line, flush=True)
    return rate


def bench_append_and_read(workdir: Path, batch_bytes: int, total_bytes: int, rounds: int) -> float:
    """Alternate raw writes and log appends `rounds` times and compare medians: fsync times on a shared
    disk vary from one second to the next, and alternating exposes both sides to the same weather."""
    batches = make_batches(batch_bytes, total_bytes)
    nbytes = sum(len(b) for b in batches)
    print(f"{batch_bytes // 1024} KiB batches of 1 KiB records, {nbytes / MIB:.0f} MiB, median of {rounds}:")
    raw_path = workdir / "raw.bin"
    part_dir = workdir / f"bench-{batch_bytes}"
    raw_times, append_times = [], []
    part = None
    for round_no in range(rounds):
        # Same starting point for both sides: no old files, nothing dirty in the page cache; and the
        # order alternates so neither side always runs right after the other's writeback.
        raw_path.unlink(missing_ok=True)
        if part is not None:
            part.close()
            shutil.rmtree(part_dir)
        os.sync()
        part = Partition.open(part_dir, LogConfig(), clock=lambda: T0)
        log_first = round_no % 2 == 1
        if log_first:
            append_times.append(timed(lambda: log_append(part, batches)))  # noqa: B023 - called at once
        raw_times.append(timed(lambda: raw_write(raw_path, batches)))
        if not log_first:
            append_times.append(timed(lambda: log_append(part, batches)))  # noqa: B023 - called at once
    assert part is not None
    raw_w, append = statistics.median(raw_times), statistics.median(append_times)
    report("raw sequential write + fsync", nbytes, raw_w)
    report("Partition.append + flush", nbytes, append, raw_w)
    read_bytes = 0

    def read_all() -> None:
        nonlocal read_bytes
        read_bytes = log_read(part)

    raw_r = statistics.median(timed(lambda: raw_read(raw_path)) for _ in range(rounds))
    read = statistics.median(timed(read_all) for _ in range(rounds))
    assert read_bytes == nbytes, (read_bytes, nbytes)
    report("raw sequential read (1 MiB)", nbytes, raw_r)
    report("Partition.read (1 MiB slices)", nbytes, read, raw_r)
    part.close()
    shutil.rmtree(part_dir)
    raw_path.unlink()
    return raw_w / append


def bench_cleaner(workdir: Path, total_bytes: int, codec: Compression) -> float:
    """One pass over a segment whose keys are drawn at random from a key space half the record count:
    about 40% of the records are the latest of their key, so most batches are partly kept and rebuilt."""
    config = LogConfig(cleanup_policy=frozenset({"compact"}), segment_bytes=64 * MIB, file_delete_delay_ms=0)
    part_dir = workdir / "bench-compacted-0"
    part = Partition.open(part_dir, config, clock=lambda: T0)
    per_batch = 64
    count = total_bytes // RECORD
    keys = random.Random(7)
    for start in range(0, count, per_batch):
        builder = BatchBuilder(compression=codec)
        for _ in range(start, min(start + per_batch, count)):
            value = os.urandom((RECORD - 30) // 2).hex().encode()  # compresses about 2:1, like text
            builder.append(b"key-%012d" % keys.randrange(count // 2), value, T0)
        part.append(builder.build())
    part.roll()
    part.flush()
    cleaner = Cleaner(workdir, clock=lambda: T0)
    cpu = time.process_time()
    result = cleaner.clean(("bench-compacted", 0), part, T0)
    cpu = time.process_time() - cpu
    assert result is not None
    print(
        f"cleaner, {codec.name.lower()} batches: {result.bytes_read / MIB:.0f} MiB -> "
        f"{result.bytes_written / MIB:.0f} MiB, {result.records_read} -> {result.records_kept} records"
    )
    rate = report("cleaner (MB of input per second)", result.bytes_read, result.seconds)
    # On a machine shared with other jobs the wall time includes waiting for a core; CPU time does not.
    report("cleaner per CPU-second", result.bytes_read, cpu)
    part.close()
    shutil.rmtree(part_dir)
    Path(workdir / "cleaner-offset-checkpoint").unlink(missing_ok=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=128, help="data per append benchmark (default 128)")
    parser.add_argument("--rounds", type=int, default=5, help="repetitions per figure (median)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp dir)")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="strom-bench-log-", dir=base))
    try:
        print(f"working directory: {workdir}")
        bench_append_and_read(workdir, 16 * 1024, args.mib * MIB, args.rounds)
        ratio = bench_append_and_read(workdir, 256 * 1024, args.mib * MIB, args.rounds)
        rate = bench_cleaner(workdir, max(16, args.mib // 2) * MIB, Compression.NONE)
        bench_cleaner(workdir, max(16, args.mib // 4) * MIB, Compression.LZ4)
        print(f"target append >= 0.80x raw at 256 KiB: {'met' if ratio >= 0.8 else 'NOT met'} ({ratio:.2f}x)")
        print(f"target cleaner >= 50 MB/s: {'met' if rate >= 50 else 'NOT met'} ({rate:.1f} MB/s)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
