"""Window definitions and windowed keys, with Kafka Streams' arithmetic.

Time windows are half-open ``[start, end)`` in milliseconds, aligned to the epoch: a window starts at every
multiple of the advance, windows with a negative start do not exist, and a window accepts records until stream
time reaches ``end + grace`` (``KStreamWindowAggregate``). Sliding and session windows will be further classes
here with their own ``windows_for``.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Window(NamedTuple):
    """A time interval ``[start, end)`` in epoch milliseconds."""

    start: int
    end: int

    def __repr__(self) -> str:
        return f"[{self.start},{self.end})"


class Windowed(NamedTuple):
    """The key of a windowed result: the record key and the window it was aggregated in."""

    key: Any
    window: Window

    def __repr__(self) -> str:
        return f"[{self.key!r}@{self.window.start}/{self.window.end}]"


class TimeWindows:
    """Tumbling (advance == size) or hopping (advance < size) windows with an explicit grace period.

    Invariants: ``0 < advance_ms <= size_ms`` and ``grace_ms >= 0``; instances are immutable.
    """

    __slots__ = ("advance_ms", "grace_ms", "size_ms")

    def __init__(self, size_ms: int, grace_ms: int, advance_ms: int | None = None) -> None:
        if size_ms <= 0:
            raise ValueError(f"window size must be > 0 ms, got {size_ms}")
        if grace_ms < 0:
            raise ValueError(f"grace period must be >= 0 ms, got {grace_ms}")
        advance = size_ms if advance_ms is None else advance_ms
        if advance <= 0 or advance > size_ms:
            raise ValueError(f"window advance must be > 0 and <= size ({size_ms} ms), got {advance}")
        self.size_ms = size_ms
        self.grace_ms = grace_ms
        self.advance_ms = advance

    @classmethod
    def of_size_and_grace(cls, size_ms: int, grace_ms: int) -> TimeWindows:
        """Tumbling windows of ``size_ms`` that accept late records for ``grace_ms`` after they end."""
        return cls(size_ms, grace_ms)

    @classmethod
    def of_size_without_grace(cls, size_ms: int) -> TimeWindows:
        """Tumbling windows that close as soon as stream time reaches their end."""
        return cls(size_ms, 0)

    of_size_with_no_grace = of_size_without_grace  # Kafka's name, ofSizeWithNoGrace

    def advance_by(self, advance_ms: int) -> TimeWindows:
        """Hopping windows: a new window starts every ``advance_ms``."""
        return TimeWindows(self.size_ms, self.grace_ms, advance_ms)

    @property
    def retention_ms(self) -> int:
        """How long a window must be kept: until it can no longer receive records."""
        return self.size_ms + self.grace_ms

    def window_starts(self, timestamp: int) -> range:
        """Starts of every window containing ``timestamp``, ascending."""
        advance = self.advance_ms
        first = (max(0, timestamp - self.size_ms + advance) // advance) * advance
        return range(first, timestamp + 1, advance)

    def windows_for(self, timestamp: int) -> list[Window]:
        """Every window containing ``timestamp``, ascending by start."""
        size = self.size_ms
        return [Window(s, s + size) for s in self.window_starts(timestamp)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimeWindows) and (self.size_ms, self.grace_ms, self.advance_ms) == (
            other.size_ms,
            other.grace_ms,
            other.advance_ms,
        )

    def __hash__(self) -> int:
        return hash((self.size_ms, self.grace_ms, self.advance_ms))

    def __repr__(self) -> str:
        return f"TimeWindows(size_ms={self.size_ms}, advance_ms={self.advance_ms}, grace_ms={self.grace_ms})"


class JoinWindows:
    """The time difference within which two stream records join: a left record at ``t`` joins right records
    with timestamps in ``[t - before_ms, t + after_ms]`` (both ends inclusive). Left and outer joins emit a
    record without partner only after ``t + after_ms + grace_ms`` (right side: ``t + before_ms + grace_ms``)
    has passed in stream time, so no spurious ``(value, None)`` results are produced (KAFKA-10847).

    Invariants: ``before_ms + after_ms >= 0`` and ``grace_ms >= 0``; instances are immutable.
    """

    __slots__ = ("after_ms", "before_ms", "grace_ms")

    def __init__(self, before_ms: int, after_ms: int, grace_ms: int) -> None:
        if before_ms + after_ms < 0:
            raise ValueError(f"join window is negative: before {before_ms} + after {after_ms} ms < 0")
        if grace_ms < 0:
            raise ValueError(f"grace period must be >= 0 ms, got {grace_ms}")
        self.before_ms = before_ms
        self.after_ms = after_ms
        self.grace_ms = grace_ms

    @classmethod
    def of_time_difference_and_grace(cls, difference_ms: int, grace_ms: int) -> JoinWindows:
        if difference_ms < 0:
            raise ValueError(f"time difference must be >= 0 ms, got {difference_ms}")
        return cls(difference_ms, difference_ms, grace_ms)

    @classmethod
    def of_time_difference_without_grace(cls, difference_ms: int) -> JoinWindows:
        return cls.of_time_difference_and_grace(difference_ms, 0)

    of_time_difference_with_no_grace = of_time_difference_without_grace  # Kafka's name

    def before(self, ms: int) -> JoinWindows:
        """Asymmetric window: how far back in time a left record looks for right records."""
        return JoinWindows(ms, self.after_ms, self.grace_ms)

    def after(self, ms: int) -> JoinWindows:
        """Asymmetric window: how far ahead in time a left record looks for right records."""
        return JoinWindows(self.before_ms, ms, self.grace_ms)

    @property
    def size_ms(self) -> int:
        return self.before_ms + self.after_ms

    @property
    def retention_ms(self) -> int:
        return self.before_ms + self.after_ms + self.grace_ms

    def __repr__(self) -> str:
        return f"JoinWindows(before_ms={self.before_ms}, after_ms={self.after_ms}, grace_ms={self.grace_ms})"


class SessionWindows:
    """Sessions per key: records closer than ``gap_ms`` to each other fall into one session ``[first, last]``
    (both ends inclusive); a record that bridges two sessions merges them. A session closes when stream time
    passes ``end + grace_ms``; records that would only extend closed sessions are dropped.

    Invariants: ``gap_ms > 0`` and ``grace_ms >= 0``; instances are immutable.
    """

    __slots__ = ("gap_ms", "grace_ms")

    def __init__(self, gap_ms: int, grace_ms: int) -> None:
        if gap_ms <= 0:
            raise ValueError(f"session inactivity gap must be > 0 ms, got {gap_ms}")
        if grace_ms < 0:
            raise ValueError(f"grace period must be >= 0 ms, got {grace_ms}")
        self.gap_ms = gap_ms
        self.grace_ms = grace_ms

    @classmethod
    def of_inactivity_gap_and_grace(cls, gap_ms: int, grace_ms: int) -> SessionWindows:
        return cls(gap_ms, grace_ms)

    @classmethod
    def of_inactivity_gap_without_grace(cls, gap_ms: int) -> SessionWindows:
        return cls(gap_ms, 0)

    of_inactivity_gap_with_no_grace = of_inactivity_gap_without_grace  # Kafka's name

    @property
    def retention_ms(self) -> int:
        return self.gap_ms + self.grace_ms

    def __repr__(self) -> str:
        return f"SessionWindows(gap_ms={self.gap_ms}, grace_ms={self.grace_ms})"


class EmitStrategy:
    """When a windowed aggregation forwards results (KIP-825): ``on_window_update()`` (the default: every
    update, subject to the record cache) or ``on_window_close()`` (only the final result of each window, once
    stream time reaches its end + grace)."""

    __slots__ = ("on_close",)

    def __init__(self, on_close: bool) -> None:
        self.on_close = on_close

    @classmethod
    def on_window_update(cls) -> EmitStrategy:
        return cls(False)

    @classmethod
    def on_window_close(cls) -> EmitStrategy:
        return cls(True)

    def __repr__(self) -> str:
        return "EmitStrategy.on_window_close()" if self.on_close else "EmitStrategy.on_window_update()"
