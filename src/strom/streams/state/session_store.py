"""Session store: session aggregates keyed by ``Windowed(key, Window(start, end))`` (both ends inclusive).

It is a key-value store whose serialised keys are Kafka's ``SessionKeySchema`` layout, ``key || end || start``
(8-byte big-endian each), so one key's sessions are adjacent and ordered by end time, and its changelog reads
like a Kafka Streams session-store changelog. Sessions that ended more than the retention before the newest
session end are dropped locally by ``expire`` (the changelog topic, ``compact,delete``, forgets them by its
own retention), without tombstones and without forwarding.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from strom.streams.state.kv_store import KeyValueStore
from strom.streams.windows import Window, Windowed

_LONG = struct.Struct(">q")
_MAX = 2**63 - 1


class SessionStore(KeyValueStore):
    """Invariant (beyond ``KeyValueStore``'s): keys are ``Windowed`` with ``start <= end``."""

    kind = "session"
    retention_ms = 0

    def find_sessions(self, key: Any, earliest_end: int, latest_start: int) -> Iterator[tuple[Windowed, Any]]:
        """Sessions of ``key`` with ``end >= earliest_end`` and ``start <= latest_start``, by end time."""
        lo = Windowed(key, Window(0, max(earliest_end, 0)))
        hi = Windowed(key, Window(_MAX, _MAX))
        for windowed, value in self.range(lo, hi):
            if windowed.key == key and windowed.window.start <= latest_start:
                yield windowed, value

    def fetch(self, key: Any) -> Iterator[tuple[Windowed, Any]]:
        """Every session of ``key``."""
        return self.find_sessions(key, 0, _MAX)

    def expire(self, end_before: int) -> int:
        """Drop sessions that ended before ``end_before`` from the cache and the backend; returns how many."""
        for windowed in [k for k in self._cache if k.window.end < end_before and not self._cache[k].dirty]:
            del self._cache[windowed]
            if self._budget is not None:
                self._budget.entries -= 1
        unpack = _LONG.unpack_from
        doomed = [kb for kb, _v in self.backend.range(None, None) if unpack(kb, len(kb) - 16)[0] < end_before]
        self.backend.write_batch((kb, None) for kb in doomed)
        return len(doomed)
