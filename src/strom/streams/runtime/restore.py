"""Changelog restore: replay each store's changelog partition from its checkpoint to the end offset, in
batches.

Speed is the point (users of Quix Streams and Faust complain most about slow or stuck restore): records are
consumed in large batches by a group-less consumer and handed to the store as raw bytes in one batch write per
partition, with no per-record deserialisation. Robustness: the end is the high watermark read when restore
starts, and a partition counts as restored when the consumer reports end-of-partition or passes that offset,
so compacted changelogs (offset gaps), empty partitions and trailing control records cannot leave a restore
waiting forever. A checkpoint outside the changelog's current offsets (trimmed by retention, or a changelog
recreated) makes the store be wiped and restored from the beginning, as Kafka Streams does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from strom.streams.errors import StreamsError

log = logging.getLogger(__name__)

_WATERMARK_TIMEOUT_S = 30.0
_PROGRESS_LOG_INTERVAL_S = 5.0

RestoreBatch = list[tuple[bytes, bytes | None, int]]


class StateRestoreListener:
    """Kafka Streams' StateRestoreListener: override the callbacks you need (they run on the stream
    thread)."""

    def on_restore_start(
        self, topic: str, partition: int, store_name: str, start_offset: int, end_offset: int
    ) -> None:
        """Restore of `store_name` begins at `start_offset`; `end_offset` is the changelog's end
        (exclusive)."""

    def on_batch_restored(
        self, topic: str, partition: int, store_name: str, batch_end_offset: int, num_restored: int
    ) -> None:
        """A batch of `num_restored` records up to `batch_end_offset` was written to the store."""

    def on_restore_end(self, topic: str, partition: int, store_name: str, total_restored: int) -> None:
        """The store caught up with its changelog after restoring `total_restored` records."""


class ChangelogRestoreError(StreamsError):
    """A changelog partition could not be read during restore (unknown topic, authorisation, broker gone)."""


@dataclass
class _Restoring:
    """One changelog partition being replayed into one store."""

    owner: object
    store_name: str
    topic: str
    partition: int
    start_offset: int
    end_offset: int
    apply: Callable[[RestoreBatch], None]
    restored: int = 0
    last_offset: int = -1


class ChangelogReader:
    """Restores stores from changelog partitions with one assign-only consumer shared by all tasks of a
    thread.

    Partitions are restored one after the other: restore is bound by the Python work per record, not by the
    network, so parallel fetching gains nothing, while a single assigned partition makes every consumed batch
    belong to one store and lets the per-record work be a flat list comprehension.

    Invariants: exactly the head of `_queue` is assigned to the consumer; an owner (a task) is restoring while
    any of its partitions is queued. Work per `step` is bounded by `batch_records`, so the caller keeps
    polling its group consumer between steps and never exceeds max.poll.interval.ms, however large the
    changelog.
    """

    def __init__(
        self, consumer_config: dict[str, object], listener: StateRestoreListener, batch_records: int
    ) -> None:
        self._consumer = Consumer(consumer_config)
        self._listener = listener
        self._batch_records = batch_records
        self._queue: list[_Restoring] = []
        self._assigned: _Restoring | None = None
        self._last_progress_log = time.monotonic()

    def offsets(self, topic: str, partition: int) -> tuple[int, int]:
        """(log-start, end) offsets of a changelog partition, read from the broker now."""
        try:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=_WATERMARK_TIMEOUT_S, cached=False
            )
        except KafkaException as exc:
            raise ChangelogRestoreError(
                f"cannot read offsets of changelog {topic!r} partition {partition}: {exc}"
            ) from exc
        return int(low), int(high)

    def add(
        self,
        owner: object,
        store_name: str,
        topic: str,
        partition: int,
        checkpoint: int | None,
        apply: Callable[[RestoreBatch], None],
        wipe: Callable[[], None],
    ) -> None:
        """Queue `store_name` for restore from `topic`/`partition`, after `checkpoint` when it is usable."""
        low, high = self.offsets(topic, partition)
        if checkpoint is None:
            start = low
        elif low <= checkpoint + 1 <= high:
            start = checkpoint + 1
        else:
            log.warning(
                "checkpoint offset %d of store %r is outside changelog %s-%d offsets [%d, %d]: wiping the "
                "store and restoring it from the beginning",
                checkpoint,
                store_name,
                topic,
                partition,
                low,
                high,
            )
            wipe()
            start = low
        self._listener.on_restore_start(topic, partition, store_name, start, high)
        if start >= high:
            self._listener.on_restore_end(topic, partition, store_name, 0)
            return
        log.info(
            "restoring store %r from %s-%d: offsets %d..%d (%d records)",
            store_name,
            topic,
            partition,
            start,
            high,
            high - start,
        )
        self._queue.append(_Restoring(owner, store_name, topic, partition, start, high, apply, 0, start - 1))
        self._assign_head()

    def _assign_head(self) -> None:
        if self._assigned is None and self._queue:
            head = self._assigned = self._queue[0]
            self._consumer.assign([TopicPartition(head.topic, head.partition, head.last_offset + 1)])

    def _unassign_head(self) -> None:
        if self._assigned is not None:
            self._consumer.unassign()
            self._assigned = None

    def remove_owner(self, owner: object) -> None:
        """Stop restoring every partition of `owner` (its task was revoked mid-restore)."""
        if self._assigned is not None and self._assigned.owner is owner:
            self._unassign_head()
        self._queue = [entry for entry in self._queue if entry.owner is not owner]
        self._assign_head()

    def is_restoring(self, owner: object) -> bool:
        return any(entry.owner is owner for entry in self._queue)

    @property
    def idle(self) -> bool:
        return not self._queue

    def step(self, timeout_s: float) -> None:
        """Consume one batch of the partition being restored and write it to its store in one call."""
        entry = self._assigned
        if entry is None:
            return
        # Asking for no more than what is left makes consume() return as soon as the tail has arrived instead
        # of waiting out the timeout for a batch that can never fill (offset gaps of a compacted changelog
        # still wait once, then end-of-partition ends the restore).
        remaining = entry.end_offset - entry.last_offset - 1
        messages = self._consumer.consume(
            num_messages=max(1, min(self._batch_records, remaining)), timeout=timeout_s
        )
        if not messages:
            return
        batch = [(m.key(), m.value(), m.timestamp()[1]) for m in messages if m.error() is None]
        ended = False
        if len(batch) != len(messages):
            for m in messages:
                err = m.error()
                if err is None:
                    continue
                if err.code() != KafkaError._PARTITION_EOF:
                    raise ChangelogRestoreError(
                        f"error reading changelog {entry.topic!r} partition {entry.partition}: {err.str()}"
                    )
                ended = True
        if batch:
            last = next(m for m in reversed(messages) if m.error() is None)
            entry.apply(batch)
            entry.restored += len(batch)
            entry.last_offset = last.offset()
            self._listener.on_batch_restored(
                entry.topic, entry.partition, entry.store_name, entry.last_offset, len(batch)
            )
        if ended or entry.last_offset + 1 >= entry.end_offset:
            self._finish(entry)
        self._log_progress()

    def _finish(self, entry: _Restoring) -> None:
        self._unassign_head()
        self._queue.remove(entry)
        log.info(
            "restored store %r from %s-%d: %d records",
            entry.store_name,
            entry.topic,
            entry.partition,
            entry.restored,
        )
        self._listener.on_restore_end(entry.topic, entry.partition, entry.store_name, entry.restored)
        self._assign_head()

    def _log_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress_log < _PROGRESS_LOG_INTERVAL_S:
            return
        self._last_progress_log = now
        entry = self._assigned
        if entry is not None:
            log.info(
                "restoring store %r from %s-%d: %d records restored, at offset %d of %d; %d partitions "
                "queued",
                entry.store_name,
                entry.topic,
                entry.partition,
                entry.restored,
                entry.last_offset,
                entry.end_offset,
                len(self._queue) - 1,
            )

    def close(self) -> None:
        self._queue.clear()
        self._assigned = None
        self._consumer.close()
