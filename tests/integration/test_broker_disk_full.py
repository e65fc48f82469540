"""A full disk: admin changes are all-or-nothing, and stopping says what happened.

The data directory is a small tmpfs the fixture mounts (skipped where mounting is impossible), filled to
the last byte by a filler file. CreateTopics and DeleteTopics then answer KAFKA_STORAGE_ERROR and change
nothing, neither what clients see nor what the next start finds; a stop that cannot write its checkpoints
exits with a message saying so instead of a traceback or "cannot start". The broker is a child process
(`strom broker`), so a failure inside it cannot take the test process down.
"""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from strom.protocol.records import BatchBuilder
from tests.support.tmpfs import mounted_tmpfs
from tests.support.wire import WireClient

ROOT = Path(__file__).resolve().parents[2]
NO_OPS = {"include_topic_authorized_operations": False, "include_cluster_authorized_operations": False}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "16m") as mount_point:
        yield mount_point


def _fill(disk: Path) -> Path:
    """Take every free byte of `disk` with one file; delete it to free them again."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


class BrokerProcess:
    """`strom broker` on a data directory; `stop()` sends SIGTERM and returns (exit code, stderr)."""

    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self._log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "strom.cli", "broker", "--data-dir", str(data_dir),
             "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=self._log, text=True, cwd=ROOT,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("strom broker ready on "), log_path.read_text()
        self.bootstrap = line.rsplit(" ", 1)[1].strip()

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self._log.close()
        return code, self._log_path.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()


@pytest.fixture
def start(small_disk: Path, tmp_path: Path) -> Iterator[Any]:
    started: list[BrokerProcess] = []

    def run() -> BrokerProcess:
        broker = BrokerProcess(small_disk / "data", tmp_path / f"broker-{len(started)}.log")
        started.append(broker)
        return broker

    yield run
    for broker in started:
        broker.kill()


def _create(client: WireClient, name: str, partitions: int) -> int:
    topic = {"name": name, "num_partitions": partitions, "replication_factor": 1, "assignments": []}
    request = {"topics": [{**topic, "configs": []}], "timeout": 10_000, "validate_only": False}
    answer = client.call(ApiKey.CREATE_TOPICS, 5, request)
    code: int = answer.topics[0].error_code
    return code


def _topics(client: WireClient) -> set[str]:
    answer = client.call(ApiKey.METADATA, 12, {"topics": None, **NO_OPS})
    return {t.name for t in answer.topics}


def _produce(client: WireClient, topic: str) -> None:
    builder = BatchBuilder()
    builder.append(key=b"k", value=b"v", timestamp=int(time.time() * 1000))
    body = {
        "transactional_id": None,
        "acks": 1,
        "timeout": 5000,
        "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": builder.build()}]}],
    }
    answer = client.call(ApiKey.PRODUCE, 9, body)
    assert answer.responses[0].partition_responses[0].error_code == ErrorCode.NONE


def test_create_topics_on_a_full_disk_fails_and_changes_nothing(small_disk: Path, start: Any) -> None:
    broker = start()
    with WireClient(broker.bootstrap) as client:
        assert _create(client, "before", 1) == ErrorCode.NONE
        filler = _fill(small_disk)
        assert _create(client, "new", 3) == ErrorCode.KAFKA_STORAGE_ERROR
        assert _topics(client) == {"before"}
    assert not list((small_disk / "data").glob("new-*"))
    filler.unlink()
    assert broker.stop()[0] == 0

    broker = start()
    with WireClient(broker.bootstrap) as client:
        assert _topics(client) == {"before"}
        assert _create(client, "new", 3) == ErrorCode.NONE


def test_delete_topics_on_a_full_disk_fails_and_the_topic_stays(small_disk: Path, start: Any) -> None:
    broker = start()
    with WireClient(broker.bootstrap) as client:
        assert _create(client, "kept", 1) == ErrorCode.NONE
        _produce(client, "kept")
        filler = _fill(small_disk)
        answer = client.call(ApiKey.DELETE_TOPICS, 4, {"topic_names": ["kept"], "timeout": 10_000})
        assert answer.responses[0].error_code == ErrorCode.KAFKA_STORAGE_ERROR
        assert _topics(client) == {"kept"}
    filler.unlink()
    assert broker.stop()[0] == 0

    broker = start()
    with WireClient(broker.bootstrap) as client:
        assert _topics(client) == {"kept"}
        answer = client.call(ApiKey.DELETE_TOPICS, 4, {"topic_names": ["kept"], "timeout": 10_000})
        assert answer.responses[0].error_code == ErrorCode.NONE
    assert broker.stop()[0] == 0
    broker = start()
    with WireClient(broker.bootstrap) as client:
        assert _topics(client) == set()


def test_stopping_on_a_full_disk_says_so_and_the_next_start_recovers(small_disk: Path, start: Any) -> None:
    broker = start()
    with WireClient(broker.bootstrap) as client:
        assert _create(client, "kept", 1) == ErrorCode.NONE
        _produce(client, "kept")
    filler = _fill(small_disk)
    code, stderr = broker.stop()
    assert code == 1
    assert "strom broker: stopped without a clean shutdown" in stderr
    assert "No space left on device" in stderr
    assert "cannot start" not in stderr and "Traceback" not in stderr

    filler.unlink()
    broker = start()
    with WireClient(broker.bootstrap) as client:
        assert _topics(client) == {"kept"}
        offsets = client.call(
            ApiKey.LIST_OFFSETS,
            7,
            {
                "replica_id": -1,
                "isolation_level": 0,
                "topics": [{"name": "kept", "partitions": [{"partition_index": 0, "timestamp": -1}]}],
            },
        )
        assert offsets.topics[0].partitions[0].offset == 1
