"""A newcomer's first hour with the `strom` command line: each rough edge of issue 16, tried as a user would.

Every test runs the real command as a subprocess and reads what the user would read: the exit status and the
one line on stderr that says what went wrong, in the user's terms.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools.kafka import free_port

from tests.support.cli import run_strom
from tests.support.scenario import unique_name

READY_PREFIX = "strom broker ready on "


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "strom.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGINT (Ctrl-C), then what the process printed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other program already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_config_value_of_the_wrong_type_names_the_key_and_the_expected_type(tmp_path: Path) -> None:
    result = run_strom("broker", "--data-dir", str(tmp_path), "--set", "num.partitions=abc")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "strom broker: invalid value 'abc' for configuration num.partitions: expected an integer (INT)"
    )


def test_a_key_kafka_does_not_know_is_refused_unless_asked_to_be_lenient(tmp_path: Path) -> None:
    refused = run_strom("broker", "--data-dir", str(tmp_path / "a"), "--set", "bogus.key=1")
    assert refused.returncode == 2
    assert "'bogus.key'" in refused.stderr and "--lenient-config" in refused.stderr
    assert not (tmp_path / "a").exists()

    proc = start(
        "broker", "--data-dir", str(tmp_path / "b"), "--listen", "127.0.0.1:0",
        "--set", "bogus.key=1", "--set", "num.io.threads=8", "--lenient-config",
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(READY_PREFIX)
    finally:
        _, err = stop(proc)
    assert proc.returncode == 0, err
    assert err.splitlines() == [
        "strom broker: ignoring Kafka configuration with no effect on strom: num.io.threads",
        "strom broker: ignoring unknown configuration (--lenient-config): bogus.key",
    ]


def test_settings_that_would_leave_the_broker_unprotected_stop_it(tmp_path: Path) -> None:
    for setting in (
        "ssl.keystore.location=/etc/kafka/broker.jks",
        "sasl.enabled.mechanisms=SCRAM-SHA-512",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "listeners=SASL_SSL://127.0.0.1:0",
    ):
        result = run_strom("broker", "--data-dir", str(tmp_path / "d"), "--set", setting, "--lenient-config")
        assert result.returncode == 2, setting
        assert "refuses to start" in result.stderr or "refusing to start" in result.stderr, result.stderr
        assert not (tmp_path / "d").exists()


def test_a_failed_bind_leaves_no_new_data_directory_behind(tmp_path: Path, taken_port: int) -> None:
    data_dir = tmp_path / "new" / "data"
    result = run_strom("broker", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{taken_port}")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"strom broker: cannot start on 127.0.0.1:{taken_port} with {data_dir}: "
        "the address is already in use (another broker? choose another --listen)"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_failed_bind_in_an_existing_directory_removes_only_what_it_added(
    tmp_path: Path, taken_port: int
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "keep").mkdir()
    result = run_strom("broker", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{taken_port}")
    assert result.returncode == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep", "notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_regular_file_as_the_data_directory_is_refused_clearly(tmp_path: Path) -> None:
    file = tmp_path / "strom-data"
    file.write_text("not a directory")
    result = run_strom("broker", "--data-dir", str(file))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"strom broker: the data directory {file} is a file, not a directory; choose another --data-dir"
    )
    nested = run_strom("broker", "--data-dir", str(file / "inside"))
    assert nested.returncode == 2
    assert f"{file} (a parent of the data directory {file / 'inside'}) is a file" in nested.stderr
    assert file.read_text() == "not a directory"


def test_a_timeout_that_is_not_positive_is_refused() -> None:
    for value in ("-1", "0", "soon"):
        result = run_strom("topics", "list", "--timeout", value)
        assert result.returncode == 2, value
        assert "argument --timeout: expected a number of seconds" in result.stderr, result.stderr
        assert repr(value) in result.stderr


def test_waiting_for_an_unreachable_broker_is_said_while_waiting() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    proc = start("topics", "list", "--bootstrap", address, "--timeout", "60")
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert proc.poll() is None, "the notice must come while the command still waits"
        assert first.strip() == f"strom: no broker answers at {address} yet; waiting up to 60 s (--timeout)"
    finally:
        proc.kill()
        proc.wait()


def test_a_consumer_that_waits_says_so_once(strom_broker: str) -> None:
    topic = unique_name("first-hour")
    assert run_strom("topics", "create", topic, "--bootstrap", strom_broker).returncode == 0
    proc = start("consume", topic, "--group", unique_name("billing"), "-f", "{key}={value}",
                 "--bootstrap", strom_broker)  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert proc.poll() is None
    finally:
        out, err = stop(proc)
    assert line.startswith(f"strom: waiting for records in {topic!r} for group 'billing-"), line
    assert line.rstrip().endswith("; Ctrl-C to stop")
    assert proc.returncode == 0
    assert out == ""
    assert err.splitlines() == ["strom: consumed 0 records"]  # the notice was not repeated
