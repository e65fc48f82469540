"""A schema registry run inside the broker: `strom broker --registry-listen` and
`EmbeddedBroker(registry_listen=)`, started after the broker accepts connections and stopped with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from strom.broker.embedded import EmbeddedBroker
from strom.registry import serdes
from tests.support.cli import run_strom

ORDER = '{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "long"}]}'


def test_the_embedded_broker_serves_a_registry_that_keeps_ids_across_a_restart(tmp_path: Path) -> None:
    with EmbeddedBroker(tmp_path, registry_listen="127.0.0.1:0") as broker:
        url = broker.registry_url
        assert url.startswith("http://127.0.0.1:")
        data = serdes.avro(url, ORDER).serialize("orders", {"id": 7})
        broker.stop()
        broker.start()
        assert broker.registry_url == url  # the same port, as the broker's
        assert SchemaRegistryClient({"url": url}).get_subjects() == ["orders-value"]
        assert serdes.avro(url).deserialize("orders", data) == {"id": 7}
    with EmbeddedBroker() as plain:
        assert plain.registry is None


def test_strom_broker_with_registry_listen_announces_and_stops_both(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "strom.cli", "broker", "--data-dir", str(tmp_path / "data"),
         "--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("strom broker ready on 127.0.0.1:")
        line = process.stdout.readline().strip()
        assert line.startswith("strom registry ready on http://127.0.0.1:"), line
        url = line.removeprefix("strom registry ready on ")
        schema_id = SchemaRegistryClient({"url": url}).register_schema("t-value", Schema(ORDER, "AVRO"))
        assert serdes.avro(url, ORDER).serialize("t", {"id": 1})[1:5] == schema_id.to_bytes(4, "big")
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err


def test_a_taken_registry_port_stops_the_broker_with_a_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_strom(
            "broker", "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
            "--registry-listen", f"127.0.0.1:{port}",
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.startswith("strom broker ready on ")
    assert result.stderr == (
        f"strom broker: cannot start the registry on 127.0.0.1:{port}: address already in use "
        "(choose another --registry-listen)\n"
    )
