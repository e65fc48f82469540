"""Idempotent and transactional producer state: duplicates, sequence and epoch rules, snapshots, LSO."""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import pytest

from strom.log.config import LogConfig
from strom.log.partition import Partition
from strom.log.producer_state import (
    InvalidProducerEpochError,
    InvalidTxnStateError,
    OutOfOrderSequenceError,
    ProducerState,
)
from strom.protocol.records import BatchBuilder, ControlRecordType, build_control_batch
from tests.support.clock import FakeClock

PID = 4242


def pbatch(seq: int, n: int = 2, *, epoch: int = 0, pid: int = PID, txn: bool = False) -> bytes:
    builder = BatchBuilder(producer_id=pid, producer_epoch=epoch, base_sequence=seq, is_transactional=txn)
    for i in range(n):
        builder.append(b"k", b"v%d" % (seq + i), 1000 + seq + i)
    return builder.build()


def marker(kind: ControlRecordType, *, epoch: int = 0, pid: int = PID, coordinator_epoch: int = 0) -> bytes:
    return build_control_batch(
        kind, producer_id=pid, producer_epoch=epoch, timestamp=5000, coordinator_epoch=coordinator_epoch
    )


@pytest.fixture
def part(tmp_path: Path) -> Partition:
    return Partition.open(tmp_path / "idem-0", LogConfig(), clock=FakeClock())


def reopen(part: Partition, *, clean: bool) -> Partition:
    if clean:
        part.close()
    else:
        part.flush()  # data on disk, but no close(): no snapshot at the log end
    return Partition.open(part.dir, LogConfig(), clock=FakeClock(), clean_shutdown=clean)


def test_a_retried_batch_returns_its_original_offsets_and_is_not_written_again(part: Partition):
    first = part.append(pbatch(0))
    part.append(pbatch(2))
    size = part.size_in_bytes
    retry = part.append(pbatch(2))
    assert retry.duplicate and (retry.base_offset, retry.last_offset) == (2, 3)
    older = part.append(pbatch(0))
    assert older.duplicate
    assert (older.base_offset, older.last_offset) == (first.base_offset, first.last_offset)
    assert part.size_in_bytes == size and part.next_offset == 4


def test_only_the_last_five_batches_are_remembered(part: Partition):
    for seq in range(0, 12, 2):
        part.append(pbatch(seq))
    assert part.append(pbatch(2)).duplicate  # 5th newest
    with pytest.raises(OutOfOrderSequenceError):
        part.append(pbatch(0))  # 6th newest: forgotten, and not the next sequence


def test_a_sequence_gap_is_out_of_order_and_appends_nothing(part: Partition):
    part.append(pbatch(0))
    with pytest.raises(OutOfOrderSequenceError, match="expected 2"):
        part.append(pbatch(5))
    assert part.next_offset == 2
    part.append(pbatch(2))


def test_an_older_epoch_is_refused(part: Partition):
    part.append(pbatch(0, epoch=3))
    with pytest.raises(InvalidProducerEpochError, match="epoch 2"):
        part.append(pbatch(2, epoch=2))


def test_a_new_epoch_must_start_at_sequence_zero(part: Partition):
    part.append(pbatch(0, epoch=0))
    with pytest.raises(OutOfOrderSequenceError, match="must start at 0"):
        part.append(pbatch(2, epoch=1))
    part.append(pbatch(0, epoch=1))
    assert part.producer_state.producers[PID].epoch == 1


def test_an_unknown_producer_may_start_at_any_sequence(part: Partition):
    assert part.append(pbatch(77)).base_offset == 0
    assert part.append(pbatch(79)).base_offset == 2


def test_sequences_wrap_at_int32_max(part: Partition):
    top = 2**31 - 2
    part.append(pbatch(top, n=2))  # sequences 2**31-2 .. 2**31-1
    part.append(pbatch(0, n=1))
    assert part.append(pbatch(0, n=1)).duplicate


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "unclean"])
def test_producer_state_survives_a_restart(part: Partition, clean: bool):
    part.append(pbatch(0))
    part.append(pbatch(2))
    again = reopen(part, clean=clean)
    assert again.append(pbatch(2)).duplicate
    with pytest.raises(OutOfOrderSequenceError):
        again.append(pbatch(9))
    assert again.append(pbatch(4)).base_offset == 4


