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

from strom.streams.runtime.errors import StreamsError

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
    end_offset: int
    apply: Callable[[RestoreBatch], None]
    restored: int = 0
    last_offset: int = -1


class ChangelogReader:
    """Restores stores from changelog partitions with one assign-only consumer shared by all tasks of a
    thread.

    Invariant: a partition is assigned to the consumer exactly while it is in `_active`; `owner` (a task) is
    done when none of its partitions remain. Work per `step` is bounded by `batch_records`, so the caller
    keeps polling its group consumer between steps and never exceeds max.poll.interval.ms, however large the
    changelog.
    """

    def __init__(
        self, consumer_config: dict[str, object], listener: StateRestoreListener, batch_records: int
    ) -> None:
        self._consumer = Consumer(consumer_config)
        self._listener = listener
        self._batch_records = batch_records
        self._active: dict[tuple[str, int], _Restoring] = {}
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
        """Start restoring `store_name` from `topic`/`partition`, resuming after `checkpoint` when it is
        usable."""
        low, high = self.offsets(topic, partition)
        if checkpoint is None:
            start = low
        elif low <= checkpoint + 1 <= high:
            start = checkpoint + 1
        else:
            log.warning(
                "checkpoint offset %d of store %r is outside changelog %s-%d offsets [%d, %d]: "
                "wiping the store "
                "and restoring it from the beginning",
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
        entry = _Restoring(owner, store_name, topic, partition, high, apply, last_offset=start - 1)
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
        self._active[(topic, partition)] = entry
        self._consumer.incremental_assign([TopicPartition(topic, partition, start)])

    def remove_owner(self, owner: object) -> None:
        """Stop restoring every partition of `owner` (its task was revoked mid-restore)."""
        gone = [key for key, entry in self._active.items() if entry.owner is owner]
        for key in gone:
            del self._active[key]
        if gone:
            self._consumer.incremental_unassign([TopicPartition(t, p) for t, p in gone])

    def is_restoring(self, owner: object) -> bool:
        return any(entry.owner is owner for entry in self._active.values())

    @property
    def idle(self) -> bool:
        return not self._active

    def step(self, timeout_s: float) -> None:
        """Consume one batch and write it to the stores; finish partitions that reached their end offset."""
        if not self._active:
            return
        messages = self._consumer.consume(num_messages=self._batch_records, timeout=timeout_s)
        batches: dict[tuple[str, int], RestoreBatch] = {}
        ended: list[tuple[str, int]] = []
        last: dict[tuple[str, int], int] = {}
        for m in messages:
            err = m.error()
            tp = (m.topic(), m.partition())
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    ended.append(tp)
                    continue
                raise ChangelogRestoreError(
                    f"error reading changelog {tp[0]!r} partition {tp[1]}: {err.str()}"
                )
            batch = batches.get(tp)
            if batch is None:
                batch = batches[tp] = []
            batch.append((m.key(), m.value(), m.timestamp()[1]))
            last[tp] = m.offset()
        for tp, batch in batches.items():
            entry = self._active.get(tp)
            if entry is None:
                continue  # revoked while the batch was in flight
            entry.apply(batch)
            entry.restored += len(batch)
            entry.last_offset = last[tp]
            self._listener.on_batch_restored(tp[0], tp[1], entry.store_name, entry.last_offset, len(batch))
            if entry.last_offset + 1 >= entry.end_offset:
                ended.append(tp)
        for tp in ended:
            self._finish(tp)
        self._log_progress()

    def _finish(self, tp: tuple[str, int]) -> None:
        entry = self._active.pop(tp, None)
        if entry is None:
            return
        self._consumer.incremental_unassign([TopicPartition(tp[0], tp[1])])
        log.info("restored store %r from %s-%d: %d records", entry.store_name, tp[0], tp[1], entry.restored)
        self._listener.on_restore_end(tp[0], tp[1], entry.store_name, entry.restored)

    def _log_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress_log < _PROGRESS_LOG_INTERVAL_S:
            return
        self._last_progress_log = now
        for entry in self._active.values():
            log.info(
                "restoring store %r from %s-%d: %d records restored, at offset %d of %d",
                entry.store_name,
                entry.topic,
                entry.partition,
                entry.restored,
                entry.last_offset,
                entry.end_offset,
            )

    def close(self) -> None:
        self._active.clear()
        self._consumer.close()
