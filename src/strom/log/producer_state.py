"""Per-partition producer state for idempotent and transactional producers, and its `.snapshot` files.

For every producer id the partition keeps the current epoch, the metadata of its last five batches
(sequence range, offsets, timestamp), the coordinator epoch of its last transaction marker and the first
offset of its open transaction. With it the log answers Kafka's rules on append:

- a batch whose (epoch, base sequence, last sequence) equals one of the last five is a retried duplicate:
  nothing is appended and the original offsets are returned;
- an epoch lower than the current one is refused (`InvalidProducerEpochError`, INVALID_PRODUCER_EPOCH);
- a new epoch must start at sequence 0, and within an epoch the base sequence must follow the last
  sequence (`OutOfOrderSequenceError`, OUT_OF_ORDER_SEQUENCE_NUMBER). A producer the partition has no state
  for (never seen, or expired) may start at any sequence, as in Kafka since KIP-360.

Snapshot file `<offset:020d>.snapshot`, Kafka's ProducerSnapshot v1, all big-endian:
`version int16 (1) | crc uint32 | count int32 | count x (producer_id int64, epoch int16, last_sequence int32,
last_offset int64, offset_delta int32, timestamp int64, coordinator_epoch int32, current_txn_first_offset
int64)`; the CRC-32C covers everything after the crc field. The offset in the name is the log end offset the
state covers; recovery loads the newest snapshot at or below the point it replays from and replays the log
after it. A snapshot keeps only each producer's last batch, as Kafka's does.
"""

from __future__ import annotations

import dataclasses
import struct
from collections import deque
from pathlib import Path

import crc32c

from strom.log.checkpoint import write_atomically
from strom.log.errors import LogError, LogStorageError
from strom.protocol.error_codes import ErrorCode
from strom.protocol.records import ControlRecordType, RecordBatch, read_control_record

NO_PRODUCER_ID = -1
NO_EPOCH = -1
NO_SEQUENCE = -1
NO_OFFSET = -1
INT32_MAX = 2**31 - 1
BATCHES_RETAINED = 5
SNAPSHOT_SUFFIX = ".snapshot"

_SNAPSHOT_HEAD = struct.Struct(">hIi")
_SNAPSHOT_ENTRY = struct.Struct(">qhiqiqiq")
_SNAPSHOT_VERSION = 1


class ProducerStateError(LogError):
    """Base class of the idempotence/transaction failures."""


class OutOfOrderSequenceError(ProducerStateError):
    """The base sequence does not follow the producer's last sequence (OUT_OF_ORDER_SEQUENCE_NUMBER)."""

    error_code = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


class InvalidProducerEpochError(ProducerStateError):
    """The batch carries an epoch older than the producer's current one (INVALID_PRODUCER_EPOCH)."""

    error_code = ErrorCode.INVALID_PRODUCER_EPOCH


class InvalidTxnStateError(ProducerStateError):
    """A batch the transaction state does not allow (INVALID_TXN_STATE): a non-transactional batch while the
    producer has an open transaction, or a client's transactional batch while strom has no transaction
    coordinator (strom.log.validator)."""

    error_code = ErrorCode.INVALID_TXN_STATE


class TransactionCoordinatorFencedError(ProducerStateError):
    """A marker carries an older coordinator epoch than the last one (TRANSACTION_COORDINATOR_FENCED)."""

    error_code = ErrorCode.TRANSACTION_COORDINATOR_FENCED


class CorruptSnapshotError(LogStorageError):
    """A `.snapshot` file fails its CRC or layout check; recovery ignores it and replays the log instead."""


def next_sequence(sequence: int, delta: int) -> int:
    """`sequence + delta` with Kafka's wrap-around from INT32_MAX to 0."""
    if sequence > INT32_MAX - delta:
        return delta - (INT32_MAX - sequence) - 1
    return sequence + delta


@dataclasses.dataclass(frozen=True, slots=True)
class BatchMetadata:
    """What the log remembers of one appended producer batch."""

    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclasses.dataclass(slots=True)
