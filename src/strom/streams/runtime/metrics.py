"""Prometheus metrics of one Streams instance, named as Kafka Streams' metrics look through the JMX exporter
(`kafka_streams_<group>_<name>`, dashes as underscores), so dashboards and alerts written for Kafka Streams
carry over.

Nothing here runs on the processing hot path: the stream thread keeps plain integer counters (the per-task
`TaskMetrics` it already had, and `ThreadMetrics` below, bumped once per poll-loop iteration or per commit),
and the values are read only when Prometheus scrapes. Every instance owns its `CollectorRegistry`; the global
registry of prometheus_client is never touched, so two instances in one process never collide.

Exposed (label `thread_id` on all; `task_id` on task, restore and store metrics; `store` on the last two):

- kafka_streams_stream_thread_metrics_process_total, poll_total, commit_total, punctuate_total
- kafka_streams_stream_thread_metrics_commit_latency_seconds (histogram) and commit_latency_max (ms, as Kafka)
- kafka_streams_stream_task_metrics_process_total, enforced_processing_total, dropped_records_total
- kafka_streams_stream_task_metrics_restore_total, restore_remaining_records_total (KIP-869's names)
- kafka_streams_stream_state_metrics_estimate_num_keys (key-value stores, sampled at each commit)
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from strom.streams.processor.context import TaskMetrics
from strom.streams.runtime.errors import MetricsListenError
from strom.streams.runtime.restore import StateRestoreListener
from strom.streams.runtime.tasks import AssignedTask
from strom.streams.state.kv_store import KeyValueStore

# Upper bounds (seconds) of the commit-latency histogram: a commit flushes caches and the producer, so it
# ranges from a millisecond (nothing to send) to seconds (a large flush against a slow broker).
COMMIT_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class _LiveTask:
    task_id: str
    metrics: TaskMetrics
    changelogs: tuple[tuple[str, int], ...]


class ThreadMetrics:
    """Counters the stream thread keeps for Prometheus.

    Invariant: thread-level totals never decrease. A task's counters are folded into `retired` under the same
    lock that removes the task from the published set, so a scrape sees each processed record exactly once
    whether its task is live, suspended or closed.
    """

    def __init__(self, sample_stores: bool) -> None:
        self.sample_stores = sample_stores  # only when served: counting an LSM store's keys scans it
        self._lock = threading.Lock()
        self.polls = 0
        self.commits = 0
        self.commit_seconds_sum = 0.0
        self.commit_max_ms = 0.0
        self.commit_buckets = [0] * (len(COMMIT_LATENCY_BUCKETS) + 1)  # last one is +Inf
        self._tasks: dict[int, _LiveTask] = {}
        self._retired = TaskMetrics()
        self.store_sizes: dict[tuple[str, str], int] = {}

    def record_commit(self, seconds: float) -> None:
        """One commit took `seconds` (called once per commit interval)."""
        self.commit_buckets[bisect.bisect_left(COMMIT_LATENCY_BUCKETS, seconds)] += 1
        self.commit_seconds_sum += seconds
        self.commit_max_ms = max(self.commit_max_ms, seconds * 1000.0)
        self.commits += 1

    def publish(self, tasks: Iterable[AssignedTask]) -> None:
        """The tasks (running, restoring or suspended) the thread owns now."""
        live = {id(t): _LiveTask(str(t.task_id), t.task.metrics, tuple(t.changelogs.values())) for t in tasks}
        with self._lock:
            self._tasks = live

    def retire(self, task: AssignedTask) -> None:
        """`task` is closed: keep its counts in the thread totals and stop reporting it."""
        metrics = task.task.metrics
        with self._lock:
            if self._tasks.pop(id(task), None) is None:
                return
            retired = self._retired
            retired.processed += metrics.processed
            retired.dropped_records += metrics.dropped_records
            retired.punctuations += metrics.punctuations
            retired.enforced_processing += metrics.enforced_processing
        for key in [k for k in self.store_sizes if k[0] == str(task.task_id)]:
            del self.store_sizes[key]

    def sample_store_sizes(self, tasks: Iterable[AssignedTask]) -> None:
        """Approximate entry counts of the key-value stores of `tasks` (on the stream thread: stores are not
        safe to read from the scrape thread)."""
        for task in tasks:
            task_id = str(task.task_id)
            for name, store in task.task.stores.items():
                if isinstance(store, KeyValueStore):
                    self.store_sizes[(task_id, name)] = store.approximate_num_entries()

    def snapshot(self) -> tuple[list[_LiveTask], TaskMetrics]:
        with self._lock:
            live = list(self._tasks.values())
            totals = TaskMetrics()
            for part in [*(t.metrics for t in live), self._retired]:
                totals.processed += part.processed
                totals.dropped_records += part.dropped_records
                totals.punctuations += part.punctuations
                totals.enforced_processing += part.enforced_processing
        return live, totals


class RestoreProgress(StateRestoreListener):
    """Records restored and remaining per store changelog partition, updated once per restored batch."""

    def __init__(self) -> None:
        # (store, topic, partition) -> [restored, remaining]; lists are mutated in place by one thread.
        self.stores: dict[tuple[str, str, int], list[int]] = {}

    def on_restore_start(
        self, topic: str, partition: int, store_name: str, start_offset: int, end_offset: int
    ) -> None:
        entry = self.stores.setdefault((store_name, topic, partition), [0, 0])
        entry[1] = max(0, end_offset - start_offset)

    def on_batch_restored(
        self, topic: str, partition: int, store_name: str, batch_end_offset: int, num_restored: int
    ) -> None:
        entry = self.stores.setdefault((store_name, topic, partition), [0, 0])
        entry[0] += num_restored
        entry[1] = max(0, entry[1] - num_restored)

    def on_restore_end(self, topic: str, partition: int, store_name: str, total_restored: int) -> None:
        self.stores.setdefault((store_name, topic, partition), [0, 0])[1] = 0


class StreamsMetrics:
    """The registry of one Streams instance, and its `/metrics` HTTP server while the instance runs."""

    def __init__(self, thread_id: str, thread: ThreadMetrics, restore: RestoreProgress) -> None:
        self._thread_id = thread_id
        self._thread = thread
        self._restore = restore
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._server: WSGIServer | None = None
        self._server_thread: threading.Thread | None = None

    def serve(self, host: str, port: int) -> int:
        """Serve `/metrics` on `host:port` (0 picks a free port) from a daemon thread; return the port."""
        try:
            server, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsListenError(
                f"metrics.listen {host}:{port} cannot be served: {exc.strerror or exc}; "
                "choose a free local address (port 0 picks a free port)"
            ) from exc
        self._server, self._server_thread = server, thread
        return int(server.server_port)

    def stop(self) -> None:
        server, thread = self._server, self._server_thread
        self._server = self._server_thread = None
        if server is not None and thread is not None:
            server.shutdown()
            server.server_close()
            thread.join()

    def collect(self) -> Iterator[Metric]:
        thread_labels = ["thread_id"]
        tid = [self._thread_id]
        live, totals = self._thread.snapshot()
        t = self._thread
        prefix = "kafka_streams_stream_thread_metrics_"
        for name, value, doc in (
            ("process", totals.processed, "Records processed by the thread's tasks."),
            ("poll", t.polls, "Iterations of the poll loop."),
            ("commit", t.commits, "Commits (tasks flushed, producer flushed, offsets committed)."),
            ("punctuate", totals.punctuations, "Punctuations run."),
        ):
            family = CounterMetricFamily(prefix + name, doc, labels=thread_labels)
            family.add_metric(tid, value)
            yield family
        histogram = HistogramMetricFamily(
            prefix + "commit_latency_seconds", "Time a commit takes.", labels=thread_labels
        )
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip([*map(str, COMMIT_LATENCY_BUCKETS), "+Inf"], t.commit_buckets, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        histogram.add_metric(tid, buckets, t.commit_seconds_sum)
        yield histogram
        gauge = GaugeMetricFamily(
            prefix + "commit_latency_max", "Longest commit so far, in ms.", labels=thread_labels
        )
        gauge.add_metric(tid, t.commit_max_ms)
        yield gauge

        task_labels = ["thread_id", "task_id"]
        prefix = "kafka_streams_stream_task_metrics_"
        task_counters: tuple[tuple[str, str, Callable[[TaskMetrics], int]], ...] = (
            ("process", "Records processed by the task.", lambda m: m.processed),
            (
                "enforced_processing",
                "Records processed with an input empty.",
                lambda m: m.enforced_processing,
            ),
            ("dropped_records", "Records dropped.", lambda m: m.dropped_records),
        )
        for name, doc, value_of in task_counters:
            family = CounterMetricFamily(prefix + name, doc, labels=task_labels)
            for task in live:
                family.add_metric([self._thread_id, task.task_id], value_of(task.metrics))
            yield family

        owner = {tp: task.task_id for task in live for tp in task.changelogs}
        store_labels = ["thread_id", "task_id", "store"]
        restored = CounterMetricFamily(
            prefix + "restore", "Records restored from changelogs.", labels=store_labels
        )
        remaining = GaugeMetricFamily(
            prefix + "restore_remaining_records_total",
            "Records still to restore from changelogs.",
            labels=store_labels,
        )
        for (store, topic, partition), (done, left) in list(self._restore.stores.items()):
            labels = [self._thread_id, owner.get((topic, partition), "global"), store]
            restored.add_metric(labels, done)
            remaining.add_metric(labels, left)
        yield restored
        yield remaining

        keys = GaugeMetricFamily(
            "kafka_streams_stream_state_metrics_estimate_num_keys",
            "Approximate entries of a key-value store, sampled at each commit.",
            labels=store_labels,
        )
        for (task_id, store), size in list(t.store_sizes.items()):
            keys.add_metric([self._thread_id, task_id, store], size)
        yield keys
