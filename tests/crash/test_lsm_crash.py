"""strom.lsm under kill -9: a child process writes batches while flushes and compactions run in the
background; the parent kills it at a random write, flush or compaction event (read from the child's stdout
pipe, no sleeps), reopens the database and checks it.

After every kill: the batches present are exactly a prefix 0..A of those written (no batch partly applied,
none skipped), A covers every batch the child acknowledged (WAL modes buffered and sync), the contents equal
a dict model of batches 0..A, and the level invariants hold.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from strom.lsm import DB, DatabaseLockedError

ROUNDS = int(os.environ.get("LSM_CRASH_ROUNDS", "5"))
TIMEOUT = 60.0
OPTIONS = {
    "memtable_size": 3000,
    "block_size": 256,
    "level0_file_trigger": 2,
    "level0_stop_trigger": 6,
    "level1_size": 12000,
    "level_size_ratio": 3,
    "target_file_size": 5000,
    "num_levels": 5,
}

CHILD = r"""
import os, sys
from strom.lsm import DB, WriteBatch
from tests.crash.test_lsm_crash import OPTIONS, make_batch

path, wal, style, start = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def emit(name, details):
    os.write(1, (name + "\n").encode())

db = DB.open(path, wal=wal, compaction_style=style, event_listener=emit, **OPTIONS)
os.write(1, b"open\n")
i = start
while True:
    batch = WriteBatch()
    for key, value in make_batch(i):
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    db.write(batch)
    os.write(1, b"ack %d\n" % i)
    i += 1
"""

THREADED_CHILD = r"""
import os, sys, threading
from strom.lsm import DB

db = DB.open(sys.argv[1], wal="sync", memtable_size=4000)
os.write(1, b"open\n")

def writer(t):
    i = 0
    while True:
        db.put(b"t%d-%06d" % (t, i), b"v" * 20)
        os.write(1, b"ack %d %d\n" % (t, i))
        i += 1

for t in range(4):
    threading.Thread(target=writer, args=(t,), daemon=True).start()
threading.Event().wait()
"""


def make_batch(i: int) -> list[tuple[bytes, bytes | None]]:
    """Batch ``i``: a marker, new keys, an overwrite of a hot key and a delete of an older batch's key."""
    ops: list[tuple[bytes, bytes | None]] = [(b"m%06d" % i, b"")]
    ops += [(b"b%06d-%d" % (i, j), (b"%d.%d|" % (i, j)) * (1 + (i * 7 + j) % 9)) for j in range(1 + i % 4)]
    ops.append((b"hot%d" % (i % 7), b"%d" % i))
    if i >= 5:
        ops.append((b"b%06d-0" % (i - 5), None))
    return ops


def _apply(model: dict[bytes, bytes], i: int) -> None:
    for k, v in make_batch(i):
        if v is None:
            model.pop(k, None)
        else:
            model[k] = v


