"""`strom produce` of a file and `strom consume -c N` report progress with a rate when stderr is a terminal
(a real pseudo-terminal here), and only their usual summary line when it is not."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.support.cli import run_strom
from tests.support.scenario import unique_name


def run_with_terminal_stderr(*args: str, stdin: Path, stdout: Path) -> tuple[int, str]:
    """Run `strom ARGS` with stderr on a pseudo-terminal; return its exit code and what the terminal got."""
    primary, secondary = pty.openpty()
    with stdin.open("rb") as source, stdout.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "strom.cli", *args], stdin=source, stdout=sink, stderr=secondary
        )
    os.close(secondary)
    received = bytearray()
    try:
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the process closed the terminal's last writer
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(primary)
    return process.wait(timeout=60), received.decode()


def test_produce_and_consume_on_a_terminal_end_with_the_rate(strom_broker: str, tmp_path: Path) -> None:
    topic = unique_name("cli-progress")
    assert run_strom("topics", "create", topic, "--bootstrap", strom_broker).returncode == 0
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"event {i}\n" for i in range(3000)))

    code, terminal = run_with_terminal_stderr(
        "produce", topic, "--bootstrap", strom_broker, stdin=lines, stdout=tmp_path / "produce.out"
    )
    assert code == 0, terminal
    assert f"\rstrom: produced 3000 records to {topic} in " in terminal
    assert " records/s\x1b[K" in terminal

    records = tmp_path / "records.txt"
    code, terminal = run_with_terminal_stderr(
        "consume", topic, "--from-beginning", "-c", "3000", "--bootstrap", strom_broker,
        stdin=Path(os.devnull), stdout=records,
    )  # fmt: skip
    assert code == 0, terminal
    assert "\rstrom: consumed 3000 records in " in terminal and " records/s\x1b[K" in terminal
    assert sorted(records.read_text().splitlines()) == sorted(f"event {i}" for i in range(3000))


def test_produce_and_consume_elsewhere_print_only_their_summary(strom_broker: str, tmp_path: Path) -> None:
    topic = unique_name("cli-progress")
    assert run_strom("topics", "create", topic, "--bootstrap", strom_broker).returncode == 0
    produced = run_strom(
        "produce", topic, "--bootstrap", strom_broker, input="".join(f"e{i}\n" for i in range(3000))
    )
    assert produced.returncode == 0 and produced.stderr == f"strom: produced 3000 records to {topic}\n"
    consumed = run_strom("consume", topic, "--from-beginning", "-c", "3000", "--bootstrap", strom_broker)
    assert consumed.returncode == 0 and consumed.stderr == "strom: consumed 3000 records\n"
    assert len(consumed.stdout.splitlines()) == 3000
