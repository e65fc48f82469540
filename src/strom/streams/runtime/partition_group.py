"""A task's input buffers and the choice of its next record: Kafka Streams' timestamp synchronization
(KIP-353's ``PartitionGroup``) with KIP-695's ``max.task.idle.ms``.

A task that reads several partitions (a stream and a table topic, both sides of a join, a merge) buffers what
the consumer returns per partition and always processes the buffered record with the lowest timestamp, so a
table row is applied before a stream record with a later timestamp, whatever order the fetches came in. It
processes only while every input partition has a buffered record, or when the empty ones are known to have
nothing more on the broker:

- ``max.task.idle.ms = -1``: never wait; process whatever is buffered;
- ``0`` (the default): wait while an empty partition's lag is unknown or > 0 (its data is on the broker and a
  coming poll brings it); with lag 0, process at once;
- ``> 0``: as 0, and once the lag is 0, wait up to that many ms of wall-clock time for data to arrive.

Processing while a partition is empty after waiting is *enforced processing*: counted in the task's
``enforced-processing-total`` and logged, since records may then be processed out of timestamp order.
A partition holding more than ``buffered.records.per.partition`` records should be paused on the consumer
until it drains back to that size (back-pressure); ``to_pause``/``to_resume`` say which.

A partition whose source has a timestamp extractor is ordered by the extracted timestamp, as in Kafka's
RecordQueue: its head record is prepared (deserialised, timestamp extracted: ``StreamTask.prepare``) when it
becomes the head, and a head that fails to deserialise is dropped once the deserialization handler took it.
Other partitions order by the record timestamp as fetched, with no deserialisation.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from strom.streams.processor.context import TaskId, TaskMetrics

logger = logging.getLogger(__name__)

NEVER_WAIT = -1
"""``max.task.idle.ms`` value that disables waiting for empty partitions."""

TopicPartition = tuple[str, int]
BufferedRecord = tuple[Any, ...]
"""``(topic, partition, offset, key, value, timestamp, headers)``, the arguments of ``StreamTask.process``."""
_TIMESTAMP = 5

Prepare = Callable[..., BufferedRecord | None]
"""``StreamTask.prepare``: a raw record to a prepared one (extracted timestamp at the same index), or None."""

LagOf = Callable[[TopicPartition], int | None]
"""How many records of a partition are on the broker beyond what was fetched; None when not known yet."""


class PartitionGroup:
    """Buffers of one task's input partitions.

    Invariants: each buffer holds its partition's fetched records in offset order; ``next_record`` returns the
    buffered record with the lowest timestamp (the earlier partition of the task on a tie), or None while the
    task must wait for an empty partition; a partition's idle deadline exists only while it is empty with
    lag 0.
    """

    __slots__ = ("_buffers", "_deadlines", "_enforcing", "_max_idle_ms", "_metrics", "_prepare", "_ready",
                 "_task_id", "max_buffered", "paused")  # fmt: skip

    def __init__(
        self,
        task_id: TaskId,
        partitions: list[TopicPartition],
        max_task_idle_ms: int,
        max_buffered: int,
        metrics: TaskMetrics,
        prepare: dict[TopicPartition, Prepare] | None = None,
    ) -> None:
        """``prepare`` names the partitions whose head must be prepared before its timestamp is known."""
        self._task_id = task_id
        self._prepare = prepare or {}
        self._ready: set[TopicPartition] = set()  # partitions whose head is prepared
        self._buffers: dict[TopicPartition, deque[BufferedRecord]] = {tp: deque() for tp in partitions}
        self._deadlines: dict[TopicPartition, int] = {}
        self._max_idle_ms = max_task_idle_ms
        self.max_buffered = max_buffered
        self._metrics = metrics
        self._enforcing = False
        self.paused: set[TopicPartition] = set()

    def appender(self, tp: TopicPartition) -> Callable[..., None]:
        """``append(*record)`` for the partition ``tp``: the consumer loop's route for its records."""
        append = self._buffers[tp].append

        def add(*record: Any) -> None:
            append(record)

        return add

    @property
    def buffered(self) -> int:
        return sum(len(buf) for buf in self._buffers.values())

    def next_record(self, now_ms: int, lag_of: LagOf) -> BufferedRecord | None:
        """The next record to process, taken out of its buffer, or None while the task waits (or has none)."""
        best: deque[BufferedRecord] | None = None
        best_tp: TopicPartition | None = None
        best_ts = 0
        empty: list[TopicPartition] | None = None
        prepare = self._prepare
        for tp, buf in self._buffers.items():
            if prepare and buf and tp in prepare and tp not in self._ready:
                self._prepare_head(tp, buf)
            if buf:
                ts = buf[0][_TIMESTAMP]
                if best is None or ts < best_ts:
                    best, best_tp, best_ts = buf, tp, ts
            elif empty is None:
                empty = [tp]
            else:
                empty.append(tp)
        if best is None:
            return None
        if empty is None:
            if self._deadlines:
                self._deadlines.clear()
            self._enforcing = False
        elif not self._may_process_without(empty, now_ms, lag_of):
            return None
        self._ready.discard(best_tp)
        return best.popleft()

    def _prepare_head(self, tp: TopicPartition, buf: deque[BufferedRecord]) -> None:
        prepare = self._prepare[tp]
        while buf:
            prepared = prepare(*buf[0])
            if prepared is not None:
                buf[0] = prepared
                self._ready.add(tp)
                return
            buf.popleft()

    def _may_process_without(self, empty: list[TopicPartition], now_ms: int, lag_of: LagOf) -> bool:
        if self._max_idle_ms == NEVER_WAIT:
            return True
        for tp, buf in self._buffers.items():
            if buf:
                self._deadlines.pop(tp, None)
        for tp in empty:
            lag = lag_of(tp)
            if lag is None or lag > 0:
                self._deadlines.pop(tp, None)  # data is (or may be) on the broker: wait for the next poll
                return False
            deadline = self._deadlines.setdefault(tp, now_ms + self._max_idle_ms)
            if now_ms < deadline:
                return False
        self._metrics.enforced_processing += 1
        if not self._enforcing:
            self._enforcing = True
            logger.info(
                "task %s: processing although %s have no buffered records and nothing more on the broker "
                "(max.task.idle.ms=%d); records may be processed out of timestamp order",
                self._task_id, ", ".join(f"{t}-{p}" for t, p in empty), self._max_idle_ms,
            )  # fmt: skip
        return True

    def to_pause(self) -> list[TopicPartition]:
        """Partitions whose buffer passed ``max_buffered`` and are not paused yet; marks them paused."""
        limit = self.max_buffered
        full = [tp for tp, buf in self._buffers.items() if len(buf) > limit and tp not in self.paused]
        self.paused.update(full)
        return full

    def to_resume(self) -> list[TopicPartition]:
        """Paused partitions whose buffer drained back to ``max_buffered``; marks them resumed."""
        if not self.paused:
            return []
        drained = [tp for tp in self.paused if len(self._buffers[tp]) <= self.max_buffered]
        self.paused.difference_update(drained)
        return drained
