"""Which tasks exist for a topology and how one is built: task ids from assigned partitions, task directories,
locks.

A task is (sub-topology, partition): it reads partition p of every source topic of its sub-topology, and its
stores' changelogs are partition p of their changelog topics. Its directory
`<state.dir>/<application.id>/<s>_<p>` holds the stores' files and the `.checkpoint`; a lock file keeps a
second instance sharing the state dir out of it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from strom.streams.processor.context import RecordCollector, TaskId
from strom.streams.runtime.config import StreamsConfig
from strom.streams.runtime.errors import StateDirLockedError
from strom.streams.state.cache import RecordCacheBudget
from strom.streams.task import GlobalStateTask, StreamTask
from strom.streams.topology import Topology

_LOCK_FILE = ".lock"


@dataclass(eq=False)
class AssignedTask:
    """A StreamTask plus what the runtime tracks about it: its input partitions, changelogs, checkpoint,
    lock."""

    task_id: TaskId
    task: StreamTask
    directory: Path
    lock_fd: int
    changelogs: dict[str, tuple[str, int]]
    checkpointed_changelogs: set[tuple[str, int]]
    checkpoint: dict[tuple[str, int], int] = field(default_factory=dict)
    input_partitions: list[tuple[str, int]] = field(default_factory=list)
    running: bool = False

    def release(self) -> None:
        if self.lock_fd >= 0:
            os.close(self.lock_fd)  # closing the descriptor drops the flock
            self.lock_fd = -1


class TaskFactory:
    """Builds the tasks of one topology for one Streams instance.

    Invariant: every task built here holds the exclusive lock of its directory until `AssignedTask.release()`.
    """

    def __init__(self, topology: Topology, config: StreamsConfig, partitions: dict[str, int]) -> None:
        self._topology = topology
        self._config = config
        self._app_config = dict(config.originals)
        self._partitions = partitions
        self.app_dir = config.state_dir / config.application_id
        self.global_dir = self.app_dir / "global"
        self._subtopology_of: dict[str, int] = {}
        self.repartition_topics: frozenset[str] = frozenset()
        for group in topology.topic_groups(config.application_id):
            for topic in group.source_topics:
                self._subtopology_of[topic] = group.subtopology
            self.repartition_topics |= frozenset(group.repartition_sources)
        self.subscribed_topics = frozenset(self._subtopology_of)
        self._cache = RecordCacheBudget(config.cache_max_bytes)
        self._global_task: GlobalStateTask | None = None

    def group_by_task(self, partitions: Iterable[tuple[str, int]]) -> dict[TaskId, list[tuple[str, int]]]:
        tasks: dict[TaskId, list[tuple[str, int]]] = {}
        for topic, partition in partitions:
            task_id = TaskId(self._subtopology_of[topic], partition)
            tasks.setdefault(task_id, []).append((topic, partition))
        for tps in tasks.values():
            tps.sort()
        return tasks

    def build_global_task(self, collector: RecordCollector) -> GlobalStateTask | None:
        """The instance's global-table task, or None when the topology has no GlobalKTable."""
        if not self._topology.global_topics:
            return None
        self.global_dir.mkdir(parents=True, exist_ok=True)
        self._global_task = GlobalStateTask(self._topology, self._app_config, self.global_dir, collector)
        return self._global_task

    @property
    def global_topics(self) -> list[str]:
        return list(self._topology.global_topics)

    def build_task(self, task_id: TaskId, collector: RecordCollector) -> AssignedTask:
        directory = self.app_dir / str(task_id)
        directory.mkdir(parents=True, exist_ok=True)
        lock_fd = lock_directory(directory)
        try:
            task = StreamTask(
                task_id,
                self._topology,
                self._app_config,
                directory,
                collector,
                self._cache,
                self._global_task,
            )
            changelogs = dict(task.changelog_partitions())
            persistent = task.persistent_stores()
        except BaseException:
            os.close(lock_fd)
            raise
        return AssignedTask(
            task_id=task_id,
            task=task,
            directory=directory,
            lock_fd=lock_fd,
            changelogs=changelogs,
            checkpointed_changelogs={tp for store, tp in changelogs.items() if store in persistent},
        )


def lock_directory(directory: Path) -> int:
    """Take the exclusive lock of `directory` or raise StateDirLockedError; returns the descriptor holding
    it."""
    fd = os.open(directory / _LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateDirLockedError(
            f"state directory {directory} is locked by another Streams instance of "
            "this application; give each "
            "instance its own state.dir"
        ) from None
    return fd
