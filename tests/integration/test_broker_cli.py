"""`strom broker` as a process: the ready line, serving, SIGTERM, bad configuration."""

from __future__ import annotations

import signal
from pathlib import Path

from strom.protocol.api_keys import ApiKey
from tests.support.cli import start_strom
from tests.support.wire import WireClient

READY_PREFIX = "strom broker ready on "



def test_broker_prints_ready_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "server.properties"
    config.write_text("# a Kafka-style file\nnum.partitions=4\nprocess.roles=broker\n")
    proc = start_strom(
        "broker",
        "--data-dir",
        str(data),
        "--listen",
        "127.0.0.1:0",
        "--config",
        str(config),
        "--set",
        "auto.create.topics.enable=true",
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith(READY_PREFIX), line
        address = line[len(READY_PREFIX) :]
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        with WireClient(address) as client:
            resp = client.call(
                ApiKey.METADATA,
                9,
                {
                    "topics": [{"name": "via-cli"}],
                    "allow_auto_topic_creation": True,
                    "include_topic_authorized_operations": False,
                    "include_cluster_authorized_operations": False,
                },
            )
        assert len(resp.topics[0].partitions) == 4  # num.partitions from the file
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert (data / ".kafka_cleanshutdown").exists()
    assert (data / "via-cli-3").is_dir()
    assert proc.stderr is not None
    assert "ignoring Kafka configuration with no effect on strom: process.roles" in proc.stderr.read()


def test_bad_configuration_is_refused_with_a_message(tmp_path: Path) -> None:
    proc = start_strom(
        "broker", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0", "--set", "num.partitions=many"
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "num.partitions" in err and "many" in err
    assert READY_PREFIX not in out


def test_bad_listen_address_is_refused(tmp_path: Path) -> None:
    proc = start_strom("broker", "--data-dir", str(tmp_path), "--listen", "nowhere")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "HOST:PORT" in err


def test_a_data_directory_in_use_is_refused_with_a_message(tmp_path: Path) -> None:
    first = start_strom("broker", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0")
    try:
        assert first.stdout is not None
        assert first.stdout.readline().startswith(READY_PREFIX)
        second = start_strom("broker", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 1
        assert "in use" in err and "Traceback" not in err
        assert READY_PREFIX not in out
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)


def test_listen_address_and_data_directory_from_a_kafka_config_file(tmp_path: Path) -> None:
    config = tmp_path / "server.properties"
    config.write_text(
        "listeners=CONTROLLER://127.0.0.1:9093,PLAINTEXT://127.0.0.1:0\n"
        f"log.dirs={tmp_path / 'kafka-logs'},/elsewhere\n"
    )
    proc = start_strom("broker", "--config", str(config))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith(READY_PREFIX + "127.0.0.1:"), line
        assert not line.endswith(":9093")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert (tmp_path / "kafka-logs" / ".kafka_cleanshutdown").exists()
