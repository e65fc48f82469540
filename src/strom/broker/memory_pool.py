"""The memory of received requests, shared by all connections: Kafka's `queued.max.request.bytes` pool.

Why: each connection is bounded on its own (`socket.request.max.bytes` per frame, a few frames read ahead),
but many connections together are not. Every connection tells the pool how many bytes its received and
not yet answered requests hold, counting an incomplete frame at its announced size as Kafka reserves a
whole request at its size prefix. While the total is at or over the capacity, connections stop reading new
requests (a frame already begun may finish, so no set of half-received frames can wait on each other); as
answers free memory, the waiting connections read again in the order they stopped.
"""

from __future__ import annotations

from collections.abc import Callable


class RequestMemoryPool:
    """Invariants: `used` is the sum of the last amounts reported per holder; `full` only when a capacity
    is set (Kafka's default, -1, is unbounded); each waiter is called once per time it waited.
    Survives: holders that disappear without releasing (`release` is idempotent)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._held: dict[object, int] = {}
        self._waiting: dict[object, Callable[[], None]] = {}

    @property
    def full(self) -> bool:
        return 0 < self.capacity <= self.used

    def hold(self, holder: object, nbytes: int) -> None:
        """Record that `holder` now holds `nbytes`; wake waiters if that freed the pool."""
        self.used += nbytes - self._held.get(holder, 0)
        if nbytes:
            self._held[holder] = nbytes
        else:
            self._held.pop(holder, None)
        if self._waiting and not self.full:
            waiting, self._waiting = self._waiting, {}
            for wake in waiting.values():
                wake()

    def release(self, holder: object) -> None:
        self._waiting.pop(holder, None)
        self.hold(holder, 0)

    def wait(self, holder: object, wake: Callable[[], None]) -> None:
        """Call `wake` once the pool is no longer full."""
        self._waiting[holder] = wake
