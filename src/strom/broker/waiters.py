"""Wake long-polling Fetch requests when data is appended, without polling loops.

A Fetch that has fewer than `min_bytes` available parks one future per partition it reads; an append to any
of those partitions resolves them, and the Fetch re-reads. Everything runs on the broker's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

TopicPartition = tuple[str, int]


class AppendWaiters:
    """Futures waiting for appends, per partition. Invariant: a resolved future is removed from every set."""

    def __init__(self) -> None:
        self._waiting: dict[TopicPartition, set[asyncio.Future[None]]] = {}

    def notify(self, tp: TopicPartition) -> None:
        """Called after an append to `tp`: wake every Fetch parked on it."""
        futures = self._waiting.pop(tp, None)
        if futures:
            for future in futures:
                if not future.done():
                    future.set_result(None)

    async def wait(self, tps: Iterable[TopicPartition], timeout: float) -> bool:
        """Park until an append to one of `tps` or `timeout` seconds pass; True if woken by an append."""
        if timeout <= 0:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        keys = list(tps)
        for tp in keys:
            self._waiting.setdefault(tp, set()).add(future)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            for tp in keys:
                futures = self._waiting.get(tp)
                if futures is not None:
                    futures.discard(future)
                    if not futures:
                        del self._waiting[tp]
