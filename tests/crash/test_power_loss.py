"""Power loss: an acknowledged acks=all record survives the loss of everything not yet fsynced.

kill -9 cannot show this (the page cache survives the process), so the test runs a broker over a
fault-injecting layer that remembers, for every file of the data directory, the bytes it held at its last
fsync/fdatasync and, for every directory, the entries it held at its last fsync. A simulated power cut
materialises exactly that into a fresh directory (a file never synced comes back empty, an entry never
synced is gone), which is then opened as the log would be after a reboot. With the default
`log.flush.on.ack=true` no acknowledged record is missing; with `false` (Kafka's page-cache behaviour) some
are, which is what makes this test able to fail.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strom.broker import EmbeddedBroker
from strom.log.config import LogConfig
from strom.log.partition import Partition
from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from strom.protocol.records import BatchBuilder, iter_batches
from tests.support.wire import WireClient

NOW = int(time.time() * 1000)
TOPIC = "durable"


class PowerLossDisk:
    """Replaces os.fsync and os.fdatasync to record what each sync made durable (see the module doc)."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = str(root)
        self.contents: dict[int, bytes] = {}  # inode -> bytes at its last file sync
        self.entries: dict[str, dict[str, int]] = {}  # directory -> {name: inode} at its last sync
        self.syncs = 0
        self._lock = threading.Lock()
        self._fsync, self._fdatasync = os.fsync, os.fdatasync
        monkeypatch.setattr(os, "fsync", self.fsync)
        monkeypatch.setattr(os, "fdatasync", self.fdatasync)

    def fsync(self, fd: int) -> None:
        self._fsync(fd)
        self._record(fd)

    def fdatasync(self, fd: int) -> None:
        self._fdatasync(fd)
        self._record(fd)

    def _record(self, fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if not path.startswith(self.root):
            return
        with self._lock:
            self.syncs += 1
            if os.path.isdir(path):
                self.entries[path] = {e.name: e.inode() for e in os.scandir(path) if e.is_file()}
            else:
                with open(path, "rb") as f:
                    self.contents[os.fstat(fd).st_ino] = f.read()

    def power_cut(self, image: Path) -> None:
        """Write into `image` what the disk would hold after losing power now."""
        with self._lock:
            entries = {d: dict(names) for d, names in self.entries.items()}
            contents = dict(self.contents)
        for directory, names in entries.items():
            target = image / os.path.relpath(directory, self.root)
            target.mkdir(parents=True, exist_ok=True)
            for name, inode in names.items():
                (target / name).write_bytes(contents.get(inode, b""))


def produce(client: WireClient, tag: int) -> Any:
    builder = BatchBuilder()
    for i in range(4):
        builder.append(b"k", b"%06d-%d" % (tag, i) + b"x" * 200, NOW)
    body = {
        "transactional_id": None,
        "acks": -1,
        "timeout": 5000,
        "topic_data": [{"name": TOPIC, "partition_data": [{"index": 0, "records": builder.build()}]}],
    }
    return client.call(ApiKey.PRODUCE, 9, body).responses[0].partition_responses[0]


def survivors(image: Path) -> set[int]:
    """Every offset readable from the partition log in `image`, as recovery leaves it."""
    part = Partition.open(image / f"{TOPIC}-0", LogConfig())
    found: set[int] = set()
    offset = 0
    while offset < part.next_offset:
        batches = list(iter_batches(part.read_bytes(offset, 1 << 20), allow_truncated_tail=True))
        found.update(r.offset for b in batches for r in b.records())
        offset = batches[-1].next_offset
    part.close()
    return found


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PowerLossDisk]:
    yield PowerLossDisk(tmp_path / "data", monkeypatch)


def acknowledged_then_power_cut(
    tmp_path: Path, disk: PowerLossDisk, flush_on_ack: str
) -> tuple[set[int], set[int]]:
    """Produce from 4 connections at once (acks=all), cut the power with the broker still running, and
    return (acknowledged offsets, offsets found after the cut)."""
    acked: set[int] = set()
    lock = threading.Lock()
    config = {"log.flush.on.ack": flush_on_ack, "num.partitions": 1, "log.segment.bytes": 64 << 10}
    with EmbeddedBroker(data_dir=tmp_path / "data", config=config) as broker:
        with WireClient(broker.bootstrap_servers) as client:
            client.call(
                ApiKey.METADATA,
                9,
                {
                    "topics": [{"name": TOPIC}],
                    "allow_auto_topic_creation": True,
                    "include_topic_authorized_operations": False,
                    "include_cluster_authorized_operations": False,
                },
            )

        def producer(first: int) -> None:
            with WireClient(broker.bootstrap_servers) as client:
                for tag in range(first, first + 60):
                    answer = produce(client, tag)
                    assert answer.error_code == ErrorCode.NONE
                    with lock:
                        acked.update(range(answer.base_offset, answer.base_offset + 4))

        threads = [threading.Thread(target=producer, args=(i * 1000,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        disk.power_cut(tmp_path / "image")  # every acknowledgement was received before this
    return acked, survivors(tmp_path / "image")


def test_no_acknowledged_record_is_lost_to_a_power_cut_with_flush_on_ack(
    tmp_path: Path, disk: PowerLossDisk
) -> None:
    acked, found = acknowledged_then_power_cut(tmp_path, disk, "true")
    assert len(acked) == 4 * 60 * 4
    assert acked <= found, f"{len(acked - found)} acknowledged records lost"
    # Group commit: concurrent producers share fsyncs (fewer syncs than acknowledged requests).
    assert disk.syncs < 4 * 60


def test_without_flush_on_ack_a_power_cut_loses_acknowledged_records(
    tmp_path: Path, disk: PowerLossDisk
) -> None:
    acked, found = acknowledged_then_power_cut(tmp_path, disk, "false")
    assert len(acked) == 4 * 60 * 4
    assert acked - found, "expected page-cache acknowledgements to be lost without fsync"
    shutil.rmtree(tmp_path / "image")
