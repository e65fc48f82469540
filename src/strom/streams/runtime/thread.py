"""The stream thread: one group consumer, one producer, the tasks of the partitions assigned to this instance.

Loop: poll a batch -> route each record to its task (a task reading several partitions buffers them and takes
the lowest timestamp first, see partition_group.py) -> restore step for tasks still restoring -> global table
updates -> wall-clock punctuation -> every commit.interval.ms: flush tasks (caches, changelog writes), flush
the producer, commit the consumed offsets, write checkpoints. This order is at-least-once: an offset is
committed only after every output and changelog record caused by the records before it has been acknowledged;
records still buffered are not committed, and a rebalance drops them (they are fetched again).

Rebalances use librdkafka's eager `range` assignment (partition i of co-partitioned topics lands on one
member). On revoke every task is committed and suspended; on assign, suspended tasks that come back resume as
they are (no other member could have written their changelogs in between), the rest are closed, and new tasks
restore from their changelog (checkpoint + delta) with their input partitions paused until restore completes.
Restore work is done in bounded steps from the loop, never inside a rebalance callback, so
max.poll.interval.ms is kept however large the state is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from strom.streams.runtime.checkpoint import CheckpointCorruptError, read_checkpoint, write_checkpoint
from strom.streams.runtime.collector import KafkaRecordCollector
from strom.streams.runtime.config import StreamsConfig
from strom.streams.runtime.errors import ProducerSendError
from strom.streams.runtime.global_state import GlobalStateUpdater
from strom.streams.runtime.metrics import ThreadMetrics
from strom.streams.runtime.partition_group import PartitionGroup
from strom.streams.runtime.partition_group import TopicPartition as Partition
from strom.streams.runtime.restore import ChangelogReader, StateRestoreListener
from strom.streams.runtime.tasks import AssignedTask, TaskFactory

log = logging.getLogger(__name__)

_FLUSH_TIMEOUT_S = 60.0
_DIRTY_FLUSH_TIMEOUT_S = 10.0
_POLL_BATCH = 10000
_COMMITTED_TIMEOUT_S = 10.0


class StreamThread(threading.Thread):
    """Runs the consume-process-commit loop of one Streams instance until `shutdown()` or a fatal error.

    Invariants: `_route` maps exactly the input partitions of running tasks to their task; a partition of a
    task that is restoring is paused on the consumer; offsets committed for a task never exceed the records it
    processed and whose outputs the producer acknowledged. A fatal error (deserialisation with log_and_fail, a
    failed send, a broker error) stops the loop and is reported through `on_error`; then the tasks are closed
    without commit and `on_stopped` follows once everything is closed.
    """

    def __init__(
        self,
        config: StreamsConfig,
        tasks: TaskFactory,
        restore_listener: StateRestoreListener,
        on_running: Callable[[], None],
        on_rebalancing: Callable[[], None],
        on_error: Callable[[BaseException], None],
        on_stopped: Callable[[], None],
        name_suffix: str,
        metrics: ThreadMetrics,
    ) -> None:
        super().__init__(name=f"{config.client_id}-StreamThread-1", daemon=True)
        self._config = config
        self._factory = tasks
        self._restore_listener = restore_listener
        self._on_running = on_running
        self._on_rebalancing = on_rebalancing
        self._on_error = on_error
        self._on_stopped = on_stopped
        self._suffix = name_suffix
        self._metrics = metrics
        self._stopping = threading.Event()
        self._tasks: dict[Any, AssignedTask] = {}
        self._suspended: dict[Any, AssignedTask] = {}
        self._route: dict[tuple[str, int], Callable[..., None]] = {}
        self._groups: list[tuple[PartitionGroup, Callable[..., None]]] = []
        self._start_offsets: dict[Partition, int] = {}
        self._consumer: Consumer | None = None
        self._collector: KafkaRecordCollector | None = None
        self._reader: ChangelogReader | None = None
        self._global: GlobalStateUpdater | None = None
        self._reported_running = False
        self._active_snapshot: tuple[str, ...] = ()
        self._admin: AdminClient | None = None
        self._purge_due = 0.0
        self._purging: dict[Any, Any] = {}
        self._committed: dict[tuple[str, int], int] = {}
        self._consumer_warned: dict[int, float] = {}

    def shutdown(self) -> None:
        """Ask the loop to commit, close its tasks and leave the group; returns at once (join() to wait)."""
        self._stopping.set()

    # ---- lifecycle

    def run(self) -> None:
        failure: BaseException | None = None
        try:
            self._start_clients()
            self._loop()
            self._commit()
        except BaseException as exc:
            failure = exc
            log.error("stream thread %s stops on a fatal error: %s", self.name, exc)
            self._on_error(exc)
        finally:
            self._close(clean=failure is None, send_pending=not isinstance(failure, ProducerSendError))
            self._on_stopped()

    def _start_clients(self) -> None:
        config = self._config
        self._collector = KafkaRecordCollector(config.producer(self._suffix))
        self._reader = ChangelogReader(
            config.restore_consumer(f"{self._suffix}-restore"),
            self._restore_listener,
            config.restore_batch_records,
        )
        global_task = self._factory.build_global_task(self._collector)
        if global_task is not None:
            self._global = GlobalStateUpdater(
                config.restore_consumer(f"{self._suffix}-global"),
                global_task,
                self._factory.global_topics,
                self._factory.global_dir,
                self._restore_listener,
                config.restore_batch_records,
                persistent=all(store.persistent for store in global_task.stores.values()),
            )
            self._global.bootstrap(self._stopping)
        self._consumer = Consumer(config.main_consumer(self._suffix))
        self._consumer.subscribe(
            sorted(self._factory.subscribed_topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def _close(self, clean: bool, send_pending: bool = True) -> None:
        """Close tasks (committing nothing more when not `clean`), clients and the producer.

        Records already handed to the producer are still sent unless the producer itself failed: their source
        offsets are not committed after a failure, so a restart may send them again (at-least-once).
        """
        tasks = list(self._tasks.values()) + list(self._suspended.values())
        self._tasks.clear()
        self._suspended.clear()
        self._route.clear()
        for task in tasks:
            self._close_task(task, clean)
        if self._consumer is not None:
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError) as exc:
                log.warning("closing the consumer failed: %s", exc)
        if self._reader is not None:
            self._reader.close()
        if self._global is not None:
            self._global.close(clean)
        self._purging = {}
        self._admin = None  # AdminClient has no close(): dropping the last reference releases it
        if self._collector is not None:
            flush_s = _FLUSH_TIMEOUT_S if clean else _DIRTY_FLUSH_TIMEOUT_S if send_pending else 0.0
            self._collector.close(flush_s)

    # ---- the loop

    def _loop(self) -> None:
        assert self._consumer is not None and self._reader is not None and self._collector is not None
        consumer, reader, collector = self._consumer, self._reader, self._collector
        poll_s = self._config.poll_ms / 1000.0
        interval_s = self._config.commit_interval_ms / 1000.0
        next_commit = time.monotonic() + interval_s
        metrics = self._metrics
        while not self._stopping.is_set():
            metrics.polls += 1
            restoring = not reader.idle
            messages = consumer.consume(num_messages=_POLL_BATCH, timeout=0 if restoring else poll_s)
            if messages:
                self._process(messages)
            elif self._groups:
                self._process_buffered()  # a task may be waiting out max.task.idle.ms with records buffered
            if restoring:
                reader.step(poll_s)
                self._resume_restored()
            if self._global is not None:
                self._global.poll()
            now = time.monotonic()
            wall_ms = int(time.time() * 1000)
            for task in self._tasks.values():
                if task.running:
                    task.task.punctuate(wall_ms)
            collector.serve()
            if now >= next_commit:
                self._commit()
                next_commit = time.monotonic() + interval_s

    def _process(self, messages: list[Any]) -> None:
        route = self._route
        for m in messages:
            if m.error() is not None:
                self._consumer_error(m)
                continue
            topic = m.topic()
            partition = m.partition()
            target = route.get((topic, partition))
            if target is None:
                continue  # fetched before its partition was revoked; never committed, so not lost
            target(topic, partition, m.offset(), m.key(), m.value(), m.timestamp()[1], m.headers())
        if self._groups:
            self._process_buffered()

    def _process_buffered(self) -> None:
        """Feed each task with several input partitions its records, lowest timestamp first, for as long as
        its partition group allows; then pause partitions whose buffer is still full, resume those drained."""
        assert self._consumer is not None
        consumer = self._consumer
        lags: dict[Partition, int | None] = {}

        def lag_of(tp: Partition) -> int | None:
            if tp not in lags:
                lags[tp] = self._lag(tp)
            return lags[tp]

        now_ms = int(time.time() * 1000)
        for group, process in self._groups:
            next_record = group.next_record
            record = next_record(now_ms, lag_of)
            while record is not None:
                process(*record)
                record = next_record(now_ms, lag_of)
            # Checked after processing: a buffer is over the limit only while the task waits for another
            # partition (pausing sooner would make librdkafka drop and re-fetch what it had prefetched).
            full = group.to_pause()
            if full:
                consumer.pause([TopicPartition(t, p) for t, p in full])
            drained = group.to_resume()
            if drained:
                consumer.resume([TopicPartition(t, p) for t, p in drained])

    def _lag(self, tp: Partition) -> int | None:
        """Records of `tp` on the broker beyond what was fetched (Kafka's Consumer.currentLag): the cached
        high watermark minus the position; None while either is unknown."""
        assert self._consumer is not None
        consumer = self._consumer
        partition = TopicPartition(*tp)
        low, high = consumer.get_watermark_offsets(partition, cached=True)
        if high < 0:
            return None
        position = int(consumer.position([partition])[0].offset)
        if position < 0:  # nothing consumed since assignment: fetching starts at the committed offset
            start = self._start_offset(tp, low)
            if start is None:
                return None
            position = start
        return max(0, int(high) - position)

    def _start_offset(self, tp: Partition, low: int) -> int | None:
        """Where fetching of `tp` started after assignment: its committed offset, else the log start
        (auto.offset.reset=earliest); asked of the group coordinator once per assignment."""
        start = self._start_offsets.get(tp)
        if start is None:
            assert self._consumer is not None
            try:
                committed = self._consumer.committed([TopicPartition(*tp)], timeout=_COMMITTED_TIMEOUT_S)
            except KafkaException as exc:
                log.warning("reading the committed offset of %s-%d failed: %s (retrying)", tp[0], tp[1], exc)
                return None
            start = int(committed[0].offset)
            if start < 0:
                if low < 0:
                    return None
                start = low
            self._start_offsets[tp] = start
        return start

    def _consumer_error(self, message: Any) -> None:
        """librdkafka reports transient conditions (a topic not yet in its metadata right after creation, a
        broker connection lost) as error events and recovers by itself; only a fatal error stops the
        thread."""
        err = message.error()
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.fatal():
            raise KafkaException(err)
        now = time.monotonic()
        if now - self._consumer_warned.get(err.code(), -60.0) >= 10.0:
            self._consumer_warned[err.code()] = now
            log.warning("consumer: %s (retrying)", err.str())

    # ---- commit

    def _commit(self) -> None:
        """Flush tasks, then the producer, then commit offsets, then write checkpoints (at-least-once
        order)."""
        assert self._consumer is not None and self._collector is not None
        started = time.monotonic()
        offsets: dict[tuple[str, int], int] = {}
        running = [task for task in self._tasks.values() if task.running]
        for task in running:
            offsets.update(task.task.commit())
        if self._global is not None:
            self._global.flush()
        self._collector.flush(_FLUSH_TIMEOUT_S)
        if offsets:
            self._consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
            )
        for task in running:
            self._write_checkpoint(task)
        if self._global is not None:
            self._global.checkpoint()
        self._committed.update(offsets)
        self._metrics.record_commit(time.monotonic() - started)
        if self._metrics.sample_stores:
            self._metrics.sample_store_sizes(running)
        self._purge_repartition_topics()

    def _purge_repartition_topics(self) -> None:
        """Delete repartition records below the committed offsets (Kafka Streams does the same): they are
        consumed for good, and repartition topics keep records forever (retention.ms=-1) otherwise."""
        repartition = self._factory.repartition_topics
        if not repartition or time.monotonic() < self._purge_due:
            return
        self._purge_due = time.monotonic() + self._config.repartition_purge_interval_ms / 1000.0
        for tp, future in self._purging.items():
            if future.done() and future.exception() is not None:
                log.warning("purging %s-%d failed: %s", tp.topic, tp.partition, future.exception())
        todo = [TopicPartition(t, p, o) for (t, p), o in self._committed.items() if t in repartition]
        if not todo:
            return
        if self._admin is None:
            self._admin = AdminClient(self._config.admin())
        self._purging = self._admin.delete_records(todo, operation_timeout=0)

    def _write_checkpoint(self, task: AssignedTask) -> None:
        assert self._reader is not None
        if not task.checkpointed_changelogs:
            return
        offsets = dict(task.checkpoint)
        for topic, partition in task.checkpointed_changelogs:
            _, end = self._reader.offsets(topic, partition)
            if end > 0:
                offsets[(topic, partition)] = end - 1
        if offsets != task.checkpoint:
            write_checkpoint(task.directory, offsets)
            task.checkpoint = offsets

    # ---- rebalance callbacks (run inside consume())

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._on_rebalancing()
        self._reported_running = False
        if self._tasks:
            self._commit()
        self._committed.clear()
        assert self._reader is not None
        for task_id, task in list(self._tasks.items()):
            if task.running:
                self._suspended[task_id] = task
            else:
                self._reader.remove_owner(task)
                self._close_task(task, clean=False)
        self._tasks.clear()
        self._route.clear()
        self._drop_partition_groups(consumer)
        self._publish_tasks()

    def _drop_partition_groups(self, consumer: Consumer) -> None:
        """Forget the buffered records (uncommitted, so fetched again by whoever gets the partitions) and
        lift back-pressure pauses, so a partition assigned here again is not left paused."""
        paused = [TopicPartition(t, p) for group, _ in self._groups for t, p in group.paused]
        self._groups.clear()
        self._start_offsets.clear()
        if paused:
            try:
                consumer.resume(paused)
            except KafkaException as exc:
                log.warning("resuming partitions paused for back-pressure failed: %s", exc)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group moved on without us (session timeout): offsets cannot be committed; close without
        commit."""
        log.warning(
            "lost %d partitions (group session expired): closing their tasks without commit", len(partitions)
        )
        self._on_rebalancing()
        self._reported_running = False
        assert self._reader is not None
        for task in list(self._tasks.values()) + list(self._suspended.values()):
            self._reader.remove_owner(task)
            self._close_task(task, clean=False)
        self._tasks.clear()
        self._suspended.clear()
        self._route.clear()
        self._drop_partition_groups(consumer)
        self._publish_tasks()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assert self._reader is not None and self._collector is not None
        by_task = self._factory.group_by_task((tp.topic, tp.partition) for tp in partitions)
        for task_id in [t for t in self._suspended if t not in by_task]:
            self._close_task(self._suspended.pop(task_id), clean=True)
        paused: list[TopicPartition] = []
        for task_id, task_partitions in by_task.items():
            task = self._suspended.pop(task_id, None)
            if task is None:
                task = self._factory.build_task(task_id, self._collector)
                self._start_restore(task)
            task.input_partitions = task_partitions
            self._tasks[task_id] = task
            if task.running:
                self._install_route(task)
            else:
                paused.extend(TopicPartition(t, p) for t, p in task_partitions)
        consumer.assign(partitions)
        self._publish_tasks()
        if paused:
            consumer.pause(paused)
        log.info(
            "assigned %d partitions, %d tasks (%d restoring)",
            len(partitions),
            len(by_task),
            sum(1 for t in self._tasks.values() if not t.running),
        )
        self._report_running_if_ready()

    # ---- tasks

    def _start_restore(self, task: AssignedTask) -> None:
        assert self._reader is not None
        try:
            checkpoint = read_checkpoint(task.directory)
        except CheckpointCorruptError as exc:
            log.warning("ignoring corrupt checkpoint of task %s: %s", task.task_id, exc)
            checkpoint = {}
        task.checkpoint = {}
        for store_name, (topic, partition) in task.changelogs.items():
            persistent = (topic, partition) in task.checkpointed_changelogs
            start = checkpoint.get((topic, partition)) if persistent else None
            if start is not None:
                task.checkpoint[(topic, partition)] = start
            self._reader.add(
                task,
                store_name,
                topic,
                partition,
                start,
                _restore_into(task, store_name),
                _wipe(task, store_name),
            )
        task.running = not self._reader.is_restoring(task)

    def _resume_restored(self) -> None:
        assert self._reader is not None and self._consumer is not None
        resumed: list[TopicPartition] = []
        for task in self._tasks.values():
            if not task.running and not self._reader.is_restoring(task):
                task.running = True
                self._install_route(task)
                resumed.extend(TopicPartition(t, p) for t, p in task.input_partitions)
        if resumed:
            self._consumer.resume(resumed)
            self._report_running_if_ready()

    def _install_route(self, task: AssignedTask) -> None:
        if len(task.input_partitions) == 1:
            self._route[task.input_partitions[0]] = task.task.process
            return
        config = self._config
        group = PartitionGroup(
            task.task_id,
            task.input_partitions,
            config.max_task_idle_ms,
            config.buffered_records_per_partition,
            task.task.metrics,
            {tp: task.task.prepare for tp in task.input_partitions if task.task.extracts_timestamp(tp[0])},
        )
        self._groups.append((group, task.task.process))
        for tp in task.input_partitions:
            self._route[tp] = group.appender(tp)

    def _report_running_if_ready(self) -> None:
        if not self._reported_running and all(task.running for task in self._tasks.values()):
            self._reported_running = True
            self._on_running()

    def _close_task(self, task: AssignedTask, clean: bool) -> None:
        try:
            task.task.close()
        except Exception as exc:  # closing must not hide the error that got us here
            log.warning("closing task %s failed: %s", task.task_id, exc)
        finally:
            task.release()
            self._metrics.retire(task)
        if not clean:
            log.info("task %s closed without commit", task.task_id)

    @property
    def active_tasks(self) -> tuple[str, ...]:
        """Ids ("0_1") of the tasks assigned to this thread; a snapshot safe to read from any thread."""
        return self._active_snapshot

    def _publish_tasks(self) -> None:
        self._active_snapshot = tuple(sorted(str(task_id) for task_id in self._tasks))
        self._metrics.publish([*self._tasks.values(), *self._suspended.values()])


def _restore_into(
    task: AssignedTask, store_name: str
) -> Callable[[list[tuple[bytes, bytes | None, int]]], None]:
    restore = task.task.restore

    def apply(batch: list[tuple[bytes, bytes | None, int]]) -> None:
        restore(store_name, batch)

    return apply


def _wipe(task: AssignedTask, store_name: str) -> Callable[[], None]:
    def wipe() -> None:
        task.task.wipe_store(store_name)

    return wipe
