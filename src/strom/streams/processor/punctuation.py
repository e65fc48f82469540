"""Punctuation schedules: callbacks fired by stream time or by the wall clock, with Kafka Streams' alignment.

A stream-time schedule is aligned to 0 and fires as soon as stream time reaches its next multiple; a
wall-clock schedule first fires ``interval`` after it was made. After a gap longer than the interval a
schedule fires once, not once per missed interval, and the next time stays on the original grid
(``PunctuationSchedule.next``).
"""

from __future__ import annotations

import enum
import heapq
import itertools
from collections.abc import Callable


class PunctuationType(enum.Enum):
    STREAM_TIME = "stream_time"
    WALL_CLOCK_TIME = "wall_clock_time"


class Cancellable:
    """Returned by ``schedule``; ``cancel()`` stops future punctuations of that schedule."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class PunctuationQueue:
    """Schedules ordered by next due time. Invariant: every live schedule is in the heap exactly once."""

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, int, Callable[[int], None], Cancellable]] = []
        self._seq = itertools.count()

    def schedule(self, first_due: int, interval: int, callback: Callable[[int], None]) -> Cancellable:
        handle = Cancellable()
        heapq.heappush(self.heap, (first_due, next(self._seq), interval, callback, handle))
        return handle

    def punctuate(self, now: int) -> bool:
        """Fire every schedule due at ``now``; returns whether any fired."""
        heap = self.heap
        fired = False
        while heap and heap[0][0] <= now:
            due, _seq, interval, callback, handle = heapq.heappop(heap)
            if handle.cancelled:
                continue
            missed = (now - due) // interval
            heapq.heappush(heap, (due + (missed + 1) * interval, next(self._seq), interval, callback, handle))
            callback(now)
            fired = True
        return fired
