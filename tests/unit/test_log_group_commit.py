"""strom.log.group_commit: requests queued while a sync runs share the next one; a failed sync fails only
the waiters of its partition; close serves what is queued."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, cast

import pytest

from strom.log.errors import PartitionOfflineError
from strom.log.group_commit import GroupCommit
from strom.log.partition import Partition


class FakePartition:
    """Counts `sync_to` calls; the first one blocks until `release` is set, so requests pile up."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[int] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.fail = fail

    def sync_to(self, offset: int) -> None:
        self.calls.append(offset)
        self.entered.set()
        self.release.wait(10)
        if self.fail:
            raise PartitionOfflineError("fsync failed")


def as_partition(fake: FakePartition) -> Partition:
    return cast(Partition, fake)


@pytest.fixture
def commit() -> Any:
    group = GroupCommit()
    group.start()
    yield group
    group.close()


def test_requests_queued_during_a_sync_share_the_next_one(commit: GroupCommit) -> None:
    part = FakePartition()
    first = commit.request(as_partition(part), 10)
    assert part.entered.wait(10)
    waiting = [commit.request(as_partition(part), offset) for offset in range(11, 31)]
    part.release.set()
    for future in [first, *waiting]:
        assert future.result(10) is None
    assert part.calls == [10, 30]  # two syncs for 21 requests: the second covers the highest offset


def test_a_failed_sync_fails_only_its_partitions_waiters(commit: GroupCommit) -> None:
    broken, fine = FakePartition(fail=True), FakePartition()
    broken.release.set()
    fine.release.set()
    results: list[Future[None]] = [
        commit.request(as_partition(broken), 5),
        commit.request(as_partition(fine), 5),
        commit.request(as_partition(broken), 7),
    ]
    with pytest.raises(PartitionOfflineError):
        results[0].result(10)
    assert results[1].result(10) is None
    with pytest.raises(PartitionOfflineError):
        results[2].result(10)


def test_close_serves_what_is_queued_and_refuses_later_requests() -> None:
    group = GroupCommit()
    group.start()
    part = FakePartition()
    part.release.set()
    queued = [group.request(as_partition(part), offset) for offset in range(1, 6)]
    group.close()
    assert all(f.done() and f.exception() is None for f in queued)
    with pytest.raises(RuntimeError, match="not running"):
        group.request(as_partition(part), 9)
