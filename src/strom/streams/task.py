"""Stream tasks: one sub-topology bound to one input partition, with its stores. This docstring is the
contract between the processing core (DSL, topology, tasks, stores) and the runtime that feeds tasks from
brokers (``strom.streams.runtime``) or from memory (``strom.streams.testing``).

Topology side (``strom.streams.topology.Topology``):

  ``subtopology_ids``; ``topic_groups(application_id)`` -> ``TopicGroup(subtopology, source_topics,
  repartition_sources, sink_topics, changelog_topics: {store: topic})``; ``internal_topics(application_id)``
  -> ``InternalTopic(name, kind "repartition"|"changelog", configs, subtopology)`` with the configs to create
  them with (changelog ``cleanup.policy=compact``; windowed changelog ``compact,delete`` + ``retention.ms``;
  repartition ``delete``, ``retention.ms=-1``: purge consumed records with DeleteRecords after commit);
  ``resolve_partitions(application_id, partitions_of)`` -> partition count of every source and internal topic,
  raising ``TopologyError`` when co-partitioned topics differ; ``task_count(subtopology, counts,
  application_id)``; ``global_topics``. The topology knows nothing of tasks: a task is built from it.

Task side:

  ``StreamTask(task_id, topology, config, state_dir, collector, cache=None, global_task=None,
  wall_clock=None)`` where ``state_dir`` is this task's directory
  (``<state.dir>/<application.id>/<task_id>``), ``cache`` the instance's shared ``RecordCacheBudget`` and
  ``wall_clock`` a function returning epoch milliseconds.

  - ``process(topic, partition, offset, key, value, timestamp_ms, headers)`` runs one consumed record (raw
    bytes) through the sub-topology, synchronously, then fires due stream-time punctuators. A record whose key
    or value cannot be deserialised goes to the deserialization handler: with
    ``errors.deadletterqueue.topic.name`` set it is sent there unchanged plus KIP-1034 ``__streams.errors.*``
    headers; otherwise ``default.deserialization.exception.handler`` decides: ``log_and_fail`` (default)
    raises ``DeserializationError`` naming topic, partition and offset; ``log_and_continue`` logs and counts
    it in ``metrics.dropped_records``. An exception while processing goes the same way through
    ``processing.exception.handler`` (default: ``ProcessingError``, cause chained). A negative timestamp
    raises ``InvalidTimestampError``. When the task reads several partitions, feed the record with the
    smallest head timestamp first (Kafka's PartitionGroup rule; the runtime's
    ``runtime/partition_group.py``); for a topic where ``extracts_timestamp`` holds that is the extracted
    timestamp, so pass such a head through ``prepare`` first and give ``process`` what it returns.
  - ``punctuate(wall_clock_ms) -> bool`` fires due wall-clock punctuators.
  - ``commit() -> {(topic, partition): next offset}`` flushes every store's record cache (forwarding
    downstream and writing changelogs through the collector) and the stores' backends, so a checkpoint written
    afterwards is safe; then returns the offsets to commit. The runtime flushes its producer before committing
    them. Processing may continue after a commit.
  - ``changelog_partitions() -> {store: (topic, partition)}``, ``persistent_stores() -> set``,
    ``restore(store, records)`` applies ``(key bytes, value bytes | None, timestamp)`` changelog records in a
    batch (nothing is logged or forwarded), ``wipe_store(store)`` deletes a store's files and reopens it
    empty.
  - ``stores`` (by name), ``stream_time``, ``metrics`` (``processed``, ``dropped_records``), ``close()`` (does
    not flush: commit first for a clean close).

  ``GlobalStateTask(topology, config, state_dir, collector=None)`` (the collector is used only for dead
  letters): ``process(...)`` as above for global topics, ``restore(topic, records)`` for the bootstrap (raw,
  batched; null keys skipped), ``flush()``, ``stores``, ``close()``. Build it first and pass it to every
  ``StreamTask`` (``global_task=``) so joins see its stores.

``RecordCollector`` (``strom.streams.processor.context``, beside ``TaskId``): ``send(topic, key, value,
timestamp_ms, partition=None, headers=None)``; ``partition=None`` means the producer's partitioner, which must
be murmur2 (Java's default) so keys co-partition with Kafka clients.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from strom.streams.errors import (
    DeserializationError,
    InvalidTimestampError,
    ProcessingError,
    StreamsError,
    TopologyError,
)
from strom.streams.processor.context import Headers, RecordCollector, TaskContext, TaskId, TaskMetrics
from strom.streams.processor.node import Node, SinkNode, SourceNode
from strom.streams.serdes import Serde, resolve_serde
from strom.streams.state.cache import Changelogger, RecordCacheBudget, cache_max_bytes
from strom.streams.state.kv_store import KeyValueStore
from strom.streams.state.stores import StoreSpec, open_backend, open_store, wipe_store_files
from strom.streams.state.window_store import WindowStore
from strom.streams.topology import Topology

log = logging.getLogger("strom.streams")


def _system_clock() -> int:
    return time.time_ns() // 1_000_000


_HANDLER_ALIASES = {
    "log_and_fail": "log_and_fail",
    "logandfail": "log_and_fail",
    "org.apache.kafka.streams.errors.LogAndFailExceptionHandler": "log_and_fail",
    "log_and_continue": "log_and_continue",
    "logandcontinue": "log_and_continue",
    "org.apache.kafka.streams.errors.LogAndContinueExceptionHandler": "log_and_continue",
}


class _ErrorHandling:
    """Applies a configured policy (``default.deserialization.exception.handler`` or
    ``processing.exception.handler``) to a record that failed. Never skips silently: every outcome is an
    exception, a dead-letter record or a logged, counted drop."""

    def __init__(
        self,
        config: dict[str, Any],
        key: str,
        error: Callable[[str, int, int, Exception], StreamsError],
        collector: RecordCollector,
        metrics: TaskMetrics,
        task: str,
    ) -> None:
        self.dlq = config.get("errors.deadletterqueue.topic.name") or None
        self.error = error
        raw = config.get(key, "log_and_fail")
        self.custom: Callable[..., Any] | None = raw if callable(raw) else None
        if self.custom is None:
            policy = _HANDLER_ALIASES.get(str(raw))
            if policy is None:
                raise StreamsError(
                    f"{key}={raw!r}: expected 'log_and_fail', 'log_and_continue' or a "
                    "callable(topic, partition, offset, exception) returning 'continue' or 'fail'"
                )
            self.policy = policy
        self.collector = collector
        self.metrics = metrics
        self.task = task

    def handle(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers,
        error: Exception,
    ) -> None:
        if self.dlq is not None:
            extra = [
                ("__streams.errors.exception", type(error).__name__.encode()),
                ("__streams.errors.message", str(error).encode()),
                ("__streams.errors.stacktrace", "".join(traceback.format_exception(error)).encode()),
                ("__streams.errors.topic", topic.encode()),
                ("__streams.errors.partition", str(partition).encode()),
                ("__streams.errors.offset", str(offset).encode()),
            ]
            self.collector.send(self.dlq, key, value, timestamp, None, list(headers or []) + extra)
            self.metrics.dropped_records += 1
            log.warning(
                "task %s: record %s-%s@%s failed (%s); sent to dead-letter topic %s",
                self.task, topic, partition, offset, error, self.dlq,
            )  # fmt: skip
            return
        decision = self.policy if self.custom is None else self.custom(topic, partition, offset, error)
        if decision in ("continue", "log_and_continue"):
            self.metrics.dropped_records += 1
            log.warning("task %s: skipping record %s-%s@%s: %s", self.task, topic, partition, offset, error)
            return
        raise self.error(topic, partition, offset, error) from error


class StreamTask:
    """One sub-topology on one partition.

    Invariants: stream time never decreases; each consumed record is fully processed (all downstream nodes,
    stores and sends) before ``process`` returns; the offsets returned by ``commit`` never run ahead of what
    the flushed stores and sent records reflect. A failure inside ``process`` propagates and leaves the task
    to be closed and rebuilt from the changelog and the last committed offsets (at-least-once).
    """

    def __init__(
        self,
        task_id: TaskId,
        topology: Topology,
        config: dict[str, Any],
        state_dir: Path,
        collector: RecordCollector,
        cache: RecordCacheBudget | None = None,
        global_task: GlobalStateTask | None = None,
        wall_clock: Callable[[], int] | None = None,
    ) -> None:
        application_id = config.get("application.id")
        if not application_id:
            raise StreamsError("config 'application.id' is required")
        self.task_id = task_id
        self.application_id = str(application_id)
        self.config = config
        self.state_dir = Path(state_dir)
        self.collector = collector
        self._budget = cache if cache is not None else RecordCacheBudget(cache_max_bytes(config))
        sub = topology.subtopology(task_id.subtopology)
        self._topology = topology
        ctx = TaskContext(task_id, self.application_id, config, collector, wall_clock or _system_clock)
        self.ctx = ctx
        self.metrics = ctx.metrics
        self._handler = _ErrorHandling(
            config, "default.deserialization.exception.handler", DeserializationError, collector, ctx.metrics,
            str(task_id),
        )  # fmt: skip
        self._processing_handler = _ErrorHandling(
            config, "processing.exception.handler", ProcessingError, collector, ctx.metrics, str(task_id)
        )

        # Stores in the order the sub-topology first uses them: upstream caches flush before downstream ones.
        ordered: list[str] = []
        for name in sub.nodes:
            for store in topology.nodes[name].stores:
                if store in topology.stores and store not in ordered:
                    ordered.append(store)
        self._store_specs: dict[str, StoreSpec] = {s: topology.stores[s] for s in ordered}
        self.stores: dict[str, KeyValueStore | WindowStore] = {}
        for store_name, spec in self._store_specs.items():
            changelog = Changelogger(
                collector.send, spec.changelog_topic(self.application_id), task_id.partition
            )
            self.stores[store_name] = open_store(
                spec, config, self.state_dir, changelog, self._budget, ctx.current_timestamp
            )
        ctx.stores.update(self.stores)
        if global_task is not None:
            ctx.stores.update(global_task.stores)

        nodes: dict[str, Node] = {}
        self._sources: dict[str, tuple[SourceNode, Any, Any, Any]] = {}
        for name in sub.nodes:
            spec_node = topology.nodes[name]
            node = spec_node.make()
            nodes[name] = node
            for parent in spec_node.parents:
                nodes[parent].children.append(node)
            if isinstance(node, SourceNode):
                kser = resolve_serde(node.key_serde, config, "key", f"source {name!r}")
                vser = resolve_serde(node.value_serde, config, "value", f"source {name!r}")
                entry = (node, kser, vser, node.timestamp_extractor)
                for ref in spec_node.topics:
                    self._sources[ref.full(self.application_id)] = entry
            elif isinstance(node, SinkNode):
                if spec_node.topics:
                    node.topic = spec_node.topics[0].full(self.application_id)
                node.key_serde = resolve_serde(node.key_serde, config, "key", f"sink {name!r}")
                node.value_serde = resolve_serde(node.value_serde, config, "value", f"sink {name!r}")
        for store in {s for n in sub.nodes for s in topology.nodes[n].stores}:
            if store not in ctx.stores:
                raise TopologyError(
                    f"task {task_id} needs global store {store!r}: build the GlobalStateTask first "
                    "and pass it as global_task"
                )
        self._nodes = list(nodes.values())
        self._offsets: dict[str, int] = {}
        self._stream_punctuations = ctx.stream_time_punctuations
        for node in self._nodes:
            node.init(ctx)

    @property
    def source_topics(self) -> list[str]:
        return list(self._sources)

    @property
    def stream_time(self) -> int:
        return self.ctx.stream_time

    def extracts_timestamp(self, topic: str) -> bool:
        """Whether ``topic``'s source has a timestamp extractor: its records are ordered (by the runtime's
        partition group) only after ``prepare``, since their timestamp is known only once deserialised."""
        return self._sources[topic][3] is not None

    def prepare(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int,
        headers: Headers = None,
    ) -> tuple[Any, ...] | None:
        """Deserialise a buffered record of an extractor's topic and extract its timestamp, as Kafka's
        RecordQueue does for a partition's head record: the arguments of ``process`` with the extracted
        timestamp and the deserialised ``(key, value)`` appended, so ``process`` does not deserialise twice.
        None when the record failed to deserialise and the deserialization handler took it (its offset counts
        as consumed); a negative extracted timestamp raises ``InvalidTimestampError``."""
        if timestamp_ms < 0:
            raise InvalidTimestampError(topic, partition, offset, timestamp_ms)
        read = self._deserialize(topic, partition, offset, key, value, timestamp_ms, headers)
        if read is None:
            return None
        k, v, extracted = read
        return (topic, partition, offset, key, value, extracted, headers, (k, v))

    def _deserialize(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int,
        headers: Headers,
    ) -> tuple[Any, Any, int] | None:
        """The record's deserialised key and value and its timestamp (the extractor's, if its topic has one),
        shared by ``prepare`` and ``process`` so both treat a bad record alike: None when it failed to
        deserialise and the deserialization handler took it (its offset counts as consumed); a negative
        extracted timestamp raises ``InvalidTimestampError``."""
        _, kser, vser, extract = self._sources[topic]
        try:
            k = kser.deserialize(topic, key)
            v = vser.deserialize(topic, value)
        except Exception as error:
            self._offsets[topic] = offset + 1
            self._handler.handle(topic, partition, offset, key, value, timestamp_ms, headers, error)
            return None
        if extract is not None:
            timestamp_ms = extract(k, v, timestamp_ms)
            if timestamp_ms < 0:
                raise InvalidTimestampError(topic, partition, offset, timestamp_ms)
        return k, v, timestamp_ms

    def process(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int,
        headers: Headers = None,
        deserialized: tuple[Any, Any] | None = None,
    ) -> None:
        """``deserialized`` is given for a record that went through ``prepare`` (``timestamp_ms`` is then the
        extracted one)."""
        try:
            source = self._sources[topic][0]
        except KeyError:
            raise StreamsError(
                f"task {self.task_id} does not read topic {topic!r}; it reads {self.source_topics}"
            ) from None
        if timestamp_ms < 0:
            raise InvalidTimestampError(topic, partition, offset, timestamp_ms)
        ctx = self.ctx
        ctx.topic = topic
        ctx.partition = partition
        ctx.offset = offset
        ctx.timestamp = timestamp_ms
        ctx.headers = headers
        self._offsets[topic] = offset + 1  # a task reads exactly one partition (its own) of each topic
        if deserialized is not None:
            k, v = deserialized
        else:
            read = self._deserialize(topic, partition, offset, key, value, timestamp_ms, headers)
            if read is None:
                return
            k, v, timestamp_ms = read
            ctx.timestamp = timestamp_ms
        if timestamp_ms > ctx.stream_time:
            ctx.stream_time = timestamp_ms
        try:
            for child in source.children:
                child.process(k, v, timestamp_ms)
        except Exception as error:
            handler = self._processing_handler
            handler.handle(topic, partition, offset, key, value, timestamp_ms, headers, error)
            return
        ctx.metrics.processed += 1
        due = self._stream_punctuations.heap
        if due and due[0][0] <= ctx.stream_time:
            self._punctuate(self._stream_punctuations, ctx.stream_time)

    def _punctuate(self, queue: Any, now: int) -> bool:
        ctx = self.ctx
        ctx.topic, ctx.partition, ctx.offset, ctx.headers, ctx.timestamp = None, -1, -1, None, now
        fired: bool = queue.punctuate(now)
        if fired:
            ctx.metrics.punctuations += 1
        return fired

    def punctuate(self, wall_clock_ms: int) -> bool:
        """Fire the wall-clock punctuators due at ``wall_clock_ms``."""
        return self._punctuate(self.ctx.wall_clock_punctuations, wall_clock_ms)

    def commit(self) -> dict[tuple[str, int], int]:
        ctx = self.ctx
        ctx.topic, ctx.partition, ctx.offset, ctx.headers = None, -1, -1, None
        for store in self.stores.values():
            store.flush()
        partition = self.task_id.partition
        return {(topic, partition): offset for topic, offset in self._offsets.items()}

    def changelog_partitions(self) -> dict[str, tuple[str, int]]:
        return {
            name: (spec.changelog_topic(self.application_id), self.task_id.partition)
            for name, spec in self._store_specs.items()
            if spec.logging
        }

    def persistent_stores(self) -> set[str]:
        return {name for name, store in self.stores.items() if store.persistent}

    def restore(self, store_name: str, records: Iterable[tuple[bytes, bytes | None, int]]) -> int:
        """Apply a batch of changelog records to ``store_name``; returns how many were applied."""
        return int(self._store(store_name).restore(records))

    def wipe_store(self, store_name: str) -> None:
        store = self._store(store_name)
        spec = self._store_specs[store_name]
        store._drop_cache()
        store.backend.close()
        wipe_store_files(spec, self.config, self.state_dir)
        store.backend = open_backend(spec, self.config, self.state_dir)

    def _store(self, name: str) -> KeyValueStore | WindowStore:
        try:
            return self.stores[name]
        except KeyError:
            raise StreamsError(
                f"task {self.task_id} has no store {name!r}; it has {sorted(self.stores)}"
            ) from None

    def close(self) -> None:
        for node in self._nodes:
            node.close()
        for store in self.stores.values():
            store.close()

    def __repr__(self) -> str:
        return f"<StreamTask {self.task_id} topics={self.source_topics}>"


class GlobalStateTask:
    """Maintains every global store of a topology from all partitions of its topic.

    Invariant: a global store holds exactly the latest non-null value per key of its topic up to the offsets
    processed; it is never written by stream tasks and has no changelog (the topic is its changelog).
    """

    def __init__(
        self,
        topology: Topology,
        config: dict[str, Any],
        state_dir: Path,
        collector: RecordCollector | None = None,
    ) -> None:
        self.config = config
        self.state_dir = Path(state_dir)
        self.metrics = TaskMetrics()
        self.stores: dict[str, KeyValueStore | WindowStore] = {}
        self._by_topic: dict[str, tuple[KeyValueStore | WindowStore, Serde[Any], Serde[Any]]] = {}
        self._handler = _ErrorHandling(
            config, "default.deserialization.exception.handler", DeserializationError,
            collector or _NoCollector(), self.metrics, "global",
        )  # fmt: skip
        for store_name, (spec, ref, _source) in topology.global_stores.items():
            store = open_store(spec, config, self.state_dir, None, None, lambda: 0, rebuildable=True)
            self.stores[store_name] = store
            self._by_topic[ref.name] = (store, store.key_serde, store.value_serde)

    @property
    def topics(self) -> list[str]:
        return list(self._by_topic)

    def _target(self, topic: str) -> tuple[KeyValueStore | WindowStore, Serde[Any], Serde[Any]]:
        try:
            return self._by_topic[topic]
        except KeyError:
            raise StreamsError(
                f"no global store reads topic {topic!r}; global topics: {self.topics}"
            ) from None

    def process(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int,
        headers: Headers = None,
    ) -> None:
        store, kser, vser = self._target(topic)
        try:
            k = kser.deserialize(topic, key)
            vser.deserialize(topic, value)
        except Exception as error:
            self._handler.handle(topic, partition, offset, key, value, timestamp_ms, headers, error)
            return
        if k is None or key is None:
            self.metrics.dropped_records += 1
            return
        store.restore([(key, value, timestamp_ms)])
        self.metrics.processed += 1

    def restore(self, topic: str, records: Iterable[tuple[bytes | None, bytes | None, int]]) -> int:
        store = self._target(topic)[0]
        return int(store.restore((k, v, ts) for k, v, ts in records if k is not None))

    def flush(self) -> None:
        for store in self.stores.values():
            store.flush()

    def close(self) -> None:
        for store in self.stores.values():
            store.close()


class _NoCollector:
    """Stands in when the global task was built without a collector: a dead letter then fails loudly."""

    def send(self, topic: str, *args: Any, **kwargs: Any) -> None:
        raise StreamsError(
            f"cannot send to dead-letter topic {topic!r} from the global task: build it with a collector"
        )
