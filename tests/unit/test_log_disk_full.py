"""Disk full and failing writes: an append that cannot be written answers KAFKA_STORAGE_ERROR, leaves only
complete batches behind, takes the partition offline for writes until it is opened again (reads keep
working), and a clean stop still releases everything. Faults come from a file layer that fails writes, and
from a real, tiny tmpfs where mounting one is possible."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import strom.log.segment as segment_module
from strom.log.config import LogConfig
from strom.log.errors import LogStorageError, PartitionOfflineError
from strom.log.log_manager import CLEAN_SHUTDOWN_FILE, LogManager
from strom.log.partition import Partition
from strom.protocol.error_codes import ErrorCode
from strom.protocol.records import BatchBuilder, iter_batches
from tests.support.tmpfs import mounted_tmpfs

NOW = 1_700_000_000_000


def payload(tag: int, size: int = 200) -> bytes:
    builder = BatchBuilder()
    for i in range(4):
        builder.append(b"key-%d" % tag, b"%08d-%d:" % (tag, i) + b"x" * size, NOW)
    return builder.build()


def values(part: Partition) -> list[tuple[int, bytes | None]]:
    out: list[tuple[int, bytes | None]] = []
    offset = part.log_start_offset
    while offset < part.next_offset:
        got = [
            (r.offset, r.value) for b in iter_batches(part.read_bytes(offset, 1 << 20)) for r in b.records()
        ]
        out.extend(row for row in got if row[0] >= offset)
        offset = out[-1][0] + 1
    return out


class FailingWrites:
    """Stands in for the segment's writev loop: writes the first `partial` bytes of the next append, then
    fails with `error` (a disk that fills mid-write), while `failing` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, error: int, partial: int) -> None:
        self.real = segment_module._write_all
        self.error = error
        self.partial = partial
        self.failing = False
        monkeypatch.setattr(segment_module, "_write_all", self)

    def __call__(self, fd: int, buffers: Sequence[bytes | bytearray | memoryview]) -> None:
        if not self.failing:
            self.real(fd, buffers)
            return
        data = b"".join(bytes(b) for b in buffers)
        os.write(fd, data[: self.partial])
        raise OSError(self.error, os.strerror(self.error))


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO], ids=["ENOSPC", "EIO"])
def test_a_failed_write_answers_storage_error_cuts_the_partial_batch_and_stops_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error: int
) -> None:
    faults = FailingWrites(monkeypatch, error, partial=100)
    part = Partition.open(tmp_path / "t-0", LogConfig(), clock=lambda: NOW)
    for tag in range(3):
        part.append(payload(tag), produce_version=9)
    size = part.active_segment.log_path.stat().st_size
    faults.failing = True
    with caplog.at_level(logging.WARNING, logger="strom.log"), pytest.raises(PartitionOfflineError) as failed:
        part.append(payload(3), produce_version=9)
    assert failed.value.error_code is ErrorCode.KAFKA_STORAGE_ERROR
    assert part.active_segment.log_path.stat().st_size == size  # the partial batch was cut off
    assert part.next_offset == 12 and part.offline is not None
    assert any("goes offline for writes" in r.getMessage() for r in caplog.records)
    faults.failing = False  # space is back, but the partition stays offline until it is opened again
    with pytest.raises(PartitionOfflineError, match="restart the broker"):
        part.append(payload(4), produce_version=9)
    assert [o for o, _ in values(part)] == list(range(12))  # reads keep working
    with pytest.raises(PartitionOfflineError):
        part.close()  # releases everything, and says it was not a clean close
    again = Partition.open(tmp_path / "t-0", LogConfig(), clock=lambda: NOW)
    assert [o for o, _ in values(again)] == list(range(12))
    assert again.append(payload(5), produce_version=9).base_offset == 12
    again.close()


def test_a_log_manager_with_an_offline_partition_still_stops_but_not_as_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = FailingWrites(monkeypatch, errno.ENOSPC, partial=0)
    manager = LogManager(tmp_path / "data", cleaner_enabled=False)
    full, fine = manager.create("full", 0), manager.create("fine", 0)
    fine.append(payload(0), produce_version=9)
    faults.failing = True
    with pytest.raises(PartitionOfflineError):
        full.append(payload(1), produce_version=9)
    faults.failing = False
    assert fine.append(payload(2), produce_version=9).base_offset == 4  # other partitions keep going
    with pytest.raises(LogStorageError, match="without a clean shutdown: full-0"):
        manager.close()  # everything is released all the same, so the directory reopens below
    assert not (tmp_path / "data" / CLEAN_SHUTDOWN_FILE).exists()  # the next start recovers
    reopened = LogManager(tmp_path / "data", cleaner_enabled=False)
    assert reopened.partitions()[("fine", 0)].next_offset == 8
    reopened.close()


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "tiny", "1m") as mount:
        yield mount


def test_filling_a_real_disk_stops_writes_with_no_acknowledged_record_lost(tiny_tmpfs: Path) -> None:
    config = LogConfig(segment_bytes=256 << 10)
    filler = tiny_tmpfs / "filler"
    filler.write_bytes(bytes(128 << 10))  # what the operator deletes to make room again
    part = Partition.open(tiny_tmpfs / "t-0", config, clock=lambda: NOW)
    acknowledged = 0
    with pytest.raises(PartitionOfflineError) as full:
        for tag in range(10_000):
            acknowledged = part.append(payload(tag, size=2_000), produce_version=9).last_offset + 1
    assert "No space left on device" in str(full.value)
    assert acknowledged > 0 and part.next_offset == acknowledged
    assert [o for o, _ in values(part)] == list(range(acknowledged))
    with pytest.raises(PartitionOfflineError):
        part.close()
    filler.unlink()
    again = Partition.open(tiny_tmpfs / "t-0", config, clock=lambda: NOW)
    assert [o for o, _ in values(again)] == list(range(acknowledged))  # nothing half-written, nothing lost
    assert all(v is not None and v.startswith(b"%08d-" % (o // 4)) for o, v in values(again))
    again.close()
