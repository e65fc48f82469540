"""The console run inside the broker: `strom broker --console-listen` and `EmbeddedBroker(console_listen=)`,
started after the broker (and its registry) accepts connections and stopped before them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from strom.broker.embedded import EmbeddedBroker
from tests.support.cli import run_strom


def _page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.status == 200
        return str(answer.read().decode())


def test_the_embedded_broker_serves_the_console_on_the_same_port_across_a_restart(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path, console_listen="127.0.0.1:0", num_partitions=1) as broker:
        url = broker.console_url
        assert url.startswith("http://127.0.0.1:")
        assert broker.bootstrap_servers in _page(f"{url}/")
        broker.stop()
        assert broker.console is None
        broker.start()
        assert broker.console_url == url  # the same port, as the broker's
        assert "Topics" in _page(f"{url}/topics")
    with EmbeddedBroker() as plain:
        assert plain.console is None


def test_the_embedded_console_decodes_through_the_embedded_registry() -> None:
    with EmbeddedBroker(registry_listen="127.0.0.1:0", console_listen="127.0.0.1:0") as broker:
        assert broker.console is not None
        registry = broker.console.records.registry
        assert registry is not None and registry.url == broker.registry_url


def test_strom_broker_with_console_listen_announces_it_after_the_registry_and_stops_all(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "strom.cli", "broker", "--data-dir", str(tmp_path / "data"),
         "--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0", "--console-listen", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        broker = process.stdout.readline().strip()
        assert broker.startswith("strom broker ready on 127.0.0.1:"), broker
        assert process.stdout.readline().startswith("strom registry ready on http://127.0.0.1:")
        line = process.stdout.readline().strip()
        assert line.startswith("strom console ready on http://127.0.0.1:"), line
        url = line.removeprefix("strom console ready on ")
        assert broker.removeprefix("strom broker ready on ") in _page(f"{url}/")
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err


def test_a_taken_console_port_stops_the_broker_with_a_message_and_leaves_no_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_strom(
            "broker",
            "--data-dir",
            str(data),
            "--listen",
            "127.0.0.1:0",
            "--console-listen",
            f"127.0.0.1:{port}",
        )
    assert result.returncode == 1
    assert result.stderr == (
        f"strom broker: cannot start the console on 127.0.0.1:{port}: address already in use "
        "(choose another --console-listen)\n"
    )
    assert not data.exists()


def test_a_taken_console_port_fails_the_embedded_broker_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = EmbeddedBroker(tmp_path, console_listen=f"127.0.0.1:{taken.getsockname()[1]}")
        with pytest.raises(OSError):
            broker.start()
    assert broker.broker is None and broker.console is None
    broker.close()
