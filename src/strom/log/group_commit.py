"""Group commit: acks=all answered only once the records are on disk, with one fsync shared by everyone
waiting on the same partition.

A single-node broker has no replicas to make an acknowledged record survive a power loss, so with
`log.flush.on.ack=true` (the default) the produce handler asks `GroupCommit` for durability up to the end of
its append and awaits the answer. The flusher thread takes every request queued so far, keeps the highest
offset per partition and calls `Partition.sync_to` once for each (an fdatasync of the segments written
since the last one, and of the directory when a segment is new), the partitions of one group in parallel
on a few sync threads (the file system commits concurrent fdatasyncs together, as one journal commit on
ext4, so six partitions cost about one fsync, not six); requests that arrive during those fsyncs form the
next group. Under load one fsync therefore covers many producers' requests, and the event loop
never blocks on the disk: it awaits a future the thread resolves.

Invariants: a future resolves only after `sync_to` covered its offset (or with the failure that stopped it:
a PartitionOfflineError, KAFKA_STORAGE_ERROR); the threads belong to the object (started by `start`,
stopped and joined by `close`, which first serves every request already queued).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

SYNC_THREADS = 4  # partitions of one group synced at once


class Syncable(Protocol):
    """What group commit needs of a partition log: an fsync of everything below an offset."""

    def sync_to(self, offset: int) -> None: ...


class GroupCommit:
    """The flusher thread of one LogManager and its queue of durability requests."""

    def __init__(self) -> None:
        self._pending: list[tuple[Syncable, int, Future[None]]] = []
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._syncers: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._syncers = ThreadPoolExecutor(max_workers=SYNC_THREADS, thread_name_prefix="strom-log-sync")
        self._thread = threading.Thread(target=self._run, name="strom-log-group-commit", daemon=True)
        self._thread.start()

    def request(self, partition: Syncable, offset: int) -> Future[None]:
        """A future that resolves once every record of `partition` below `offset` is on disk."""
        future: Future[None] = Future()
        with self._wake:
            if self._stopping or self._thread is None:
                raise RuntimeError("group commit is not running")
            self._pending.append((partition, offset, future))
            self._wake.notify()
        return future

    def close(self) -> None:
        """Serve what is queued, then stop and join the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._syncers is not None:
            self._syncers.shutdown()
            self._syncers = None

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                group, self._pending = self._pending, []
                stopping = self._stopping
            self._commit(group)
            if stopping and not group:
                return

    def _commit(self, group: list[tuple[Syncable, int, Future[None]]]) -> None:
        """One fsync per partition for the highest offset asked of it, then every waiter answered."""
        highest: dict[int, tuple[Syncable, int]] = {}
        for partition, offset, _ in group:
            seen = highest.get(id(partition))
            if seen is None or offset > seen[1]:
                highest[id(partition)] = (partition, offset)
        syncs: dict[int, Future[None]] = {}
        for key, (partition, offset) in highest.items():
            if len(highest) > 1 and self._syncers is not None:
                syncs[key] = self._syncers.submit(partition.sync_to, offset)
            else:
                done: Future[None] = Future()
                syncs[key] = done
                try:
                    partition.sync_to(offset)
                except Exception as exc:  # answered to the waiters: the handler maps it to an error code
                    done.set_exception(exc)
                else:
                    done.set_result(None)
        for partition, _, future in group:
            failure = syncs[id(partition)].exception()  # waits for that partition's sync
            if failure is None:
                future.set_result(None)
            else:
                future.set_exception(failure)
