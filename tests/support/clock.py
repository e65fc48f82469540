"""The one fake clock of the test suite: wall-clock milliseconds that move only when the test moves them.

strom's log, retention, cleaner and group coordinator take a `clock: Callable[[], int]` returning epoch
milliseconds; a test passes a FakeClock and sets `now` (or calls `advance`) to step time deterministically.
"""

from __future__ import annotations

# A plausible present (November 2023), so timestamps derived from it look like real ones.
DEFAULT_NOW_MS = 1_700_000_000_000


class FakeClock:
    """Epoch milliseconds held in `now`; calling the clock reads it, nothing else changes it."""

    def __init__(self, now: int = DEFAULT_NOW_MS) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms
