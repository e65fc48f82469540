"""The log of one topic-partition: an ordered list of segments in one directory `<topic>-<partition>/`.

This is the API the broker uses (one `Partition` per hosted partition, usually obtained from `LogManager`):

- `append(records, leader_epoch=0, produce_version=None) -> AppendResult`: validate a payload (one or more
  RecordBatch v2) against every produce-time rule (validator.py), check producer state, assign offsets by
  patching headers, write it with one `writev`.
- `read(offset, max_bytes, max_offset=None, min_one=True) -> LogSlice`: the byte range of a segment file that
  starts at the batch holding `offset`, ready to send as a Fetch payload (`os.sendfile` or `slice.read()`).
- `offsets_for_timestamp(ts)`, `log_start_offset`, `next_offset` (log end offset), `last_stable_offset`,
  `aborted_transactions(...)`, `end_offset_for_epoch(...)`.
- `delete_records_before(offset)`, `apply_retention(now)`, `maintain(now)`, `update_config(config)`,
  `roll()`, `flush()`, `close()`.
- For the cleaner: `segments_snapshot()`, `replace_segments(new, old)`, `lock`.

Thread safety: every public method takes `lock` (a re-entrant lock), so the broker's event loop thread and a
maintenance thread (retention, cleaner) can share a Partition. Appends and reads are short; the cleaner holds
the lock only for the swap.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from strom.log.checkpoint import fsync_dir, write_atomically
from strom.log.config import LogConfig
from strom.log.errors import LogClosedError, LogStorageError, OffsetOutOfRangeError, PartitionOfflineError
from strom.log.group_commit import GroupCommit
from strom.log.leader_epoch import FILE_NAME as LEADER_EPOCH_FILE
from strom.log.leader_epoch import LeaderEpochCache
from strom.log.producer_state import ProducerAppend, ProducerState
from strom.log.recovery import load_log, snapshot_offsets, snapshot_path
from strom.log.retention import SegmentStats, deletable_count
from strom.log.segment import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    INT32_MAX,
    NO_TIMESTAMP,
    SWAP_SUFFIX,
    LogSlice,
    Segment,
)
from strom.log.txn_index import AbortedTxn
from strom.log.validator import ValidatedAppend, validate_append
from strom.protocol.field_values import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, MAX_TIMESTAMP
from strom.protocol.records import ControlRecordType, RecordBatch, read_control_record

logger = logging.getLogger(__name__)

Clock = Callable[[], int]
"""Milliseconds since the epoch. Tests inject a fake one so they never sleep for time to pass."""

# One thread for all partitions fsyncs segments that were just rolled, in roll order.
_ROLL_FLUSHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strom-log-roll-flush")


def system_clock() -> int:
    return time.time_ns() // 1_000_000


def parse_partition_dir(name: str) -> tuple[str, int] | None:
    """(topic, partition) of a directory named `<topic>-<partition>`, or None."""
    topic, dash, number = name.rpartition("-")
    if not dash or not topic or not number.isdigit():
        return None
    return topic, int(number)


@dataclasses.dataclass(frozen=True, slots=True)
class AppendResult:
    """Offsets assigned to an append. For a retried duplicate, the offsets of the original (`duplicate`)."""

    base_offset: int
    last_offset: int
    log_append_time: int  # -1 unless message.timestamp.type=LogAppendTime
    log_start_offset: int
    duplicate: bool = False


class Partition:
    """A segmented, append-only, Kafka-format partition log.

    Invariants kept (under `lock`):
    - `segments` is sorted by base offset, non-empty, and only the last one (the active segment) is written;
    - `log_start_offset` <= first readable offset and `next_offset` = the active segment's next offset;
    - offsets are never reused: a new segment's base offset is the log end offset at its creation;
    - `recovery_point` <= `next_offset`, and every batch below it has been fsynced with its indexes;
    - producer state covers every batch below `next_offset`.
    Failures survived: an invalid or refused append changes nothing (bytes, offsets, producer state); a crash
    at any point is repaired by recovery on the next open (see recovery.py); deleted segments stay readable
    through slices already handed out for `file.delete.delay.ms`; a write that fails (disk full, I/O error)
    is cut back to the last complete batch and takes the partition offline for writes until it is opened
    again, as Kafka's log-dir failure handling does: every later append answers KAFKA_STORAGE_ERROR
    (`PartitionOfflineError`), reads of what was written keep working.
    """

    def __init__(
        self, directory: Path, config: LogConfig, clock: Clock, on_log_start_change: Callable[[], None] | None
    ) -> None:
        self.dir = directory
        parsed = parse_partition_dir(directory.name)
        self.topic, self.partition = parsed if parsed else (directory.name, 0)
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self._segments: list[Segment] = []
        self._bases: list[int] = []
        self._producers = ProducerState()
        self._log_start = 0
        self._recovery_point = 0
        self._recovery_lock = threading.Lock()
        self._roll_flushes: list[Future[None]] = []
        self._unflushed_messages = 0
        self._last_flush_ms = 0
        self._pending_deletes: list[tuple[int, Segment]] = []
        self._closed = False
        self._on_log_start_change = on_log_start_change
        self._epochs = LeaderEpochCache(directory / LEADER_EPOCH_FILE)
        self._random = random.Random()
        self._offline: str | None = None  # why writes stopped, after a write failed
        self._durable = 0  # every offset below is on disk (fdatasync'd, or flushed)
        self._dir_unsynced = False  # a segment was created since the directory was last fsynced for acks
        self._group_commit: GroupCommit | None = None
        self.recovered_segments = 0  # how many segments the last open had to recover
        self.truncated_bytes = 0  # how many invalid tail bytes the last open cut off

    # ----- opening -----

    @classmethod
    def open(
        cls,
        directory: Path,
        config: LogConfig | None = None,
        *,
        clock: Clock = system_clock,
        recovery_point: int = 0,
        log_start_offset: int = 0,
        clean_shutdown: bool = False,
        on_log_start_change: Callable[[], None] | None = None,
        group_commit: GroupCommit | None = None,
    ) -> Partition:
        """Open (creating if needed) the partition directory `directory` (named `<topic>-<partition>`).

        `recovery_point`, `log_start_offset` and `clean_shutdown` come from the data directory's checkpoints
        and marker (LogManager reads them). The defaults recover every segment, which is always safe.
        `on_log_start_change` is called (under the lock) when the log start offset moves. `group_commit`
        is the flusher thread `durable()` queues on (the LogManager's); without one it fsyncs in the caller.
        """
        config = config or LogConfig()
        directory.mkdir(parents=True, exist_ok=True)
        now = clock()
        loaded = load_log(
            directory,
            config,
            now,
            recovery_point=recovery_point,
            log_start_offset=log_start_offset,
            clean_shutdown=clean_shutdown,
        )
        part = cls(directory, config, clock, on_log_start_change)
        part._segments = loaded.segments
        part._bases = [s.base_offset for s in loaded.segments]
        part._producers = loaded.producer_state
        part._log_start = max(log_start_offset, part._segments[0].base_offset)
        if part._log_start > part.next_offset:
            part._log_start = part._segments[0].base_offset
        part._recovery_point = part._durable = part.next_offset
        part._group_commit = group_commit
        part._last_flush_ms = now
        part._epochs = LeaderEpochCache.load(directory / LEADER_EPOCH_FILE)
        part._epochs.truncate_from_end(part.next_offset)
        part.active_segment.jitter_ms = part._jitter()
        part.recovered_segments = loaded.recovered_segments
        part.truncated_bytes = loaded.truncated_bytes
        return part

    # ----- state -----

    @property
    def active_segment(self) -> Segment:
        return self._segments[-1]

    @property
    def next_offset(self) -> int:
        """The log end offset: the offset the next appended record gets."""
        return self._segments[-1].next_offset

    @property
    def log_start_offset(self) -> int:
        return self._log_start

    @property
    def recovery_point(self) -> int:
        """Every offset below this is fsynced (segments and indexes)."""
        return self._recovery_point

    @property
    def size_in_bytes(self) -> int:
        with self.lock:
            return sum(s.size for s in self._segments)

    @property
    def producer_state(self) -> ProducerState:
        return self._producers

    def segments_snapshot(self) -> list[Segment]:
        """The current segments, oldest first; the last is the active one. A copy of the list."""
        with self.lock:
            return list(self._segments)

    def first_unstable_offset(self) -> int | None:
        """First offset of the oldest open transaction, or None."""
        with self.lock:
            return self._producers.first_unstable_offset()

    @property
    def last_stable_offset(self) -> int:
        """The LSO: the first offset of the oldest open transaction, else the log end offset."""
        with self.lock:
            first = self._producers.first_unstable_offset()
            return self.next_offset if first is None else first

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"partition log {self.dir} is closed")

    @property
    def offline(self) -> str | None:
        """Why the partition stopped taking writes (a write failed), or None while it takes them."""
        return self._offline

    def _check_writable(self) -> None:
        if self._offline is not None:
            raise PartitionOfflineError(
                f"partition {self.topic}-{self.partition} is offline for writes since {self._offline}; "
                "free space or fix the disk, then restart the broker"
            )

    def _take_offline(self, exc: OSError, doing: str) -> PartitionOfflineError:
        """Stop writes after `exc` failed `doing`; the log already holds only complete batches (a failed
        segment write is cut back), which is what reads serve."""
        self._offline = f"{doing} failed: {exc.strerror or exc}"
        logger.error(
            "partition %s-%s goes offline for writes: %s failed at log end offset %d (%s); reads continue, "
            "appends answer KAFKA_STORAGE_ERROR until the broker restarts",
            self.topic,
            self.partition,
            doing,
            self.next_offset,
            exc,
        )
        return PartitionOfflineError(f"partition {self.topic}-{self.partition}: {self._offline}")

    def _jitter(self) -> int:
        jitter = self.config.segment_jitter_ms
        return self._random.randrange(jitter) if jitter > 0 else 0

    # ----- append -----

    def append(
        self,
        records: bytes | bytearray | memoryview,
        *,
        leader_epoch: int = 0,
        produce_version: int | None = None,
    ) -> AppendResult:
        """Append one payload (one or more RecordBatch v2) and return the offsets it got.

        `produce_version` is the Produce request version when a client sent `records`; Kafka's request rules
        and the topic's compression.type then apply too (see strom.log.validator for every rule and its
        order). Raises, with nothing appended: a `strom.protocol.errors.CorruptRecordError` subclass for
        bytes that are not valid batches or break a record rule; a `strom.log.errors.LogError` subclass for
        a log rule (sizes, timestamps) or a producer-state rule (an out-of-order sequence, an old epoch, a bad
        transaction state). A retried duplicate batch (same producer, epoch and sequences as one of the
        producer's last five) is not written again: its original offsets are returned with
        `duplicate=True`. `records` is not modified.
        """
        with self.lock:
            self._check_open()
            self._check_writable()
            now = self.clock()
            valid = validate_append(
                records,
                self.config,
                now,
                produce_version=produce_version,
                topic=self.topic,
                partition=self.partition,
            )
            staged = self._producers.begin()
            duplicate = self._stage_producers(staged, valid.batches, now)
            if duplicate is not None:
                return duplicate
            try:
                if self._should_roll(
                    valid.size, valid.max_timestamp, self.next_offset + valid.offset_count - 1, now
                ):
                    self._roll(now)
                return self._write(valid, staged, leader_epoch, now)
            except OSError as exc:
                raise self._take_offline(exc, "writing to the log") from exc

    def durable(self, offset: int) -> Future[None]:
        """A future that resolves once every record below `offset` is on disk: what acks=all waits for
        with log.flush.on.ack=true. Through the group commit thread when there is one (concurrent waiters
        share its fsyncs), else synced here; fails with PartitionOfflineError when the fsync fails."""
        if self._group_commit is not None and offset > self._durable:
            return self._group_commit.request(self, offset)
        future: Future[None] = Future()
        try:
            self.sync_to(offset)
        except LogStorageError as exc:
            future.set_exception(exc)
        else:
            future.set_result(None)
        return future

    def sync_to(self, offset: int) -> None:
        """Make every record below `offset` durable: fdatasync the segments written since the last sync (and
        the directory when a segment was created), without holding the partition lock during the fsyncs, so
        appends go on meanwhile. Only the `.log` bytes are synced: indexes are rebuilt by recovery for
        everything past the recovery point, which this does not move."""
        if offset <= self._durable:
            return
        with self.lock:
            if self._closed:
                return  # closing flushed everything
            end = self.next_offset
            segments = self._segments[self._segment_index(self._durable) :]
            new_segment, self._dir_unsynced = self._dir_unsynced, False
        try:
            if new_segment:
                fsync_dir(self.dir)
            for seg in segments:
                seg.sync_data()
        except OSError as exc:
            with self.lock:
                self._dir_unsynced = self._dir_unsynced or new_segment
                raise self._take_offline(exc, "fsync for an acknowledgement") from exc
        with self.lock:
            self._durable = max(self._durable, end)

    def _stage_producers(
        self, staged: ProducerAppend, batches: list[RecordBatch], now: int
    ) -> AppendResult | None:
        """Stage the producer-state effect of each batch (sequences, epochs, transaction markers) at the
        offsets it will get; a retried duplicate stops the append and returns the offsets it got before."""
        offset = self.next_offset
        for batch in batches:
            pid = batch.producer_id
            if pid >= 0:
                if batch.is_control:
                    control = read_control_record(next(iter(batch.records())))
                    if control.type in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
                        staged.check_marker(
                            pid,
                            batch.producer_epoch,
                            offset,
                            control.type == ControlRecordType.COMMIT,
                            control.coordinator_epoch,
                            max(batch.max_timestamp, now),
                        )
                else:
                    dup = staged.find_duplicate(
                        pid, batch.producer_epoch, batch.base_sequence, batch.last_offset_delta
                    )
                    if dup is not None:
                        return AppendResult(
                            dup.first_offset,
                            dup.last_offset,
                            dup.timestamp if self.config.log_append_time else NO_TIMESTAMP,
                            self._log_start,
                            duplicate=True,
                        )
                    staged.check_data_batch(
                        pid,
                        batch.producer_epoch,
                        batch.base_sequence,
                        batch.last_offset_delta,
                        offset,
                        batch.max_timestamp,
                        batch.is_transactional,
                    )
            offset += batch.last_offset_delta + 1
        return None

    def _write(
        self, valid: ValidatedAppend, staged: ProducerAppend, leader_epoch: int, now: int
    ) -> AppendResult:
        """Write a validated append at the log end offset, then commit its producer state, index its aborted
        transactions, record the leader epoch and flush if flush.messages or flush.ms say so."""
        base = self.next_offset
        buffers, infos = valid.assign_offsets(base, leader_epoch)
        end = base + valid.offset_count
        active = self.active_segment
        active.append(buffers, infos)
        staged.commit()
        for done in staged.completed:
            if done.aborted and done.first_offset >= 0:
                lso = self._producers.first_unstable_offset()
                active.txn_index.append(
                    AbortedTxn(
                        done.producer_id, done.first_offset, done.last_offset, end if lso is None else lso
                    )
                )
        self._epochs.assign(leader_epoch, base)
        self._unflushed_messages += end - base
        config = self.config
        if self._unflushed_messages >= config.flush_messages or now - self._last_flush_ms >= config.flush_ms:
            self._flush(now)
        return AppendResult(base, end - 1, valid.append_time, self._log_start)

    def _should_roll(self, size: int, max_timestamp: int, last_offset: int, now: int) -> bool:
        seg = self.active_segment
        if seg.size == 0:
            return False
        config = self.config
        if seg.size > config.segment_bytes - size or seg.indexes_full:
            return True
        if last_offset - seg.base_offset > INT32_MAX:
            return True
        if seg.rolling_timestamp != NO_TIMESTAMP:
            waited = max_timestamp - seg.rolling_timestamp
        else:
            waited = now - seg.created_ms
        return waited > config.max_segment_ms - seg.jitter_ms

    def roll(self) -> None:
        """Start a new active segment now (unless the active one is empty), e.g. to make its records
        eligible for retention and compaction."""
        with self.lock:
            self._check_open()
            if self.active_segment.size:
                self._roll(self.clock())

    def _roll(self, now: int) -> None:
        """Start a new segment at the log end offset. The old one gets its final time-index entry now; its
        fsync, the directory fsync and the producer snapshot happen on the roll-flush thread (as Kafka's
        asynchronous flush at roll), so an append never waits for a whole segment to reach the disk. The
        recovery point moves to the new base offset once that is done."""
        old = self.active_segment
        base = old.next_offset
        old.add_final_time_index_entry()
        new = Segment.create(self.dir, base, self.config, now)
        self._dir_unsynced = True
        new.jitter_ms = self._jitter()
        self._segments.append(new)
        self._bases.append(base)
        snapshot = self._producers.snapshot_bytes()
        self._roll_flushes = [f for f in self._roll_flushes if not f.done() or f.exception() is not None]
        self._roll_flushes.append(_ROLL_FLUSHER.submit(self._finish_roll, old, base, snapshot))

    def _finish_roll(self, old: Segment, base: int, snapshot: bytes) -> None:
        """Runs on the roll-flush thread; takes only the recovery-point lock (flush() waits for it while
        holding the partition lock)."""
        fsync_dir(self.dir)
        old.flush()
        write_atomically(snapshot_path(self.dir, base), snapshot)
        with self._recovery_lock:
            if self._recovery_point >= old.base_offset:
                self._recovery_point = max(self._recovery_point, base)

    def _wait_for_roll_flushes(self) -> None:
        pending, self._roll_flushes = self._roll_flushes, []
        for future in pending:
            future.result()

    # ----- reads -----

    def _segment_index(self, offset: int) -> int:
        return max(0, bisect.bisect_right(self._bases, offset) - 1)

    def read(
        self, offset: int, max_bytes: int, *, max_offset: int | None = None, min_one: bool = True
    ) -> LogSlice:
        """The bytes to answer a Fetch at `offset`: from the start of the batch holding `offset` (so the first
        records may precede it; clients skip them), at most `max_bytes` unless `min_one` and the first batch
        alone is larger (KIP-74), never reaching into batches at or after `max_offset` (high watermark or
        LSO).
        Raises OffsetOutOfRangeError outside [log start offset, log end offset]; at the log end the slice is
        empty.
        """
        with self.lock:
            self._check_open()
            end = self.next_offset
            if offset < self._log_start or offset > end:
                raise OffsetOutOfRangeError(
                    f"offset {offset} is outside [{self._log_start}, {end}] of {self.topic}-{self.partition}"
                )
            if offset == end or (max_offset is not None and offset >= max_offset):
                return LogSlice(None, 0, 0, offset)
            for seg in self._segments[self._segment_index(offset) :]:
                found = seg.slice(max(offset, seg.base_offset), max_bytes, max_offset, min_one)
                if found is not None:
                    return found
            return LogSlice(None, 0, 0, offset)

    def read_bytes(
        self, offset: int, max_bytes: int, *, max_offset: int | None = None, min_one: bool = True
    ) -> bytes:
        """`read(...)` copied into bytes."""
        return self.read(offset, max_bytes, max_offset=max_offset, min_one=min_one).read()

    def aborted_transactions(self, fetch_offset: int, upper_bound: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [fetch_offset, upper_bound), for a read_committed Fetch."""
        with self.lock:
            out: list[AbortedTxn] = []
            for seg in self._segments[self._segment_index(fetch_offset) :]:
                out.extend(seg.txn_index.collect(fetch_offset, upper_bound))
            return out

    def offsets_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """ListOffsets: (offset, timestamp) of the first record with timestamp >= `timestamp`, or None.

        Special values as in Kafka: -1 latest (log end offset), -2 earliest (log start offset), -3 the record
        with the largest timestamp. The timestamp returned with -1/-2 is -1.
        """
        with self.lock:
            self._check_open()
            if timestamp == LATEST_TIMESTAMP:
                return self.next_offset, NO_TIMESTAMP
            if timestamp == EARLIEST_TIMESTAMP:
                return self._log_start, NO_TIMESTAMP
            if timestamp == MAX_TIMESTAMP:
                return self._max_timestamp_record()
            for seg in self._segments:
                if seg.max_timestamp < timestamp or seg.next_offset <= self._log_start:
                    continue
                start = max(self._log_start, seg.search_start_for_timestamp(timestamp))
                found = seg.find(start)
                if found is None:
                    continue
                for _, batch in seg.batches(found[0]):
                    if batch.max_timestamp < timestamp:
                        continue
                    for record in batch.records():
                        if record.timestamp >= timestamp and record.offset >= self._log_start:
                            return record.offset, record.timestamp
            return None

    def _max_timestamp_record(self) -> tuple[int, int] | None:
        best: Segment | None = None
        for seg in self._segments:
            if seg.max_timestamp != NO_TIMESTAMP and (best is None or seg.max_timestamp > best.max_timestamp):
                best = seg
        if best is None:
            return None
        found = best.find(best.offset_of_max_timestamp)
        if found is None:
            return None
        for _, batch in best.batches(found[0]):
            top: tuple[int, int] | None = None
            for record in batch.records():
                if top is None or record.timestamp > top[1]:
                    top = (record.offset, record.timestamp)
            return top
        return None

    def producer_last_offsets(self) -> dict[int, int]:
        """Producer id -> offset of its last retained batch (the cleaner keeps those batches)."""
        with self.lock:
            return {pid: e.last_offset for pid, e in self._producers.producers.items() if e.last_offset >= 0}

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: (largest known epoch <= `epoch`, the offset where it ended)."""
        with self.lock:
            return self._epochs.end_offset_for(epoch, self.next_offset)

    # ----- deletion -----

    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: make `offset` the log start offset (-1 means the log end offset), delete segments
        wholly below it, and return the new log start offset (the low watermark)."""
        with self.lock:
            self._check_open()
            end = self.next_offset
            if offset == -1:
                offset = end
            if offset < 0 or offset > end:
                raise OffsetOutOfRangeError(
                    f"cannot delete records before offset {offset}: the log of {self.topic}-{self.partition} "
                    f"ends at {end}"
                )
            if offset > self._log_start:
                self._set_log_start(offset)
                self._delete_old_segments(self.clock(), log_start_only=True)
            return self._log_start

    def _set_log_start(self, offset: int) -> None:
        self._log_start = offset
        if self._on_log_start_change is not None:
            self._on_log_start_change()

    def apply_retention(self, now: int) -> int:
        """Delete the oldest segments that retention.ms, retention.bytes or the log start offset rule out
        (see retention.py); returns how many were deleted."""
        with self.lock:
            self._check_open()
            return self._delete_old_segments(now, log_start_only=False)

    def _delete_old_segments(self, now: int, log_start_only: bool) -> int:
        stats = [
            SegmentStats(
                s.base_offset,
                s.size,
                s.max_timestamp if s.max_timestamp != NO_TIMESTAMP else s.created_ms,
            )
            for s in self._segments
        ]
        count, _ = deletable_count(
            stats, self.config, now, self._log_start, self.next_offset, log_start_only=log_start_only
        )
        if count == 0:
            return 0
        if count == len(self._segments):
            self._roll(now)
        doomed = self._segments[:count]
        self._segments = self._segments[count:]
        self._bases = self._bases[count:]
        for seg in doomed:
            self._schedule_delete(seg, now)
        fsync_dir(self.dir)
        first = self._segments[0].base_offset
        if first > self._log_start:
            self._set_log_start(first)
        for offset in snapshot_offsets(self.dir)[:-1]:
            if offset < first:
                snapshot_path(self.dir, offset).unlink(missing_ok=True)
        return count

    def _schedule_delete(self, seg: Segment, now: int) -> None:
        """Rename a segment `.deleted`; its files go `file.delete.delay.ms` later (`maintain`)."""
        seg.rename(DELETED_SUFFIX)
        self._pending_deletes.append((now + self.config.file_delete_delay_ms, seg))
        if self.config.file_delete_delay_ms == 0:
            self._delete_due(now)

    def _delete_due(self, now: int) -> None:
        keep = []
        for due, seg in self._pending_deletes:
            if due <= now:
                seg.delete_files()
            else:
                keep.append((due, seg))
        self._pending_deletes = keep

    # ----- compaction support -----

    def replace_segments(self, new: list[Segment], old: list[Segment]) -> bool:
        """Swap cleaned segments in for `old` (Kafka's `replaceSegments`), crash-safely.

        `new` must have been created with suffix `.cleaned` and cover exactly the offsets of `old`, which must
        be consecutive inactive segments of this log. Order: flush new; rename new `.swap`; rename old
        `.deleted` (deleted after file.delete.delay.ms); rename new live. A crash leaves either the old set,
        or         `.swap` files that recovery completes.

        Returns False, changing nothing, when `old` is no longer a run of inactive segments of this log
        (retention or DeleteRecords removed some meanwhile, or the log was closed): the caller discards `new`.
        """
        with self.lock:
            if self._closed or not old or old[-1] is self.active_segment:
                return False
            try:
                first = self._segments.index(old[0])
            except ValueError:
                return False
            if self._segments[first : first + len(old)] != old:
                return False
            for seg in new:
                if seg.suffix != CLEANED_SUFFIX:
                    raise ValueError(f"replace_segments: {seg} was not created with suffix .cleaned")
                seg.flush()
                seg.rename(SWAP_SUFFIX)
            fsync_dir(self.dir)
            now = self.clock()
            kept = [s for s in self._segments if s not in old]
            for seg in old:
                self._schedule_delete(seg, now)
            for seg in new:
                seg.rename("")
            fsync_dir(self.dir)
            merged = kept[:first] + sorted(new, key=lambda s: s.base_offset) + kept[first:]
            self._segments = merged
            self._bases = [s.base_offset for s in merged]
            return True

    # ----- configuration, flushing, maintenance -----

    def update_config(self, config: LogConfig) -> None:
        """Apply new topic configs from now on (existing segments keep their index size)."""
        with self.lock:
            self.config = config

    def flush(self) -> None:
        """fsync everything appended so far; the recovery point becomes the log end offset."""
        with self.lock:
            self._check_open()
            self._flush(self.clock())

    def _flush(self, now: int) -> None:
        self._wait_for_roll_flushes()
        for seg in self._segments[self._segment_index(self._recovery_point) :]:
            seg.flush()
        with self._recovery_lock:
            self._recovery_point = self.next_offset
        self._durable = max(self._durable, self.next_offset)
        self._unflushed_messages = 0
        self._last_flush_ms = now

    def maintain(self, now: int, *, retention: bool = True) -> None:
        """Periodic work: retention (unless `retention` is False: the LogManager checks it on its own,
        slower schedule), flush.ms, deleting `.deleted` files whose delay passed, expiring idle producers.
        Safe to call from a background thread."""
        with self.lock:
            if self._closed:
                return
            if retention:
                self.apply_retention(now)
            if self._unflushed_messages and now - self._last_flush_ms >= self.config.flush_ms:
                self._flush(now)
            self._delete_due(now)
            self._producers.remove_expired(now, self.config.producer_id_expiration_ms)

    def close(self) -> None:
        """Flush, write a producer-state snapshot at the log end offset, and release every file.

        On a full or failing disk the files are released all the same and PartitionOfflineError is raised
        afterwards, so the caller knows this close was not clean (the next open recovers what was not
        flushed, as after a crash)."""
        with self.lock:
            if self._closed:
                return
            now = self.clock()
            failure: OSError | None = None
            try:
                self._flush(now)
                end = self.next_offset
                self._producers.write_snapshot(snapshot_path(self.dir, end))
                first = self._segments[0].base_offset
                for offset in snapshot_offsets(self.dir):
                    # Beyond the end: stale; below the first segment: written by a roll flush after
                    # retention had already removed that segment (the snapshot at the end supersedes both).
                    if offset > end or offset < first:
                        snapshot_path(self.dir, offset).unlink(missing_ok=True)
            except OSError as exc:
                failure = exc
            for seg in self._segments:
                try:
                    seg.close()
                except OSError as exc:
                    failure = failure or exc
            for _, seg in self._pending_deletes:
                seg.delete_files()
            self._pending_deletes = []
            self._closed = True
            if failure is not None:
                raise self._take_offline(failure, "flushing at close") from failure
            if self._offline is not None:
                raise PartitionOfflineError(f"partition {self.topic}-{self.partition}: {self._offline}")

    def delete(self) -> None:
        """Close without flushing and remove every file of the partition (the directory stays)."""
        with self.lock:
            for future in self._roll_flushes:
                future.exception()  # wait; a failure no longer matters, the files are going
            for seg in self._segments:
                seg.delete_files()
            for _, seg in self._pending_deletes:
                seg.delete_files()
            self._segments = []
            self._pending_deletes = []
            self._closed = True

    def __repr__(self) -> str:
        return f"Partition({self.dir.name}, offsets={self._log_start}..{self.next_offset})"