class ProducerEntry:
    """State of one producer id. `batches` holds at most BATCHES_RETAINED entries, oldest first."""

    producer_id: int
    epoch: int = NO_EPOCH
    batches: deque[BatchMetadata] = dataclasses.field(default_factory=lambda: deque(maxlen=BATCHES_RETAINED))
    coordinator_epoch: int = -1
    current_txn_first_offset: int = NO_OFFSET
    last_timestamp: int = -1

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else NO_OFFSET

    def copy(self) -> ProducerEntry:
        return ProducerEntry(
            self.producer_id,
            self.epoch,
            deque(self.batches, maxlen=BATCHES_RETAINED),
            self.coordinator_epoch,
            self.current_txn_first_offset,
            self.last_timestamp,
        )

    def find_duplicate(self, epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        if epoch != self.epoch:
            return None
        for batch in self.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class CompletedTxn:
    """A transaction ended by a marker at `last_offset`; `first_offset` is NO_OFFSET without data here."""

    producer_id: int
    first_offset: int
    last_offset: int
    aborted: bool


class ProducerState:
    """All producer entries of one partition plus the open transactions.

    Invariants: `ongoing` maps the first offset of every open transaction to its producer id, and equals
    {e.current_txn_first_offset: e.producer_id for open entries}; `last_offset` of each entry is below the
    log end offset. Updates go through `ProducerAppend` so that a failed append changes nothing.
    """

    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}
        self.ongoing: dict[int, int] = {}

    def first_unstable_offset(self) -> int | None:
        """First offset of the oldest open transaction (the LSO is bounded by it), or None."""
        return min(self.ongoing) if self.ongoing else None

    def begin(self) -> ProducerAppend:
        """Start validating the producer batches of one append."""
        return ProducerAppend(self)

    def remove_expired(self, now_ms: int, expiration_ms: int) -> None:
        """Forget producers idle for longer than `expiration_ms` without an open transaction."""
        for pid in [
            pid
            for pid, e in self.producers.items()
            if e.current_txn_first_offset == NO_OFFSET and now_ms - e.last_timestamp >= expiration_ms
        ]:
            del self.producers[pid]

    def replay(self, batch: RecordBatch) -> CompletedTxn | None:
        """Apply a batch read back from the log (recovery), without validation; returns the transaction a
        marker completes. Emptied batches (compaction) still carry their producer's sequence range."""
        pid = batch.producer_id
        if pid < 0:
            return None
        entry = self.producers.get(pid)
        if entry is None:
            entry = self.producers[pid] = ProducerEntry(pid)
        epoch = batch.producer_epoch
        if epoch != entry.epoch:
            entry.epoch = epoch
            entry.batches.clear()
        entry.last_timestamp = max(entry.last_timestamp, batch.max_timestamp)
        if batch.is_control:
            if batch.record_count == 0:
                return None
            control = read_control_record(next(iter(batch.records())))
            if control.type not in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
                return None
            first = entry.current_txn_first_offset
            if first != NO_OFFSET:
                self.ongoing.pop(first, None)
            entry.current_txn_first_offset = NO_OFFSET
            entry.coordinator_epoch = control.coordinator_epoch
            return CompletedTxn(pid, first, batch.base_offset, control.type == ControlRecordType.ABORT)
        entry.batches.append(
            BatchMetadata(
                batch.base_sequence,
                batch.last_sequence,
                batch.base_offset,
                batch.last_offset,
                batch.max_timestamp,
            )
        )
        if batch.is_transactional and entry.current_txn_first_offset == NO_OFFSET:
            entry.current_txn_first_offset = batch.base_offset
            self.ongoing[batch.base_offset] = pid
        return None

    # ----- snapshots -----

    def write_snapshot(self, path: Path) -> None:
        """Write Kafka's ProducerSnapshot v1 atomically."""
        write_atomically(path, self.snapshot_bytes())

    def snapshot_bytes(self) -> bytes:
        """The state as Kafka's ProducerSnapshot v1 (see module doc)."""
        body = [struct.pack(">i", len(self.producers))]
        for e in sorted(self.producers.values(), key=lambda e: e.producer_id):
            last = e.batches[-1] if e.batches else None
            body.append(
                _SNAPSHOT_ENTRY.pack(
                    e.producer_id,
                    e.epoch,
                    last.last_seq if last else NO_SEQUENCE,
                    last.last_offset if last else NO_OFFSET,
                    (last.last_offset - last.first_offset) if last else 0,
                    e.last_timestamp,
                    e.coordinator_epoch,
                    e.current_txn_first_offset,
                )
            )
        payload = b"".join(body)
        return struct.pack(">hI", _SNAPSHOT_VERSION, crc32c.crc32c(payload)) + payload

    @classmethod
    def read_snapshot(cls, path: Path) -> ProducerState:
        """Load a snapshot, raising CorruptSnapshotError on a bad version, CRC or length."""
        data = path.read_bytes()
        if len(data) < _SNAPSHOT_HEAD.size:
            raise CorruptSnapshotError(f"{path}: {len(data)} bytes is shorter than the snapshot header")
        version, crc, count = _SNAPSHOT_HEAD.unpack_from(data)
        if version != _SNAPSHOT_VERSION:
            raise CorruptSnapshotError(f"{path}: snapshot version {version}, expected {_SNAPSHOT_VERSION}")
        if crc32c.crc32c(data[6:]) != crc:
            raise CorruptSnapshotError(f"{path}: CRC-32C mismatch")
        if count < 0 or len(data) != _SNAPSHOT_HEAD.size + count * _SNAPSHOT_ENTRY.size:
            raise CorruptSnapshotError(f"{path}: {len(data)} bytes do not hold {count} entries")
        state = cls()
        for pid, epoch, last_seq, last_offset, delta, ts, coord, txn_first in _SNAPSHOT_ENTRY.iter_unpack(
            data[_SNAPSHOT_HEAD.size :]
        ):
            entry = ProducerEntry(pid, epoch, coordinator_epoch=coord, current_txn_first_offset=txn_first)
            entry.last_timestamp = ts
            if last_offset >= 0:
                first_seq = last_seq - delta if last_seq >= delta else INT32_MAX - (delta - last_seq - 1)
                entry.batches.append(BatchMetadata(first_seq, last_seq, last_offset - delta, last_offset, ts))
            state.producers[pid] = entry
            if txn_first != NO_OFFSET:
                state.ongoing[txn_first] = pid
        return state