def test_open_transaction_bounds_the_lso_until_its_marker(part: Partition):
    part.append(pbatch(0, n=1))
    part.append(pbatch(0, n=2, pid=7, txn=True))
    assert part.last_stable_offset == 1
    with pytest.raises(InvalidTxnStateError):
        part.append(pbatch(2, n=1, pid=7, txn=False))
    part.append(marker(ControlRecordType.COMMIT, pid=7))
    assert part.last_stable_offset == part.next_offset == 4
    assert part.aborted_transactions(0, 100) == []


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "unclean"])
def test_aborted_transactions_are_indexed_and_rebuilt(part: Partition, clean: bool):
    part.append(pbatch(0, n=2, pid=7, txn=True))
    part.append(pbatch(0, n=1, pid=8, txn=True))
    part.append(marker(ControlRecordType.ABORT, pid=7))
    (aborted,) = part.aborted_transactions(0, 100)
    assert (aborted.producer_id, aborted.first_offset, aborted.last_offset) == (7, 0, 3)
    assert part.last_stable_offset == 2  # producer 8 is still open
    if not clean:
        (part.dir / "00000000000000000000.txnindex").unlink(missing_ok=True)
    again = reopen(part, clean=clean)
    assert [(t.producer_id, t.first_offset, t.last_offset) for t in again.aborted_transactions(0, 100)] == [
        (7, 0, 3)
    ]
    assert again.aborted_transactions(4, 100) == []
    assert again.last_stable_offset == 2


def test_a_fenced_marker_is_refused(part: Partition):
    part.append(pbatch(0, n=1, pid=7, epoch=2, txn=True))
    with pytest.raises(InvalidProducerEpochError):
        part.append(marker(ControlRecordType.COMMIT, pid=7, epoch=1))


def test_snapshot_file_has_kafka_layout(tmp_path: Path, part: Partition):
    part.append(pbatch(0, n=3))
    part.close()
    data = (part.dir / "00000000000000000003.snapshot").read_bytes()
    version, crc, count = struct.unpack_from(">hIi", data)
    assert (version, count) == (1, 1)
    assert crc == crc32c.crc32c(data[6:])
    pid, epoch, last_seq, last_offset, delta, ts, coord, txn_first = struct.unpack_from(">qhiqiqiq", data, 10)
    assert (pid, epoch, last_seq, last_offset, delta, ts, coord, txn_first) == (PID, 0, 2, 2, 2, 1002, -1, -1)
    state = ProducerState.read_snapshot(part.dir / "00000000000000000003.snapshot")
    assert state.producers[PID].last_seq == 2


def test_a_corrupt_snapshot_is_ignored_and_state_replayed(part: Partition):
    part.append(pbatch(0, n=3))
    part.close()
    snap = part.dir / "00000000000000000003.snapshot"
    raw = bytearray(snap.read_bytes())
    raw[-1] ^= 0xFF
    snap.write_bytes(bytes(raw))
    again = Partition.open(part.dir, LogConfig(), clock=FakeClock(), clean_shutdown=True)
    assert again.append(pbatch(0, n=3)).duplicate


def test_idle_producers_expire_after_producer_id_expiration_ms(tmp_path: Path):
    clock = FakeClock(now=10_000)
    part = Partition.open(tmp_path / "exp-0", LogConfig(producer_id_expiration_ms=5_000), clock=clock)
    part.append(pbatch(0, n=1, pid=1))  # batch timestamp 1000
    part.append(pbatch(0, n=1, pid=2, txn=True))  # open transaction: never expires while open
    part.maintain(5_999)
    assert set(part.producer_state.producers) == {1, 2}
    part.maintain(6_000)
    assert set(part.producer_state.producers) == {2}
    assert part.append(pbatch(17, n=1, pid=1)).base_offset == 2  # forgotten: any sequence is accepted again
