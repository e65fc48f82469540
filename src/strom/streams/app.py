"""`Streams`: runs a Topology against a Kafka-protocol cluster (Kafka Streams' KafkaStreams, under a Python
name).

    with Streams(builder.build(), {"application.id": "page-counts", "bootstrap.servers": "localhost:9092"}) as
    app:
        ...                             # started on entering; closed (committed, group left) on leaving

`start()` checks everything that can be checked before joining the group and raises at once: the config, that
the source topics exist, co-partitioning (a TopologyError naming the topics and their partition counts), and
creates the internal repartition and changelog topics. Processing then runs on a background stream thread;
`state` tells where the instance is (Kafka Streams' states), a state listener is told of every change, and a
fatal error moves the instance to ERROR with the exception kept in `error`.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry

from strom.streams.runtime.config import StreamsConfig
from strom.streams.runtime.errors import IllegalStateError
from strom.streams.runtime.metrics import RestoreProgress, StreamsMetrics, ThreadMetrics
from strom.streams.runtime.restore import StateRestoreListener
from strom.streams.runtime.tasks import TaskFactory, lock_directory
from strom.streams.runtime.thread import StreamThread
from strom.streams.runtime.topics import ensure_internal_topics, require_source_topics
from strom.streams.topology import Topology

log = logging.getLogger(__name__)


class StreamsState(enum.Enum):
    """Kafka Streams' client states (KafkaStreams.State)."""

    CREATED = "CREATED"
    REBALANCING = "REBALANCING"
    RUNNING = "RUNNING"
    PENDING_SHUTDOWN = "PENDING_SHUTDOWN"
    NOT_RUNNING = "NOT_RUNNING"
    PENDING_ERROR = "PENDING_ERROR"
    ERROR = "ERROR"


StateListener = Callable[[StreamsState, StreamsState], None]


class _LoggingRestoreListener(StateRestoreListener):
    """Forwards restore progress to the metrics and the user's listener; the restore module logs progress
    itself."""

    def __init__(self, progress: RestoreProgress) -> None:
        self.progress = progress
        self.user: StateRestoreListener | None = None

    def on_restore_start(
        self, topic: str, partition: int, store_name: str, start_offset: int, end_offset: int
    ) -> None:
        self.progress.on_restore_start(topic, partition, store_name, start_offset, end_offset)
        if self.user is not None:
            self.user.on_restore_start(topic, partition, store_name, start_offset, end_offset)

    def on_batch_restored(
        self, topic: str, partition: int, store_name: str, batch_end_offset: int, num_restored: int
    ) -> None:
        self.progress.on_batch_restored(topic, partition, store_name, batch_end_offset, num_restored)
        if self.user is not None:
            self.user.on_batch_restored(topic, partition, store_name, batch_end_offset, num_restored)

    def on_restore_end(self, topic: str, partition: int, store_name: str, total_restored: int) -> None:
        self.progress.on_restore_end(topic, partition, store_name, total_restored)
        if self.user is not None:
            self.user.on_restore_end(topic, partition, store_name, total_restored)


