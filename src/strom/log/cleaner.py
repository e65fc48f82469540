"""The log cleaner: compaction for `cleanup.policy=compact` (and `compact,delete`), as Kafka's LogCleaner.

A compacted log is a *clean* head (already compacted) followed by a *dirty* tail; the first dirty offset of
each partition is kept in the data directory's `cleaner-offset-checkpoint`. A pass:

1. bounds the cleanable range: from the first dirty offset up to the first of the active segment, the LSO
   (never clean into an open transaction) and the first segment younger than `min.compaction.lag.ms`,
   rounded down to a segment boundary;
2. builds a key -> latest-offset map over that range (committed and non-transactional records only);
3. recopies every segment from the log start to the end of the range, in groups whose sizes fit one
   segment (so small segments merge), keeping a record iff it has a key, no later record of that key is
   mapped, and it is not a tombstone whose delete horizon has passed; records of aborted transactions are
   dropped; offsets and order are preserved;
4. swaps each group in atomically through `Partition.replace_segments` (`.cleaned` -> `.swap` -> live;
   recovery finishes or discards an interrupted swap), then checkpoints the new first dirty offset.

Tombstones and transaction markers follow KIP-534: the first pass that keeps one stamps its batch with
`deleteHorizonMs = now + delete.retention.ms` (attribute bit 6, in baseTimestamp); passes after the horizon
drop it. A marker becomes eligible only once a pass reads no data batch of its transaction (Kafka's rule).
A batch whose records all go is still written, as a bare header, when it is the last batch of a producer
(its sequence and epoch must survive for idempotence) or the last batch of a group (so a cleaned segment
covers exactly the offsets of the segments it replaces). Batches whose records all survive and need no
horizon are copied byte for byte, never re-encoded.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from strom.log.checkpoint import (
    CLEANER_OFFSET_CHECKPOINT,
    CorruptCheckpointError,
    TopicPartition,
    read_offsets,
    write_offsets,
)
from strom.log.config import LogConfig
from strom.log.errors import LogClosedError
from strom.log.segment import CLEANED_SUFFIX, NO_TIMESTAMP, Segment
from strom.log.txn_index import AbortedTxn
from strom.protocol.errors import CorruptRecordError
from strom.protocol.records import RecordBatch, RecordSpan, read_control_record, rebuild_batch

log = logging.getLogger(__name__)

_INT32_MAX = 2**31 - 1
_OUTPUT_CHUNK = 1 << 20  # cleaned bytes handed to the segment per write
_OFFSET_ENTRY_SIZE = 8


class CompactedLog(Protocol):
    """What the cleaner needs from a partition (strom.log.partition.Partition provides it)."""

    @property
    def dir(self) -> Path: ...

    @property
    def config(self) -> LogConfig: ...

    @property
    def log_start_offset(self) -> int: ...

    def segments_snapshot(self) -> list[Segment]: ...

    def first_unstable_offset(self) -> int | None: ...

    def producer_last_offsets(self) -> Mapping[int, int]: ...

    def replace_segments(self, new: list[Segment], old: list[Segment]) -> bool: ...


@dataclasses.dataclass(frozen=True)
class CleanResult:
    """What one pass over one partition did. `end_offset` is the new first dirty offset; `map_entries` is
    how many keys its offset map held (against the cleaner's `max_map_entries`)."""

    first_dirty_offset: int
    end_offset: int
    bytes_read: int
    bytes_written: int
    records_read: int
    records_kept: int
    segments_before: int
    segments_after: int
    seconds: float
    map_entries: int


@dataclasses.dataclass(frozen=True)
class _Plan:
    first_dirty: int
    end: int  # first offset not cleaned: a segment boundary
    dirty: list[Segment]
    recopy: list[Segment]


class Cleaner:
    """Compacts the compacted partitions of one data directory.

    Invariants: the active segment, data at or beyond the LSO and segments younger than
    `min.compaction.lag.ms` are never rewritten; offsets and the order of surviving records never change;
    the latest record of every key survives (a tombstone until its delete horizon passes). The checkpoint
    only moves after the segments it covers were swapped in.
    Failures survived: a crash at any point leaves the old or the new segments of a group (the swap is
    Partition.replace_segments's, completed or discarded by recovery); a partition whose segments turn out
    corrupt is marked uncleanable and skipped, without affecting the others.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        max_map_entries: int = 1_000_000,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.checkpoint_path = self.data_dir / CLEANER_OFFSET_CHECKPOINT
        self.max_map_entries = max_map_entries
        self._clock = clock or (lambda: time.time_ns() // 1_000_000)
        try:
            self._checkpoints: dict[TopicPartition, int] = read_offsets(self.checkpoint_path)
        except CorruptCheckpointError as exc:
            log.warning(
                "ignoring %s (every compacted partition is dirty again): %s", self.checkpoint_path, exc
            )
            self._checkpoints = {}
        # Earliest delete horizon written by this process per partition: when it passes, a pass is due even
        # if the dirty ratio is low, so tombstones really disappear (lost on restart; the ratio covers it).
        self._horizons: dict[TopicPartition, int] = {}
        self.uncleanable: set[TopicPartition] = set()
        # The highest dirty ratio seen by the last `maintain` (Kafka's max-dirty-percent, for metrics).
        self.max_dirty_ratio = 0.0

    # ----- choosing what to clean -----

    def first_dirty_offset(self, tp: TopicPartition, partition: CompactedLog) -> int:
        """The checkpointed first dirty offset, reset to the log start when it lies outside the log."""
        segments = partition.segments_snapshot()
        start = partition.log_start_offset
        checkpoint = self._checkpoints.get(tp, start)
        if not segments or checkpoint < start or checkpoint > segments[-1].base_offset:
            return start
        return checkpoint

    def dirty_ratio(self, tp: TopicPartition, partition: CompactedLog, now_ms: int) -> float:
        """Cleanable dirty bytes / (clean + cleanable dirty bytes), compared to min.cleanable.dirty.ratio."""
        plan = self._plan(tp, partition, now_ms)
        dirty = sum(s.size for s in plan.dirty)
        total = sum(s.size for s in plan.recopy)
        return dirty / total if total else 0.0

    def maintain(
        self, partitions: Mapping[TopicPartition, CompactedLog], now_ms: int | None = None
    ) -> list[CleanResult]:
        """One cleaner cycle: clean every compacted partition that must be cleaned now (a record waited
        longer than `max.compaction.lag.ms`, or a delete horizon passed), then the filthiest partition whose
        dirty ratio reaches `min.cleanable.dirty.ratio`."""
        now = self._clock() if now_ms is None else now_ms
        forced: list[TopicPartition] = []
        filthiest: tuple[float, TopicPartition] | None = None
        max_dirty_ratio = 0.0
        for tp, partition in partitions.items():
            if "compact" not in partition.config.cleanup_policy or tp in self.uncleanable:
                continue
            plan = self._plan(tp, partition, now)
            dirty = sum(s.size for s in plan.dirty)
            total = sum(s.size for s in plan.recopy)
            ratio = dirty / total if dirty else 0.0
            max_dirty_ratio = max(max_dirty_ratio, ratio)
            if self._must_clean(tp, partition, plan, now):
                forced.append(tp)
                continue
            if not dirty:
                continue
            if ratio >= partition.config.min_cleanable_dirty_ratio and (
                filthiest is None or ratio > filthiest[0]
            ):
                filthiest = (ratio, tp)
        self.max_dirty_ratio = max_dirty_ratio
        if filthiest is not None:
            forced.append(filthiest[1])
        results = []
        for tp in forced:
            try:
                result = self.clean(tp, partitions[tp], now)
            except CorruptRecordError as exc:
                log.error("marking %s-%d uncleanable: %s", tp[0], tp[1], exc)
                self.uncleanable.add(tp)
                continue
            except LogClosedError:  # deleted or closed while being cleaned: nothing left to do
                continue
            except OSError as exc:  # e.g. disk full: retry next cycle
                log.warning("cleaning %s-%d failed, will retry: %s", tp[0], tp[1], exc)
                continue
            if result is not None:
                results.append(result)
        return results

    def _must_clean(self, tp: TopicPartition, partition: CompactedLog, plan: _Plan, now: int) -> bool:
        horizon = self._horizons.get(tp)
        if horizon is not None and now >= horizon and plan.recopy:
            return True
        if not plan.dirty:
            return False
        first = plan.dirty[0]
        first_timestamp = (
            first.rolling_timestamp if first.rolling_timestamp != NO_TIMESTAMP else first.max_timestamp
        )
        return (
            first_timestamp != NO_TIMESTAMP and now - first_timestamp > partition.config.max_compaction_lag_ms
        )

    def _plan(self, tp: TopicPartition, partition: CompactedLog, now: int) -> _Plan:
        segments = partition.segments_snapshot()
        if not segments:  # a closed or deleted partition
            return _Plan(partition.log_start_offset, partition.log_start_offset, [], [])
        inactive = segments[:-1]
        first_dirty = self.first_dirty_offset(tp, partition)
        bound = segments[-1].base_offset
        lso = partition.first_unstable_offset()
        if lso is not None:
            bound = min(bound, lso)
        lag = partition.config.min_compaction_lag_ms
        if lag > 0:
            for segment in inactive:
                if segment.next_offset > first_dirty and now - segment.max_timestamp < lag:
                    bound = min(bound, segment.base_offset)
                    break
        recopy = [s for s in inactive if s.next_offset <= bound]
        end = max(first_dirty, recopy[-1].next_offset) if recopy else first_dirty
        dirty = [s for s in recopy if s.next_offset > first_dirty]
        return _Plan(first_dirty, end, dirty, recopy)

    # ----- cleaning one partition -----

    def clean(
        self, tp: TopicPartition, partition: CompactedLog, now_ms: int | None = None
    ) -> CleanResult | None:
        """Run one pass over `partition` regardless of its dirty ratio; None when nothing is cleanable."""
        now = self._clock() if now_ms is None else now_ms
        started = time.perf_counter()
        plan = self._plan(tp, partition, now)
        if not plan.recopy:
            return None
        aborted = _aborted_index(partition)
        offset_map, end = self._build_offset_map(plan.dirty, plan.end, aborted)
        recopy = [s for s in plan.recopy if s.next_offset <= end]
        job = _Recopy(partition, offset_map, now, aborted, partition.producer_last_offsets())
        segments_after = 0
        for group in _group_by_size(recopy, partition.config):
            if not any(s.size for s in group):
                continue
            if not job.clean_group(group):
                # Retention, DeleteRecords or a close changed the segments: abort the pass as Kafka does.
                # Groups already swapped are complete; the checkpoint stays, so the range is redone.
                log.info("%s-%d: segments changed under the cleaner; pass aborted", tp[0], tp[1])
                return None
            segments_after += 1
        self._checkpoints[tp] = end
        write_offsets(self.checkpoint_path, self._checkpoints)
        if job.earliest_horizon is not None:
            self._horizons[tp] = job.earliest_horizon
        else:
            self._horizons.pop(tp, None)
        result = CleanResult(
            first_dirty_offset=plan.first_dirty,
            end_offset=end,
            bytes_read=job.bytes_read,
            bytes_written=job.bytes_written,
            records_read=job.records_read,
            records_kept=job.records_kept,
            segments_before=len(recopy),
            segments_after=segments_after,
            seconds=time.perf_counter() - started,
            map_entries=len(offset_map),
        )
        log.info(
            "cleaned %s-%d offsets %d..%d: %d -> %d bytes, %d -> %d records, %d -> %d segments in %.3f s",
            tp[0],
            tp[1],
            plan.first_dirty,
            end,
            result.bytes_read,
            result.bytes_written,
            result.records_read,
            result.records_kept,
            result.segments_before,
            result.segments_after,
            result.seconds,
        )
        return result

    def forget(self, tp: TopicPartition) -> None:
        """Drop the checkpoint of a deleted partition."""
        if self._checkpoints.pop(tp, None) is not None:
            write_offsets(self.checkpoint_path, self._checkpoints)
        self._horizons.pop(tp, None)
        self.uncleanable.discard(tp)

    def _build_offset_map(
        self, dirty: Sequence[Segment], end: int, aborted: Mapping[int, list[tuple[int, int]]]
    ) -> tuple[dict[bytes, int], int]:
        """key -> offset of its latest record in the dirty segments (a tombstone counts as a record).

        Stops after the segment that fills the map to `max_map_entries`; the returned end offset then
        bounds this pass, and the rest stays dirty for the next one.
        """
        offset_map: dict[bytes, int] = {}
        for segment in dirty:
            for _, batch in segment.batches():
                batch.validate()
                if batch.is_control or (batch.is_transactional and _is_aborted(batch, aborted)):
                    continue
                base = batch.base_offset
                for span in batch.record_spans()[1]:
                    if span.key is not None:
                        offset_map[span.key] = base + span.offset_delta
            if len(offset_map) >= self.max_map_entries:
                return offset_map, segment.next_offset
        return offset_map, end


def _aborted_index(partition: CompactedLog) -> dict[int, list[tuple[int, int]]]:
    """producer id -> [(first offset, marker offset)] of every aborted transaction in the log."""
    aborted: dict[int, list[tuple[int, int]]] = {}
    for segment in partition.segments_snapshot():
        txns: Iterable[AbortedTxn] = list(segment.txn_index.entries)
        for txn in txns:
            aborted.setdefault(txn.producer_id, []).append((txn.first_offset, txn.last_offset))
    return aborted


def _is_aborted(batch: RecordBatch, aborted: Mapping[int, list[tuple[int, int]]]) -> bool:
    ranges = aborted.get(batch.producer_id)
    if not ranges:
        return False
    offset = batch.base_offset
    return any(first <= offset <= last for first, last in ranges)


def _group_by_size(segments: Sequence[Segment], config: LogConfig) -> list[list[Segment]]:
    """Consecutive segments whose combined log and offset-index sizes fit one segment, and whose offsets
    fit an int32 relative to the first (Kafka's `groupSegmentsBySize`)."""
    groups: list[list[Segment]] = []
    current: list[Segment] = []
    log_bytes = index_bytes = 0
    for segment in segments:
        seg_index = len(segment.offset_index) * _OFFSET_ENTRY_SIZE
        if current and (
            log_bytes + segment.size > config.segment_bytes
            or index_bytes + seg_index > config.segment_index_bytes
            or segment.next_offset - 1 - current[0].base_offset > _INT32_MAX
        ):
            groups.append(current)
            current, log_bytes, index_bytes = [], 0, 0
        current.append(segment)
        log_bytes += segment.size
        index_bytes += seg_index
    if current:
        groups.append(current)
    return groups


class _Recopy:
    """The recopy phase of one pass: decides the fate of every record and writes cleaned segments."""

    def __init__(
        self,
        partition: CompactedLog,
        offset_map: Mapping[bytes, int],
        now: int,
        aborted: Mapping[int, list[tuple[int, int]]],
        producer_last_offsets: Mapping[int, int],
    ) -> None:
        self.partition = partition
        self.offset_map = offset_map
        self.now = now
        self.horizon = now + partition.config.delete_retention_ms
        self.aborted = aborted
        self.producer_last = producer_last_offsets
        # producer id -> this pass read a data batch of its current transaction (kept or not)
        self.txn_seen: dict[int, bool] = {}
        self.earliest_horizon: int | None = None
        self.bytes_read = self.bytes_written = self.records_read = self.records_kept = 0

    def clean_group(self, group: list[Segment]) -> bool:
        """Rewrite `group` into one `.cleaned` segment and swap it in; False if the partition refused."""
        partition = self.partition
        cleaned = Segment.create(
            partition.dir, group[0].base_offset, partition.config, self.now, CLEANED_SUFFIX
        )
        try:
            group_last_offset = group[-1].next_offset - 1
            pending: list[bytes | memoryview] = []
            pending_bytes = 0
            for segment in group:
                self.bytes_read += segment.size
                for _, batch in segment.batches():
                    # Rewritten batches get a fresh CRC: checking the old one first keeps bit rot from
                    # being laundered into a valid-looking batch.
                    batch.validate()
                    out = self._clean_batch(batch, batch.last_offset == group_last_offset)
                    if out is None:
                        continue
                    pending.append(out)
                    pending_bytes += len(out)
                    if pending_bytes >= _OUTPUT_CHUNK:
                        cleaned.append_batches(b"".join(pending))
                        self.bytes_written += pending_bytes
                        pending, pending_bytes = [], 0
                for txn in segment.txn_index.entries:
                    cleaned.txn_index.append(txn)
            if pending:
                cleaned.append_batches(b"".join(pending))
                self.bytes_written += pending_bytes
            cleaned.seal()
            if partition.replace_segments([cleaned], group):
                return True
        except BaseException:
            cleaned.delete_files()
            raise
        cleaned.delete_files()
        return False

    def _clean_batch(self, batch: RecordBatch, last_in_group: bool) -> bytes | memoryview | None:
        """The bytes to write for `batch` (itself, a rebuilt copy, or an empty header), or None to drop it."""
        pid = batch.producer_id
        protected = last_in_group or (pid >= 0 and self.producer_last.get(pid) == batch.last_offset)
        existing_horizon = batch.delete_horizon_ms
        if batch.is_control:
            return self._clean_marker(batch, protected, existing_horizon)
        count = batch.record_count
        self.records_read += count
        if batch.is_transactional:
            self.txn_seen[pid] = True
        if batch.is_transactional and _is_aborted(batch, self.aborted):
            kept: list[RecordSpan] = []
            data = b""
            all_kept = count == 0
        else:
            data, spans = batch.record_spans()
            kept = self._surviving(batch.base_offset, spans, existing_horizon)
            all_kept = len(kept) == len(spans)
        self.records_kept += len(kept)
        if not kept and not protected:
            return None
        needs_horizon = existing_horizon is None and any(s.is_tombstone for s in kept)
        if needs_horizon:
            self._note_horizon(self.horizon)
        elif existing_horizon is not None and any(s.is_tombstone for s in kept):
            self._note_horizon(existing_horizon)
        if all_kept and not needs_horizon:
            return batch.buffer
        return rebuild_batch(batch, data, kept, delete_horizon_ms=self.horizon if needs_horizon else None)

    def _surviving(self, base_offset: int, spans: list[RecordSpan], horizon: int | None) -> list[RecordSpan]:
        latest_of = self.offset_map.get
        expired = horizon is not None and self.now >= horizon
        kept = []
        for span in spans:
            key = span.key
            if key is None:  # keyless records are invalid in a compacted log; Kafka's cleaner drops them too
                continue
            latest = latest_of(key)
            if latest is not None and base_offset + span.offset_delta < latest:
                continue
            if span.is_tombstone and expired:
                continue
            kept.append(span)
        return kept

    def _clean_marker(
        self, batch: RecordBatch, protected: bool, horizon: int | None
    ) -> bytes | memoryview | None:
        """Kafka's rule for transaction markers: a marker stays as it is while this pass read a data batch
        of its transaction (for an ABORT, the aborted batches it is about to remove); after that it is
        discardable: stamped with a delete horizon on the first pass, dropped once the horizon passed."""
        self.records_read += batch.record_count
        seen = self.txn_seen.pop(batch.producer_id, False)
        for record in batch.records():
            read_control_record(record)  # a malformed marker is corruption, not something to drop silently
        if seen:
            self.records_kept += batch.record_count
            return batch.buffer
        if horizon is None:
            self.records_kept += batch.record_count
            self._note_horizon(self.horizon)
            data, spans = batch.record_spans()
            return rebuild_batch(batch, data, spans, delete_horizon_ms=self.horizon)
        if self.now < horizon:
            self.records_kept += batch.record_count
            self._note_horizon(horizon)
            return batch.buffer
        if protected:  # expired, but the last batch of its group: kept so the group keeps its offsets
            self.records_kept += batch.record_count
            return batch.buffer
        return None

    def _note_horizon(self, horizon: int) -> None:
        if self.earliest_horizon is None or horizon < self.earliest_horizon:
            self.earliest_horizon = horizon
