"""The broker's view of its partition logs (a `strom.log.LogManager`) and the thread that maintains them.

Why a thread: retention deletes files and the cleaner rewrites whole segments; on the event loop either
would stall every connection. `strom.log.Partition` takes its own lock in every public method, so the
maintenance thread and the event loop (appends, reads) share partitions safely and the loop waits at most
for one segment swap.

Opening never deletes a partition: the broker compares `on_disk()` with its topic registry and decides
(adopt directories the registry does not know, finish deletions the registry remembers), then `ensure`s the
registered partitions exist.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from strom.broker.errors import StorageError
from strom.log.config import LogConfig
from strom.log.log_manager import LogManager
from strom.log.partition import Partition

log = logging.getLogger("strom.broker")

TopicPartition = tuple[str, int]


class BrokerLogs:
    """Partition logs by (topic, index), plus background maintenance.

    Invariants: every partition directory in the data directory is open; maintenance runs on one thread at
    a time. Survives: an exception in a maintenance pass (logged; the next pass runs).
    """

    def __init__(
        self,
        data_dir: Path,
        config_for: Callable[[str], LogConfig],
        *,
        retention_check_interval_ms: int = 300_000,
        cleaner_backoff_ms: int = 15_000,
    ) -> None:
        self.manager = LogManager(
            data_dir,
            config_for=config_for,
            retention_check_interval_ms=retention_check_interval_ms,
            cleaner_backoff_ms=cleaner_backoff_ms,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_disk(self) -> dict[str, int]:
        """topic -> partition count implied by its directories (the highest partition number + 1)."""
        counts: dict[str, int] = {}
        for topic, index in self.manager.partitions():
            counts[topic] = max(counts.get(topic, 0), index + 1)
        return counts

    def ensure(self, expected: Iterable[TopicPartition]) -> None:
        """Open these partitions, creating empty logs for any whose directory is missing."""
        for topic, index in expected:
            if self.manager.get(topic, index) is None:
                log.warning("partition %s-%d has no directory: creating an empty log", topic, index)
                self.manager.get_or_create(topic, index)

    def get(self, topic: str, index: int) -> Partition | None:
        return self.manager.get(topic, index)

    def create(self, topic: str, indexes: range, config: LogConfig) -> None:
        """Create empty logs for new partitions; on failure none of them remains (StorageError when the
        data directory refused a write)."""
        try:
            for index in indexes:
                self.manager.create(topic, index, config)
        except BaseException as exc:
            self.discard(topic, indexes)
            if isinstance(exc, OSError):
                raise StorageError(f"could not create the logs of {topic}: {exc}") from exc
            raise

    def delete(self, topic: str, indexes: Iterable[int]) -> None:
        """Delete these partitions' logs. Every one is attempted even when one fails (a full disk can
        refuse the checkpoint written after a deletion); the first failure is raised at the end."""
        failure: OSError | None = None
        for index in indexes:
            try:
                self.manager.delete(topic, index)
            except OSError as exc:
                failure = failure or exc
        if failure is not None:
            raise StorageError(f"could not finish deleting the logs of {topic}: {failure}") from failure

    def discard(self, topic: str, indexes: Iterable[int]) -> None:
        """`delete` for undoing a failed change: a failure is logged, so it never hides the original one
        (partitions left behind are adopted or removed at the next start, never silently lost)."""
        try:
            self.delete(topic, indexes)
        except StorageError as exc:
            log.error("%s", exc)

    def update_config(self, topic: str, indexes: Iterable[int], config: LogConfig) -> None:
        for index in indexes:
            partition = self.manager.get(topic, index)
            if partition is not None:
                partition.update_config(config)

    def maintain(self) -> None:
        """One pass of retention, compaction, timed flushes, delayed deletes and checkpoints, now."""
        self._maintain(force=True)

    def _maintain(self, *, force: bool) -> None:
        try:
            self.manager.maintain(force=force)
        except Exception:
            log.exception("log maintenance failed")

    def start_maintenance(self, interval_s: float) -> None:
        """Wake every `interval_s`; retention and the cleaner run when their own intervals are due."""

        def run() -> None:
            while not self._stop.wait(interval_s):
                self._maintain(force=False)

        self._thread = threading.Thread(target=run, name="strom-log-maintenance", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop maintenance, then flush and close every partition and write the clean-shutdown marker."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.manager.close()