class Streams:
    """One instance of a streams application; instances sharing `application.id` share the input partitions.

    Invariants: the state only moves along Kafka Streams' transitions (CREATED -> REBALANCING <-> RUNNING ->
    PENDING_SHUTDOWN -> NOT_RUNNING, or -> PENDING_ERROR -> ERROR); while started, the instance holds the lock
    of `<state.dir>/<application.id>`, so two instances never share task directories. A failure of the stream
    thread is kept in `error` and never swallowed.
    """

    def __init__(self, topology: Topology, config: Mapping[str, Any]) -> None:
        self._config = StreamsConfig.parse(config)
        self._topology = topology
        self._state = StreamsState.CREATED
        self._lock = threading.Condition()
        self._listeners: list[StateListener] = []
        progress = RestoreProgress()
        self._restore_listener = _LoggingRestoreListener(progress)
        self._thread_metrics = ThreadMetrics(sample_stores=self._config.metrics_listen is not None)
        self._metrics = StreamsMetrics(
            f"{self._config.client_id}-StreamThread-1", self._thread_metrics, progress
        )
        self.metrics_port: int | None = None
        self._thread: StreamThread | None = None
        self._app_lock_fd = -1
        self.error: BaseException | None = None

    # ---- observation

    @property
    def state(self) -> StreamsState:
        return self._state

    @property
    def config(self) -> StreamsConfig:
        return self._config

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """This instance's Prometheus registry (Kafka Streams' metric names), e.g. to serve it from the
        application's own HTTP server instead of `metrics.listen`."""
        return self._metrics.registry

    def active_tasks(self) -> tuple[str, ...]:
        """Ids of the tasks this instance runs now ("<sub-topology>_<partition>", Kafka Streams' names)."""
        thread = self._thread
        return thread.active_tasks if thread is not None else ()

    def set_state_listener(self, listener: StateListener) -> None:
        """Call `listener(new_state, old_state)` on every change (on the thread that made it)."""
        self._listeners.append(listener)

    def set_global_state_restore_listener(self, listener: StateRestoreListener) -> None:
        """Report every store restore (start, each batch, end), e.g. to show progress or count replayed
        records."""
        self._restore_listener.user = listener

    def wait_for_state(self, *states: StreamsState, timeout: float) -> StreamsState:
        """Block until the state is one of `states` (or ERROR / NOT_RUNNING); raise TimeoutError after
        `timeout`."""
        final = {StreamsState.ERROR, StreamsState.NOT_RUNNING}
        with self._lock:
            ok = self._lock.wait_for(lambda: self._state in states or self._state in final, timeout)
            if not ok:
                raise TimeoutError(f"Streams did not reach {[s.name for s in states]} within {timeout} s")
            return self._state

    def _set_state(self, new: StreamsState) -> None:
        with self._lock:
            old = self._state
            if old == new or old in (StreamsState.NOT_RUNNING, StreamsState.ERROR):
                return
            if old == StreamsState.PENDING_SHUTDOWN and new not in (StreamsState.NOT_RUNNING,):
                return
            if old == StreamsState.PENDING_ERROR and new != StreamsState.ERROR:
                return
            self._state = new
            self._lock.notify_all()
        log.info("Streams %s: state %s -> %s", self._config.application_id, old.name, new.name)
        for listener in self._listeners:
            listener(new, old)

    # ---- lifecycle

    def start(self) -> None:
        """Validate the topology against the cluster, create internal topics, start processing in the
        background.

        Raises TopologyError (co-partitioning), MissingSourceTopicError, InternalTopicError,
        StateDirLockedError, MetricsListenError synchronously; after a failed start the instance is
        NOT_RUNNING.
        """
        with self._lock:
            if self._state != StreamsState.CREATED:
                raise IllegalStateError(
                    f"start() called in state {self._state.name}; a Streams instance starts once"
                )
        try:
            listen = self._config.metrics_listen
            if listen is not None:
                self.metrics_port = self._metrics.serve(*listen)
            factory = self._prepare()
        except BaseException:
            self._metrics.stop()
            self._release_app_dir()
            self._set_state(StreamsState.NOT_RUNNING)
            raise
        self._set_state(StreamsState.REBALANCING)
        self._thread = StreamThread(
            self._config,
            factory,
            self._restore_listener,
            on_running=lambda: self._set_state(StreamsState.RUNNING),
            on_rebalancing=lambda: self._set_state(StreamsState.REBALANCING),
            on_error=self._on_thread_error,
            on_stopped=self._on_thread_stopped,
            name_suffix=uuid.uuid4().hex[:12],
            metrics=self._thread_metrics,
        )
        self._thread.start()

    def _prepare(self) -> TaskFactory:
        config = self._config
        app_dir = config.state_dir / config.application_id
        app_dir.mkdir(parents=True, exist_ok=True)
        self._app_lock_fd = lock_directory(app_dir)
        admin = AdminClient(config.admin())
        topology = self._topology
        internal = {t.name for t in topology.internal_topics(config.application_id)}
        sources = {
            t for g in topology.topic_groups(config.application_id) for t in g.source_topics
        } - internal
        user_counts = require_source_topics(admin, sources | set(topology.global_topics))
        counts = topology.resolve_partitions(config.application_id, user_counts.__getitem__)
        ensure_internal_topics(
            admin,
            [(t.name, counts[t.name], t.configs) for t in topology.internal_topics(config.application_id)],
            config.replication_factor,
        )
        return TaskFactory(topology, config, {**user_counts, **counts})

    def _on_thread_error(self, error: BaseException) -> None:
        self.error = error
        self._set_state(StreamsState.PENDING_ERROR)

    def _on_thread_stopped(self) -> None:
        if self.error is not None:
            self._metrics.stop()
            self._release_app_dir()
            self._set_state(StreamsState.ERROR)

    def close(self, timeout: float = 60.0) -> bool:
        """Commit, close tasks and leave the group; True if the stream thread finished within `timeout`
        seconds."""
        with self._lock:
            if self._state == StreamsState.CREATED:
                self._state = StreamsState.NOT_RUNNING
                self._lock.notify_all()
                return True
        thread = self._thread
        if thread is None:
            return True
        if self._state != StreamsState.ERROR:
            self._set_state(StreamsState.PENDING_SHUTDOWN)
        thread.shutdown()
        if threading.current_thread() is not thread:
            thread.join(timeout)
        if thread.is_alive():
            log.warning("stream thread did not stop within %.0f s", timeout)
            return False
        self._metrics.stop()
        self._release_app_dir()
        self._set_state(StreamsState.NOT_RUNNING)
        return True

    def _release_app_dir(self) -> None:
        if self._app_lock_fd >= 0:
            os.close(self._app_lock_fd)
            self._app_lock_fd = -1

    def __enter__(self) -> Streams:
        if self._state == StreamsState.CREATED:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
