"""`strom console` as a command: what it says when it cannot serve, or cannot reach the cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

from tools.kafka import free_port

from tests.support.cli import run_strom

READY_PREFIX = "strom console ready on "


def test_a_taken_listen_port_is_said_in_words() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_strom("console", "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.strip() == f"strom console: cannot serve on 127.0.0.1:{port}: address already in use"


def test_pages_say_when_the_cluster_cannot_be_reached() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    proc = subprocess.Popen(
        [sys.executable, "-m", "strom.cli", "console", "--bootstrap", bootstrap, "--listen", "127.0.0.1:0",
         "--timeout", "1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith(READY_PREFIX), line
        url = line[len(READY_PREFIX) :]
        try:
            urllib.request.urlopen(url + "/topics", timeout=30)
            raise AssertionError("the topics page loaded without a cluster")
        except urllib.error.HTTPError as answer:
            assert answer.code == 502
            page = answer.read().decode()
        assert f"cannot reach the cluster at {bootstrap}" in page
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err


def test_the_schemas_pages_say_when_the_registry_cannot_be_reached_or_is_not_given() -> None:
    registry = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for extra, status, said in (
        (["--registry", registry], 502, f"cannot reach the schema registry at {registry}"),
        ([], 404, "no schema registry: start the console with --registry URL"),
    ):
        proc = subprocess.Popen(
            [sys.executable, "-m", "strom.cli", "console", "--listen", "127.0.0.1:0", *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith(READY_PREFIX), line
            try:
                urllib.request.urlopen(line[len(READY_PREFIX) :] + "/schemas", timeout=30)
                raise AssertionError("the schemas page loaded without a registry")
            except urllib.error.HTTPError as answer:
                assert answer.code == status
                page = answer.read().decode()
            assert said in page, page
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
