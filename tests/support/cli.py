"""Running the `strom` command line as a user would: a subprocess, with its exit status, stdout and stderr."""

from __future__ import annotations

import os
import subprocess
import sys


def run_strom(
    *args: str, input: str | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "strom.cli", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def start_strom(*args: str) -> subprocess.Popen[str]:
    """A long-running `strom` command (a broker) as a child process, its output unbuffered so a test can read
    its ready lines as they are printed."""
    return subprocess.Popen(
        [sys.executable, "-m", "strom.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def table_rows(output: str, first_column: str) -> list[dict[str, str]]:
    """The rows of the table whose header line starts with `first_column`, as header -> cell."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first_column])
    headers = lines[start].split()
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append(dict(zip(headers, line.split(), strict=True)))
    return rows
