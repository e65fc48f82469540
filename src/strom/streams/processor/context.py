"""The task context: the record being processed, stream time, stores, punctuation and metrics of one task.

Every node of a task shares one ``TaskContext``. The current record's metadata lives here instead of
travelling with each record, so forwarding a record is a plain call ``child.process(key, value, timestamp)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from strom.streams.errors import StoreError
from strom.streams.processor.punctuation import Cancellable, PunctuationQueue, PunctuationType
from strom.streams.state.kv_store import KeyValueStore
from strom.streams.state.window_store import WindowStore

log = logging.getLogger("strom.streams")

Headers = list[tuple[str, bytes]] | None
"""Record headers as the Kafka client gives them: ``(name, value)`` pairs, or None."""


class TaskId(NamedTuple):
    """A task: one sub-topology on one partition; its string form is Kafka Streams' task id,
    ``<subtopology>_<partition>``."""

    subtopology: int
    partition: int

    def __str__(self) -> str:
        return f"{self.subtopology}_{self.partition}"


class RecordCollector(Protocol):
    """Where a task's output records go (sinks, changelogs, dead letters). ``partition=None`` means the
    producer's partitioner, which must be murmur2 (Java's default) so keys co-partition with Kafka clients."""

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int,
        partition: int | None = None,
        headers: Headers = None,
    ) -> None: ...


class RecordContext(Protocol):
    """The input record's metadata a topic-name extractor sees (Kafka's ``RecordContext``); topic None and
    partition/offset -1 outside the processing of an input record (punctuation, cache flush at commit)."""

    @property
    def topic(self) -> str | None: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int: ...

    @property
    def headers(self) -> Headers: ...


TopicNameExtractor = Callable[[Any, Any, RecordContext], str]
"""``extractor(key, value, record_context) -> topic`` for sinks whose topic depends on the record."""


class TaskMetrics:
    """Task-level counters, named as Kafka Streams' task metrics."""

    __slots__ = ("dropped_records", "enforced_processing", "processed", "punctuations")

    def __init__(self) -> None:
        self.processed = 0
        self.dropped_records = 0
        self.punctuations = 0
        self.enforced_processing = 0  # records processed while an input partition was empty (KIP-695)

    def as_dict(self) -> dict[str, int]:
        return {
            "process-total": self.processed,
            "dropped-records-total": self.dropped_records,
            "punctuate-total": self.punctuations,
            "enforced-processing-total": self.enforced_processing,
        }


class TaskContext:
    """Shared state of one task. ``topic``/``partition``/``offset``/``headers`` describe the input record
    being processed (None/-1 inside a punctuation or a cache flush at commit)."""

    def __init__(
        self,
        task_id: TaskId,
        application_id: str,
        config: dict[str, Any],
        collector: RecordCollector,
        wall_clock: Callable[[], int],
    ) -> None:
        self.task_id = task_id
        self.application_id = application_id
        self.config = config
        self.collector = collector
        self.wall_clock = wall_clock
        self.stores: dict[str, KeyValueStore | WindowStore] = {}
        self.shared: dict[str, Any] = {}  # per-task state shared by nodes (a join's time tracker)
        self.topic: str | None = None
        self.partition = -1
        self.offset = -1
        self.timestamp = 0
        self.headers: Headers = None
        self.stream_time = -1
        self.metrics = TaskMetrics()
        self.stream_time_punctuations = PunctuationQueue()
        self.wall_clock_punctuations = PunctuationQueue()

    def current_timestamp(self) -> int:
        return self.timestamp

    def get_store(self, name: str) -> KeyValueStore | WindowStore:
        try:
            return self.stores[name]
        except KeyError:
            raise StoreError(
                f"task {self.task_id}: no state store {name!r}; connect it to the processor "
                f"(stores available: {sorted(self.stores)})"
            ) from None

    def schedule(
        self, interval_ms: int, kind: PunctuationType, callback: Callable[[int], None]
    ) -> Cancellable:
        if interval_ms < 1:
            raise ValueError(f"punctuation interval must be >= 1 ms, got {interval_ms}")
        if kind is PunctuationType.STREAM_TIME:
            return self.stream_time_punctuations.schedule(0, interval_ms, callback)
        return self.wall_clock_punctuations.schedule(self.wall_clock() + interval_ms, interval_ms, callback)

    def record_dropped(self, reason: str, key: Any = None, warn: bool = True) -> None:
        """Count a record that produces no output and say why (Kafka's dropped-records sensor)."""
        self.metrics.dropped_records += 1
        level = logging.WARNING if warn else logging.DEBUG
        if log.isEnabledFor(level):
            log.log(
                level,
                "task %s dropped record (%s): key=%r topic=%s partition=%s offset=%s timestamp=%s",
                self.task_id,
                reason,
                key,
                self.topic,
                self.partition,
                self.offset,
                self.timestamp,
            )
