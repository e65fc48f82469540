"""The compaction worker: a child process that runs flush and merge jobs off the caller's GIL.

A Python LSM spends about 3 µs of CPU per key per merge pass and as much per key flushed (sorting, encoding,
bloom filter); in a thread that time is taken from the application's writes and reads. One worker process per
kind of job serves every DB of the parent process. Messages on its stdin/stdout are pickles prefixed with
their length (u64); a request is ``(job name, args)``, a reply ``("ok", result)`` or ``("error", exception)``.

The worker exits when its stdin closes, and within 0.2 s of its parent dying (a watchdog compares
``os.getppid()``); because it only ever writes temporary file names (see :mod:`strom.lsm.jobs`), an orphan
finishing a job cannot damage a database that a new process has reopened.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from typing import IO, Any

from .errors import LSMError

_LEN = struct.Struct("<Q")


class WorkerDiedError(LSMError):
    """The worker process exited or its pipe broke in the middle of a job."""


def _send(stream: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LEN.pack(len(data)))
    stream.write(data)
    stream.flush()


def _recv(stream: IO[bytes]) -> Any:
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        raise EOFError("worker pipe closed")
    (n,) = _LEN.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError("worker pipe closed mid-message")
    return pickle.loads(data)


class Worker:
    """Client side of one worker process; started on first use, restarted after it dies or after a fork."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.Popen(
            [sys.executable, "-c", "from strom.lsm.worker import main; main()", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        self._proc = proc
        self._pid = os.getpid()
        return proc

    def call(self, job: str, *args: Any) -> Any:
        """Run ``job`` in the worker and return its result (re-raising its exception)."""
        with self._lock:
            proc = self._proc
            if proc is not None and self._pid != os.getpid():
                proc = None  # inherited through fork: the worker belongs to the parent
            elif proc is not None and proc.poll() is not None:
                self._stop(proc)
                proc = None
            if proc is None:
                proc = self._start()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                _send(proc.stdin, (job, args))
                status, value = _recv(proc.stdout)
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                self._stop(proc)
                raise WorkerDiedError(f"{self.name} worker died during a {job} job: {exc}") from exc
        if status == "error":
            raise value
        return value

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._proc = None

    def stop(self) -> None:
        """Ask the worker to exit (closing its stdin) and reap it."""
        with self._lock:
            if self._proc is not None and self._pid == os.getpid():
                self._stop(self._proc)
            self._proc = None


_WORKERS: dict[str, Worker] = {}
_WORKERS_LOCK = threading.Lock()


def _stop_all() -> None:
    for w in list(_WORKERS.values()):
        w.stop()


atexit.register(_stop_all)


def worker(name: str) -> Worker:
    """The process-wide worker for one kind of job ("flush" or "compaction")."""
    with _WORKERS_LOCK:
        w = _WORKERS.get(name)
        if w is None:
            w = _WORKERS[name] = Worker(name)
        return w


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(0.2)


def main() -> None:
    """Serve jobs until stdin closes."""
    from .jobs import JOBS

    parent = int(sys.argv[-1]) if len(sys.argv) > 1 else os.getppid()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    while True:
        try:
            job, args = _recv(stdin)
        except EOFError:
            return
        try:
            reply: tuple[str, object] = ("ok", JOBS[job](*args))
        except Exception as exc:
            reply = ("error", exc)
        _send(stdout, reply)
