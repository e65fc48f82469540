"""A `strom registry` subprocess for tests, started as a user would and stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient

READY_PREFIX = "strom registry ready on "


class RegistryProcess:
    """One `strom registry` subprocess; `url` once it has said it is ready."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "strom.cli", "registry", "--bootstrap", bootstrap,
             "--listen", "127.0.0.1:0", "--topic", topic, "--timeout", "20"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith(READY_PREFIX):
            self.proc.kill()
            raise AssertionError(f"no ready line: {line!r}; stderr: {self.proc.communicate()[1]}")
        self.url = line[len(READY_PREFIX) :]

    def client(self) -> SchemaRegistryClient:
        return SchemaRegistryClient({"url": self.url})

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=30)
