"""Samples kept between page views: a group's total lag over time (for its chart) and a topic's end offsets
(for its messages-in rate).

The console has no database: samples live in memory, a bounded number per series, taken when a page is
viewed (the pages refresh themselves while open, so an open page keeps its chart moving).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MAX_SAMPLES = 120


class Series:
    """Bounded (time, value) samples per name; thread-safe, as page views run on worker threads."""

    def __init__(self, clock: Callable[[], float] = time.time, size: int = MAX_SAMPLES) -> None:
        self._clock = clock
        self._size = size
        self._samples: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def add(self, name: str, value: int) -> None:
        with self._lock:
            self._samples.setdefault(name, deque(maxlen=self._size)).append((self._clock(), value))

    def samples(self, name: str) -> list[tuple[float, int]]:
        with self._lock:
            return list(self._samples.get(name, ()))

    def rate(self, name: str) -> float | None:
        """Per-second change between the last two samples, or None before there are two."""
        points = self.samples(name)
        if len(points) < 2 or points[-1][0] <= points[-2][0]:
            return None
        (t0, v0), (t1, v1) = points[-2], points[-1]
        return (v1 - v0) / (t1 - t0)


def chart_points(samples: list[tuple[float, int]], width: int = 600, height: int = 120) -> str:
    """An SVG polyline `points` value drawing the samples, scaled to width x height (y grows upward)."""
    if not samples:
        return ""
    t0, t1 = samples[0][0], samples[-1][0]
    top = max(v for _, v in samples) or 1
    span = (t1 - t0) or 1.0
    return " ".join(f"{(t - t0) / span * width:.1f},{height - v / top * height:.1f}" for t, v in samples)
