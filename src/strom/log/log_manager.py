"""All partition logs under one data directory (one entry of Kafka's `log.dirs`), like Kafka's LogManager.

Layout of the data directory:

    .lock                              held (flock) while a LogManager has the directory open
    .kafka_cleanshutdown               present only between a clean close and the next open
    recovery-point-offset-checkpoint   per partition: every offset below is fsynced
    log-start-offset-checkpoint        per partition: the log start offset (DeleteRecords, retention)
    cleaner-offset-checkpoint          per compacted partition: first dirty offset (the cleaner's)
    <topic>-<partition>/               one Partition each
    <topic>-<partition>.<id>-delete/   a partition being deleted (removed at the next open)

The broker calls `maintain(now)` from a background thread every few seconds. Each kind of work keeps its own
cadence, as in Kafka's LogManager, however often `maintain` is called:

- retention: first `INITIAL_TASK_DELAY_MS` (30 s) after opening, then every `retention_check_interval_ms`
  (`log.retention.check.interval.ms`, 5 min); the first check comes sooner when the interval is shorter;
- the cleaner: at once, again right away while it finds work, else after `cleaner_backoff_ms`
  (`log.cleaner.backoff.ms`, 15 s);
- flush.ms, delayed file deletion and producer expiry: on every call (each has its own per-partition timer);
- the checkpoints: every `checkpoint_interval_ms`.

What retention and the cleaner did is kept in `maintenance_stats` (`MaintenanceStats`), which the broker's
metrics read when scraped.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from strom.log.checkpoint import (
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT,
    CorruptCheckpointError,
    TopicPartition,
    fsync_dir,
    read_offsets,
    write_atomically,
    write_offsets,
)
from strom.log.config import LogConfig
from strom.log.errors import InvalidTopicError, LogClosedError, LogStorageError, PartitionExistsError
from strom.log.group_commit import GroupCommit
from strom.log.partition import Clock, Partition, parse_partition_dir, system_clock

if TYPE_CHECKING:
    from strom.log.cleaner import Cleaner, CleanResult

logger = logging.getLogger(__name__)

CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
LOCK_FILE = ".lock"
DELETE_DIR_SUFFIX = "-delete"
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
INITIAL_TASK_DELAY_MS = 30_000  # Kafka's delay before the first retention check after start-up


class MaintenanceStats:
    """What retention and the cleaner have done since the data directory was opened: totals, and the
    cleaner's last cycle as Kafka's LogCleaner gauges report it (the most recent cycle that cleaned).

    Written only by the thread calling `LogManager.maintain`; read by others (a metrics scrape) without a
    lock: each field is one int or float, so a reader sees each value whole, though not all from the same
    instant.
    """

    __slots__ = (
        "cleaner_bytes_read",
        "cleaner_bytes_written",
        "cleaner_passes",
        "last_buffer_utilization",
        "last_clean_seconds",
        "last_recopy_ratio",
        "max_dirty_ratio",
        "retention_bytes_deleted",
        "retention_segments_deleted",
        "uncleanable_partitions",
    )

    def __init__(self) -> None:
        self.cleaner_passes = 0  # partition passes that rewrote segments
        self.cleaner_bytes_read = 0
        self.cleaner_bytes_written = 0
        self.last_recopy_ratio = 0.0  # bytes written / bytes read over the last cycle that cleaned
        self.last_clean_seconds = 0.0  # the longest pass of that cycle
        self.last_buffer_utilization = 0.0  # the fullest offset map of that cycle, 0..1
        self.max_dirty_ratio = 0.0  # the filthiest compacted partition seen by the last cycle
        self.uncleanable_partitions = 0
        self.retention_segments_deleted = 0
        self.retention_bytes_deleted = 0


class DataDirLockedError(LogStorageError, RuntimeError):
    """Another LogManager (in this or another process) has the data directory open."""


def validate_topic_name(topic: str) -> None:
    """Raise InvalidTopicError for names Kafka refuses."""
    if topic in (".", "..") or not _LEGAL_TOPIC.match(topic):
        raise InvalidTopicError(
            f"invalid topic name {topic!r}: use 1-249 characters from a-z, A-Z, 0-9, '.', '_' and '-', "
            "and not '.' or '..'"
        )


class LogManager:
    """The partitions of one data directory.

    Invariants: while open, this process holds an exclusive flock on `<data_dir>/.lock`; the clean-shutdown
    marker exists only after `close()` completed (partitions flushed, snapshots and checkpoints written), and
    it is removed (durably) once the next open has loaded every partition, so a crash after that open is
    treated as unclean. Failures survived: kill -9 at any point (recovery from the checkpoints, which only
    ever lag the truth), a crash during partition deletion (leftover `-delete` directories are removed).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        default_config: LogConfig | None = None,
        config_for: Callable[[str], LogConfig] | None = None,
        clock: Clock = system_clock,
        recovery_threads: int = 2,
        checkpoint_interval_ms: int = 60_000,
        cleaner_enabled: bool = True,
        retention_check_interval_ms: int = 300_000,
        cleaner_backoff_ms: int = 15_000,
    ) -> None:
        """Open `data_dir` (created if missing) and load every partition in it, in parallel.

        `config_for(topic)` gives a topic's LogConfig (the broker keeps topic configs); without it every topic
        gets `default_config`. Raises DataDirLockedError if the directory is already open.
        """
        self.data_dir = data_dir
        self.default_config = default_config or LogConfig()
        self._config_for = config_for
        self.clock = clock
        self.checkpoint_interval_ms = checkpoint_interval_ms
        if retention_check_interval_ms < 1:
            raise ValueError(
                f"retention_check_interval_ms must be at least 1, not {retention_check_interval_ms}"
            )
        if cleaner_backoff_ms < 0:
            raise ValueError(f"cleaner_backoff_ms must not be negative, not {cleaner_backoff_ms}")
        self.retention_check_interval_ms = retention_check_interval_ms
        self.cleaner_backoff_ms = cleaner_backoff_ms
        self._lock = threading.RLock()
        self._partitions: dict[TopicPartition, Partition] = {}
        self._closed = False
        self._checkpoint_lock = threading.Lock()
        self._group_commit = GroupCommit()
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise DataDirLockedError(
                f"data directory {data_dir} is in use by another strom process"
            ) from None
        try:
            self._load(max(1, recovery_threads))
        except BaseException:
            for part in self._partitions.values():
                part.close()
            os.close(self._lock_fd)
            raise
        self._group_commit.start()
        opened = clock()
        self._last_checkpoint_ms = opened
        self._next_retention_ms = opened + min(INITIAL_TASK_DELAY_MS, retention_check_interval_ms)
        self._next_clean_ms = opened
        self.maintenance_stats = MaintenanceStats()
        self._cleaner = None
        if cleaner_enabled:
            from strom.log.cleaner import Cleaner

            self._cleaner = Cleaner(data_dir, clock=clock)

    def config_for(self, topic: str) -> LogConfig:
        return self._config_for(topic) if self._config_for else self.default_config

    # ----- loading -----

    def _load(self, threads: int) -> None:
        clean_marker = self.data_dir / CLEAN_SHUTDOWN_FILE
        clean = clean_marker.exists()
        recovery_points = self._read_checkpoint(RECOVERY_POINT_CHECKPOINT)
        log_starts = self._read_checkpoint(LOG_START_OFFSET_CHECKPOINT)
        todo: list[tuple[TopicPartition, Path]] = []
        for entry in os.scandir(self.data_dir):
            if not entry.is_dir():
                continue
            if entry.name.endswith(DELETE_DIR_SUFFIX):
                shutil.rmtree(entry.path, ignore_errors=True)
                continue
            tp = parse_partition_dir(entry.name)
            if tp is not None and _LEGAL_TOPIC.match(tp[0]):
                todo.append((tp, Path(entry.path)))

        def load_one(item: tuple[TopicPartition, Path]) -> tuple[TopicPartition, Partition]:
            tp, path = item
            part = Partition.open(
                path,
                self.config_for(tp[0]),
                clock=self.clock,
                recovery_point=recovery_points.get(tp, 0),
                log_start_offset=log_starts.get(tp, 0),
                clean_shutdown=clean and tp in recovery_points,
                on_log_start_change=self._note_log_start_change,
                group_commit=self._group_commit,
            )
            return tp, part

        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="strom-log-recovery") as pool:
            for tp, part in pool.map(load_one, todo):
                self._partitions[tp] = part
        if clean:
            clean_marker.unlink()
            fsync_dir(self.data_dir)
        self.checkpoint()

    def _read_checkpoint(self, name: str) -> dict[TopicPartition, int]:
        try:
            return read_offsets(self.data_dir / name)
        except CorruptCheckpointError:
            return {}  # recovering everything from offset 0 is always safe

    def _note_log_start_change(self) -> None:
        """Called under a partition's lock when its log start offset moves (DeleteRecords, retention): the
        checkpoint is written at once, so records deleted before a crash stay deleted after it."""
        self.checkpoint()

    # ----- partitions -----

    def partitions(self) -> dict[TopicPartition, Partition]:
        """A copy of the open partitions by (topic, partition)."""
        with self._lock:
            return dict(self._partitions)

    def get(self, topic: str, partition: int) -> Partition | None:
        with self._lock:
            return self._partitions.get((topic, partition))

    def create(self, topic: str, partition: int, config: LogConfig | None = None) -> Partition:
        """Create the directory and empty log of a new partition. PartitionExistsError if it exists."""
        validate_topic_name(topic)
        if partition < 0:
            raise ValueError(f"partition number {partition} must not be negative")
        with self._lock:
            self._check_open()
            tp = (topic, partition)
            path = self.data_dir / f"{topic}-{partition}"
            if tp in self._partitions or path.exists():
                raise PartitionExistsError(f"partition {topic}-{partition} already exists in {self.data_dir}")
            part = Partition.open(
                path,
                config or self.config_for(topic),
                clock=self.clock,
                on_log_start_change=self._note_log_start_change,
                group_commit=self._group_commit,
            )
            fsync_dir(self.data_dir)
            self._partitions[tp] = part
            return part

    def get_or_create(self, topic: str, partition: int, config: LogConfig | None = None) -> Partition:
        with self._lock:
            existing = self._partitions.get((topic, partition))
            return existing if existing is not None else self.create(topic, partition, config)

    def delete(self, topic: str, partition: int) -> bool:
        """Delete a partition and all its data; returns False if it does not exist.

        The directory is first renamed `<topic>-<partition>.<id>-delete` (atomic), so a crash midway leaves
        nothing that could be mistaken for the partition; the next open removes leftovers."""
        with self._lock:
            self._check_open()
            part = self._partitions.pop((topic, partition), None)
            if part is None:
                return False
            part.delete()
            doomed = self.data_dir / f"{topic}-{partition}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}"
            os.replace(part.dir, doomed)
            fsync_dir(self.data_dir)
            shutil.rmtree(doomed, ignore_errors=True)
            if self._cleaner is not None:
                self._cleaner.forget((topic, partition))
                self.maintenance_stats.uncleanable_partitions = len(self._cleaner.uncleanable)
            self.checkpoint()
            return True

    # ----- maintenance -----

    def maintain(self, now_ms: int | None = None, *, force: bool = False) -> None:
        """One round of background work (see module doc). Call it from one thread at a time.

        `force` runs retention and the cleaner now whatever their schedules (an operator's or a test's
        explicit pass); their next scheduled runs count from it."""
        now = self.clock() if now_ms is None else now_ms
        parts = self.partitions()
        retention_due = force or now >= self._next_retention_ms
        for part in parts.values():
            if retention_due:
                self._apply_retention(part, now)
            part.maintain(now, retention=False)
        if retention_due:
            self._next_retention_ms = now + self.retention_check_interval_ms
        if self._cleaner is not None and (force or now >= self._next_clean_ms):
            compacted = {tp: p for tp, p in parts.items() if p.config.compact}
            # skips a partition closed or deleted mid-pass; after a pass that cleaned something, look again
            # at once (the next call), as Kafka's cleaner thread does, else back off
            cleaned = self._cleaner.maintain(compacted, now) if compacted else []
            self._next_clean_ms = now if cleaned else now + self.cleaner_backoff_ms
            self._count_cleaning(self._cleaner, cleaned)
        if now - self._last_checkpoint_ms >= self.checkpoint_interval_ms:
            self.checkpoint()
            self._last_checkpoint_ms = now

    def _apply_retention(self, part: Partition, now: int) -> None:
        """Retention on one partition, counted in `maintenance_stats`. The partition's lock is held from
        the size snapshot to the deletion so that the bytes counted are exactly those of the deleted
        segments (a DeleteRecords cannot delete some in between)."""
        with part.lock:
            try:
                sizes = [s.size for s in part.segments_snapshot()]
                deleted = part.apply_retention(now)
            except LogClosedError:  # deleted or closed since `parts` was taken
                return
        if deleted:
            stats = self.maintenance_stats
            stats.retention_segments_deleted += deleted
            stats.retention_bytes_deleted += sum(sizes[:deleted])

    def _count_cleaning(self, cleaner: Cleaner, cleaned: list[CleanResult]) -> None:
        stats = self.maintenance_stats
        stats.max_dirty_ratio = cleaner.max_dirty_ratio
        stats.uncleanable_partitions = len(cleaner.uncleanable)
        if not cleaned:
            return
        read = sum(r.bytes_read for r in cleaned)
        written = sum(r.bytes_written for r in cleaned)
        stats.cleaner_passes += len(cleaned)
        stats.cleaner_bytes_read += read
        stats.cleaner_bytes_written += written
        stats.last_recopy_ratio = written / read if read else 0.0
        stats.last_clean_seconds = max(r.seconds for r in cleaned)
        stats.last_buffer_utilization = max(r.map_entries for r in cleaned) / cleaner.max_map_entries

    def checkpoint(self) -> None:
        """Write the recovery-point and log-start-offset checkpoints now.

        Takes only the checkpoint lock, never a partition's or the manager's: it is called from inside
        partition locks, while `delete` and `close` take the manager lock and then partition locks."""
        with self._checkpoint_lock:
            parts = dict(self._partitions)  # one atomic copy (the GIL), no lock needed
            write_offsets(
                self.data_dir / RECOVERY_POINT_CHECKPOINT, {tp: p.recovery_point for tp, p in parts.items()}
            )
            write_offsets(
                self.data_dir / LOG_START_OFFSET_CHECKPOINT,
                {tp: p.log_start_offset for tp, p in parts.items()},
            )

    def flush(self) -> None:
        """fsync every partition."""
        for part in self.partitions().values():
            part.flush()

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError(f"log manager of {self.data_dir} is closed")

    def close(self) -> None:
        """Close every partition, write the checkpoints and the clean-shutdown marker, release the lock.
        Stop the thread calling `maintain` first. When a partition or the checkpoints cannot be written (a
        full disk), everything is still closed and released, no marker is written, and LogStorageError
        says what failed."""
        with self._lock:
            if self._closed:
                return
            failures: list[str] = []
            self._group_commit.close()  # answers every waiting acknowledgement first
            for part in self._partitions.values():
                try:
                    part.close()
                except LogStorageError as exc:  # already logged by the partition
                    failures.append(f"{part.dir.name}: {exc}")
                    logger.error("partition %s did not close cleanly: %s", part.dir.name, exc)
            try:
                self.checkpoint()
                if not failures:
                    marker = json.dumps({"version": 0, "brokerEpoch": -1}).encode()
                    write_atomically(self.data_dir / CLEAN_SHUTDOWN_FILE, marker)
            except OSError as exc:
                failures.append(f"checkpoints: {exc}")
                logger.error("cannot write the checkpoints of %s at close: %s", self.data_dir, exc)
            if failures:
                logger.error(
                    "%s closed without the clean-shutdown marker: the next start recovers what was not "
                    "flushed, as after a crash",
                    self.data_dir,
                )
            self._closed = True
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            if failures:
                # Raised only now, with every file and the directory lock released, so a caller can
                # report it and a later open of the same directory is not refused.
                failed = "; ".join(failures)
                raise LogStorageError(f"closed {self.data_dir} without a clean shutdown: {failed}")

    def __enter__(self) -> LogManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
