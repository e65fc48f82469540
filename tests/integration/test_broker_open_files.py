"""The open-file limit: raised at start as far as the hard limit allows, a warning when that is low for
the partitions on disk, and running out of descriptors pauses accepting with one log line, not a flood.

The broker runs as `strom broker` in a child process whose limits the test sets, so the test process keeps
its own.
"""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from tests.support.waiting import wait_until
from tests.support.wire import WireClient

ROOT = Path(__file__).resolve().parents[2]



@contextmanager
def broker_process(tmp_path: Path, soft: int, hard: int) -> Iterator[tuple[str, int, Path]]:
    """(bootstrap, pid, stderr file) of `strom broker` started with RLIMIT_NOFILE = (soft, hard)."""
    stderr = tmp_path / "stderr.txt"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    with open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "strom.cli", "broker", "--data-dir", str(tmp_path / "data"),
             "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT, preexec_fn=limit,
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("strom broker ready on "), stderr.read_text()
        yield line.rsplit(" ", 1)[1].strip(), proc.pid, stderr
    finally:
        proc.terminate()
        proc.wait(30)


def _soft_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-file limit in /proc/PID/limits")


def test_the_soft_limit_is_raised_to_the_hard_limit_at_start(tmp_path: Path) -> None:
    with broker_process(tmp_path, soft=256, hard=4096) as (_bootstrap, pid, stderr):
        assert _soft_limit(pid) == 4096
    assert "open-file limit is" not in stderr.read_text()


def test_a_low_hard_limit_is_warned_about(tmp_path: Path) -> None:
    with broker_process(tmp_path, soft=256, hard=512) as (_bootstrap, pid, stderr):
        assert _soft_limit(pid) == 512
    assert "the open-file limit is 512 (the hard limit allows no more)" in stderr.read_text()


def test_running_out_of_descriptors_pauses_accepting_with_one_log_line(tmp_path: Path) -> None:
    with broker_process(tmp_path, soft=64, hard=64) as (bootstrap, _pid, stderr):
        host, port = bootstrap.rsplit(":", 1)
        held = [socket.create_connection((host, int(port))) for _ in range(100)]
        wait_until(
            lambda: "cannot accept connections" in stderr.read_text(),
            "the out-of-descriptors report",
            timeout=20,
        )
        for sock in held[:70]:
            sock.close()
        # accepting resumes once descriptors are free again (asyncio retries every second)
        with WireClient(bootstrap, timeout=20) as client:
            assert client.call(ApiKey.API_VERSIONS, 0, {}).error_code == ErrorCode.NONE
        for sock in held[70:]:
            sock.close()
    reports = [line for line in stderr.read_text().splitlines() if "accept" in line]
    assert len(reports) == 1, reports
    assert "Too many open files" in reports[0] and "open-file limit 64" in reports[0]