class _Child:
    """A child process whose stdout lines the parent reads with a deadline."""

    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), *sys.path])}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self._buf = b""
        self._deadline = time.monotonic() + TIMEOUT

    def lines(self) -> list[str]:
        """The next complete lines; blocks until one arrives, the child dies, or the deadline passes."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = self._deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise AssertionError("child produced no event before the deadline")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise AssertionError(f"child exited early: {err[-2000:]}")
                self._buf += chunk
        *complete, self._buf = self._buf.split(b"\n")
        return [line.decode() for line in complete]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=TIMEOUT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def _verify(path: Path, wal: str, style: str, model: dict[bytes, bytes], applied: int, acked: int) -> int:
    """Reopen, check prefix/atomicity/contents/invariants; return the index of the last batch present."""
    with DB.open(path, wal=wal, compaction_style=style, paranoid_checks=True, **OPTIONS) as db:
        db.check_invariants()
        markers = [int(k[1:]) for k, _ in db.prefix(b"m")]
        assert markers == list(range(len(markers))), "batches present are not a prefix of those written"
        last = len(markers) - 1
        if wal != "off":
            assert last >= acked, f"acknowledged batch {acked} lost (last present {last})"
        assert last >= applied, "a batch present before this run has disappeared"
        for i in range(applied + 1, last + 1):
            _apply(model, i)
        assert dict(db.scan()) == model
        for k, v in list(model.items())[:200]:
            assert db.get(k) == v
    return last


@pytest.mark.parametrize(
    ("wal", "style"),
    [("sync", "levelled"), ("sync", "tiered"), ("buffered", "levelled"), ("off", "levelled")],
)
def test_kill_during_writes_flushes_and_compactions(tmp_path: Path, wal: str, style: str) -> None:
    rng = random.Random(f"{wal}-{style}")
    path = tmp_path / "db"
    model: dict[bytes, bytes] = {}
    applied = -1
    events_seen: dict[str, int] = {}
    for _ in range(ROUNDS):
        trigger, count = rng.choice(
            [
                ("ack", rng.randrange(1, 300)),
                ("flush_begin", rng.randrange(1, 4)),
                ("flush_end", 1),
                ("compaction_begin", rng.randrange(1, 3)),
                ("compaction_end", 1),
            ]
        )
        child = _Child([sys.executable, "-c", CHILD, str(path), wal, style, str(applied + 1)])
        acked = applied
        seen = 0
        try:
            while seen < count:
                for line in child.lines():
                    name, *rest = line.split()
                    events_seen[name] = events_seen.get(name, 0) + 1
                    if name == "ack":
                        acked = int(rest[0])
                    if name == trigger:
                        seen += 1
                    if seen >= count:
                        break
        finally:
            child.kill()
        applied = _verify(path, wal, style, model, applied, acked)
    assert events_seen.get("flush_begin", 0) > 0 and events_seen.get("compaction_begin", 0) > 0


def test_group_committed_writes_from_many_threads_survive_kill(tmp_path: Path) -> None:
    path = tmp_path / "db"
    child = _Child([sys.executable, "-c", THREADED_CHILD, str(path)])
    acked = dict.fromkeys(range(4), -1)
    try:
        while sum(acked.values()) < 800:
            for line in child.lines():
                if line.startswith("ack"):
                    _, t, i = line.split()
                    acked[int(t)] = max(acked[int(t)], int(i))
    finally:
        child.kill()
    with DB.open(path) as db:
        for t in range(4):
            present = [int(k.split(b"-")[1]) for k, _ in db.prefix(b"t%d-" % t)]
            assert present == list(range(len(present)))
            assert len(present) - 1 >= acked[t]


def test_second_process_gets_a_lock_error_until_the_holder_dies(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with DB.open(path) as db:
        db.put(b"k", b"v")
    child = _Child([sys.executable, "-c", CHILD, str(path), "sync", "levelled", "0"])
    try:
        assert "open" in child.lines()
        with pytest.raises(DatabaseLockedError):
            DB.open(path)
    finally:
        child.kill()
    with DB.open(path) as db:
        assert db.get(b"k") == b"v"


FORKING_CHILD = r"""
import os, sys, threading
from strom.lsm import DB

db = DB.open(sys.argv[1])
db.put(b"k", b"v")
if os.fork() == 0:
    # A forked child that has not exec'd, as the worker is between subprocess's fork and exec: it holds
    # copies of every descriptor, the LOCK file's included, until the test opens the FIFO for writing.
    with open(sys.argv[2], "rb") as fifo:
        fifo.read()
    os._exit(0)
os.write(1, b"open\n")
threading.Event().wait()
"""


def test_reopen_right_after_kill_succeeds_while_a_forked_child_of_the_owner_lives(tmp_path: Path) -> None:
    # The owner is killed while a child it forked (the flush worker being spawned, or any fork) still holds
    # its descriptors: the database must open at once, since its only owner is dead.
    path = tmp_path / "db"
    fifo = tmp_path / "release"
    os.mkfifo(fifo)
    child = _Child([sys.executable, "-c", FORKING_CHILD, str(path), str(fifo)])
    try:
        while "open" not in child.lines():
            pass
        child.kill()
        with DB.open(path) as db:
            assert db.get(b"k") == b"v"
    finally:
        child.kill()
        with contextlib.suppress(OSError):  # ENXIO: the forked child is gone already
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