class ProducerAppend:
    """Validation and staged update of producer state for one append; `commit` applies it.

    The partition calls `check_batch` for each producer batch in order (raising stops the append with no
    change), then writes the bytes, then `commit`. Entries are copied on first touch so a refused append
    leaves `ProducerState` untouched.
    """

    def __init__(self, state: ProducerState) -> None:
        self._state = state
        self._touched: dict[int, ProducerEntry] = {}
        self.completed: list[CompletedTxn] = []

    def _entry(self, pid: int) -> ProducerEntry:
        entry = self._touched.get(pid)
        if entry is None:
            current = self._state.producers.get(pid)
            entry = current.copy() if current is not None else ProducerEntry(pid)
            self._touched[pid] = entry
        return entry

    def find_duplicate(
        self, pid: int, epoch: int, base_seq: int, record_count_minus_one: int
    ) -> BatchMetadata | None:
        """The retained batch this one retries, if any (checked before any sequence rule, as Kafka does)."""
        entry = self._touched.get(pid) or self._state.producers.get(pid)
        if entry is None:
            return None
        return entry.find_duplicate(epoch, base_seq, next_sequence(base_seq, record_count_minus_one))

    def check_data_batch(
        self,
        pid: int,
        epoch: int,
        base_seq: int,
        offset_delta: int,
        first_offset: int,
        max_timestamp: int,
        transactional: bool,
    ) -> None:
        """Validate a data batch at `first_offset` and stage its effect; raises a ProducerStateError."""
        entry = self._entry(pid)
        if epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"producer {pid} sent epoch {epoch}, older than its current epoch {entry.epoch}"
            )
        if epoch != entry.epoch:
            if base_seq != 0 and entry.epoch != NO_EPOCH:
                raise OutOfOrderSequenceError(
                    f"producer {pid} started new epoch {epoch} at sequence {base_seq}; "
                    "a new epoch must start at 0"
                )
            entry.epoch = epoch
            entry.batches.clear()
        elif entry.batches and base_seq != next_sequence(entry.last_seq, 1):
            raise OutOfOrderSequenceError(
                f"producer {pid} epoch {epoch} sent sequence {base_seq} at offset {first_offset}; "
                f"expected {next_sequence(entry.last_seq, 1)} after last sequence {entry.last_seq}"
            )
        if transactional:
            if entry.current_txn_first_offset == NO_OFFSET:
                entry.current_txn_first_offset = first_offset
        elif entry.current_txn_first_offset != NO_OFFSET:
            raise InvalidTxnStateError(
                f"producer {pid} sent a non-transactional batch while its transaction starting at offset "
                f"{entry.current_txn_first_offset} is open"
            )
        last_offset = first_offset + offset_delta
        entry.batches.append(
            BatchMetadata(
                base_seq, next_sequence(base_seq, offset_delta), first_offset, last_offset, max_timestamp
            )
        )
        entry.last_timestamp = max_timestamp

    def check_marker(
        self, pid: int, epoch: int, offset: int, commit: bool, coordinator_epoch: int, timestamp: int
    ) -> None:
        """Validate a transaction marker (control batch) at `offset` and stage the transaction's end."""
        entry = self._entry(pid)
        if epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"transaction marker for producer {pid} has epoch {epoch}, "
                f"older than current epoch {entry.epoch}"
            )
        if coordinator_epoch < entry.coordinator_epoch:
            raise TransactionCoordinatorFencedError(
                f"transaction marker for producer {pid} has coordinator epoch {coordinator_epoch}, "
                "older than "
                f"{entry.coordinator_epoch}"
            )
        if epoch != entry.epoch:
            entry.epoch = epoch
            entry.batches.clear()
        self.completed.append(CompletedTxn(pid, entry.current_txn_first_offset, offset, not commit))
        entry.current_txn_first_offset = NO_OFFSET
        entry.coordinator_epoch = coordinator_epoch
        entry.last_timestamp = timestamp

    def commit(self) -> None:
        """Apply the staged changes to the partition's state (after the bytes were written)."""
        state = self._state
        for pid, entry in self._touched.items():
            old = state.producers.get(pid)
            if old is not None and old.current_txn_first_offset != NO_OFFSET:
                state.ongoing.pop(old.current_txn_first_offset, None)
            if entry.current_txn_first_offset != NO_OFFSET:
                state.ongoing[entry.current_txn_first_offset] = pid
            state.producers[pid] = entry
