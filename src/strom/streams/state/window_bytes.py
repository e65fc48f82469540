"""Byte-level window stores: values addressed by (key bytes, window start), expired by stream time.

Two layouts, one interface:

- ``InMemoryWindowBytesStore`` keeps ``{window start: {key: value}}``; expiry drops whole start buckets.
- ``SegmentedWindowBytesStore`` keeps time segments of ``segment_interval_ms`` each in its own key-value
  backend (strom.lsm or rocksdict), with keys ``key || start`` (8-byte big-endian, so one key's windows are
  adjacent and ordered). Expiry drops whole segments, as Kafka Streams' ``RocksDBSegmentedBytesStore`` does,
  instead of deleting record by record.

Invariant of both: a window whose start is ``<= observed_time - retention_ms`` is gone: reads do not return it
and a put for it is ignored, where ``observed_time`` is the largest window start ever put (after a restart,
the newest segment's start).
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

from strom.streams.state.bytes_store import KeyValueBytesStore

_START = struct.Struct(">q")
# Marks a segment directory as expired; it is deleted (again) when found at open.
DROPPED_SUFFIX = ".dropped"
# Restore records held back per window store before they are written (see write_raw), about 100 MB at most.
RESTORE_BUFFER_RECORDS = 1_000_000


class WindowBytesStore(Protocol):
    def get(self, key: bytes, start: int) -> bytes | None: ...

    def put(self, key: bytes, start: int, value: bytes | None) -> None: ...

    def write_batch(self, items: Iterable[tuple[bytes, int, bytes | None]]) -> None: ...

    def write_raw(self, items: list[tuple[bytes, int, bytes | None]]) -> None:
        """Restore path: ``(key || 8-byte start, start, value)`` items, keys already in segment layout."""
        ...

    def fetch(self, key: bytes, time_from: int, time_to: int) -> Iterator[tuple[int, bytes]]: ...

    def fetch_all(self, time_from: int, time_to: int) -> Iterator[tuple[bytes, int, bytes]]: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class InMemoryWindowBytesStore:
    persistent = False

    def __init__(self, retention_ms: int) -> None:
        self.retention_ms = retention_ms
        self._buckets: dict[int, dict[bytes, bytes]] = {}
        self.observed_time = -1
        self._min_live = -(2**63)

    def _advance(self, start: int) -> None:
        self.observed_time = start
        min_live = start - self.retention_ms + 1
        if min_live > self._min_live:
            self._min_live = min_live
            for old in [s for s in self._buckets if s < min_live]:
                del self._buckets[old]

    def get(self, key: bytes, start: int) -> bytes | None:
        bucket = self._buckets.get(start)
        return None if bucket is None else bucket.get(key)

    def put(self, key: bytes, start: int, value: bytes | None) -> None:
        if start > self.observed_time:
            self._advance(start)
        if start < self._min_live:
            return
        if value is None:
            bucket = self._buckets.get(start)
            if bucket is not None:
                bucket.pop(key, None)
        else:
            bucket = self._buckets.get(start)
            if bucket is None:
                bucket = self._buckets[start] = {}
            bucket[key] = value

    def write_batch(self, items: Iterable[tuple[bytes, int, bytes | None]]) -> None:
        for key, start, value in items:
            self.put(key, start, value)

    def write_raw(self, items: list[tuple[bytes, int, bytes | None]]) -> None:
        put = self.put
        for key_and_start, start, value in items:
            put(key_and_start[:-8], start, value)

    def fetch(self, key: bytes, time_from: int, time_to: int) -> Iterator[tuple[int, bytes]]:
        for start in sorted(s for s in self._buckets if time_from <= s <= time_to):
            value = self._buckets[start].get(key)
            if value is not None:
                yield start, value

    def fetch_all(self, time_from: int, time_to: int) -> Iterator[tuple[bytes, int, bytes]]:
        for start in sorted(s for s in self._buckets if time_from <= s <= time_to):
            bucket = self._buckets[start]
            for key in sorted(bucket):
                yield key, start, bucket[key]

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self._buckets.clear()


class SegmentedWindowBytesStore:
    """Time segments over any persistent ``KeyValueBytesStore`` backend.

    Segment ``i`` holds windows with ``i * interval <= start < (i + 1) * interval`` in directory
    ``<dir>/<i>``. Segments found on disk at open are reopened, so a restart keeps its state and only replays
    the changelog delta. A segment is destroyed once every window in it has expired.
    """

    persistent = True

    def __init__(
        self,
        directory: Path,
        retention_ms: int,
        open_backend: Callable[[Path], KeyValueBytesStore],
        segment_interval_ms: int | None = None,
    ) -> None:
        self.retention_ms = retention_ms
        self.interval = segment_interval_ms or max(retention_ms // 2, 60_000)
        self._dir = directory
        self._open = open_backend
        self._segments: dict[int, KeyValueBytesStore] = {}
        self._pending: list[tuple[bytes, int, bytes | None]] = []
        self.observed_time = -1
        self._min_live = -(2**63)
        directory.mkdir(parents=True, exist_ok=True)
        for marker in directory.glob(f"*{DROPPED_SUFFIX}"):
            if not (directory / marker.name.removesuffix(DROPPED_SUFFIX)).exists():
                marker.unlink(missing_ok=True)
        for child in sorted(directory.iterdir()):
            if child.is_dir() and child.name.isdigit():
                dropped = directory / f"{child.name}{DROPPED_SUFFIX}"
                if dropped.exists():  # expired before a crash or while being deleted
                    shutil.rmtree(child, ignore_errors=True)
                    dropped.unlink(missing_ok=True)
                    continue
                segment_id = int(child.name)
                self._segments[segment_id] = open_backend(child)
                self.observed_time = max(self.observed_time, segment_id * self.interval)
        if self._segments:
            self._advance(self.observed_time)

    def _segment(self, start: int, create: bool) -> KeyValueBytesStore | None:
        segment_id = start // self.interval
        segment = self._segments.get(segment_id)
        if segment is None and create:
            segment = self._segments[segment_id] = self._open(self._dir / str(segment_id))
        return segment

    def _advance(self, start: int) -> None:
        self.observed_time = start
        min_live = start - self.retention_ms + 1
        if min_live > self._min_live:
            self._min_live = min_live
            last_dead = min_live // self.interval - 1
            for segment_id in [s for s in self._segments if s <= last_dead]:
                marker = self._dir / f"{segment_id}{DROPPED_SUFFIX}"
                marker.touch()
                self._segments.pop(segment_id).destroy()
                if not (self._dir / str(segment_id)).exists():
                    marker.unlink(missing_ok=True)

    def get(self, key: bytes, start: int) -> bytes | None:
        if self._pending:
            self._settle()
        if start < self._min_live:
            return None
        segment = self._segment(start, False)
        return None if segment is None else segment.get(key + _START.pack(start))

    def put(self, key: bytes, start: int, value: bytes | None) -> None:
        if self._pending:
            self._settle()
        if start > self.observed_time:
            self._advance(start)
        if start < self._min_live:
            return
        if value is None:
            segment = self._segment(start, False)
            if segment is not None:
                segment.delete(key + _START.pack(start))
        else:
            segment = self._segment(start, True)
            assert segment is not None
            segment.put(key + _START.pack(start), value)

    def write_batch(self, items: Iterable[tuple[bytes, int, bytes | None]]) -> None:
        if self._pending:
            self._settle()
        by_segment: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for key, start, value in items:
            if start > self.observed_time:
                self._advance(start)
            if start < self._min_live:
                continue
            by_segment.setdefault(start // self.interval, []).append((key + _START.pack(start), value))
        for segment_id, batch in by_segment.items():
            segment = self._segment(segment_id * self.interval, True)
            assert segment is not None
            segment.write_batch(batch)

    def write_raw(self, items: list[tuple[bytes, int, bytes | None]]) -> None:
        """Restore batches are held back (up to ``RESTORE_BUFFER_RECORDS``) and written when the store is next
        used: by then the newest window of the whole restore is known, so windows that expired during the
        restore are skipped instead of creating segments that would be destroyed again a batch later."""
        self._pending.extend(items)
        if len(self._pending) >= RESTORE_BUFFER_RECORDS:
            self._settle()

    def _settle(self) -> None:
        items, self._pending = self._pending, []
        if not items:
            return
        newest = max(start for _k, start, _v in items)
        if newest > self.observed_time:
            self._advance(newest)
        min_live = self._min_live
        interval = self.interval
        by_segment: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for key_and_start, start, value in items:
            if start >= min_live:
                segment_id = start // interval
                batch = by_segment.get(segment_id)
                if batch is None:
                    batch = by_segment[segment_id] = []
                batch.append((key_and_start, value))
        for segment_id, batch in by_segment.items():
            segment = self._segment(segment_id * interval, True)
            assert segment is not None
            segment.write_batch(batch)

    def fetch(self, key: bytes, time_from: int, time_to: int) -> Iterator[tuple[int, bytes]]:
        if self._pending:
            self._settle()
        time_from = max(time_from, self._min_live)
        size = len(key) + 8
        lo, hi = key + _START.pack(max(time_from, 0)), key + _START.pack(time_to)
        for segment_id in sorted(self._segments):
            if (segment_id + 1) * self.interval <= time_from or segment_id * self.interval > time_to:
                continue
            for stored, value in self._segments[segment_id].range(lo, hi):
                if len(stored) == size:
                    yield _START.unpack_from(stored, size - 8)[0], value

    def fetch_all(self, time_from: int, time_to: int) -> Iterator[tuple[bytes, int, bytes]]:
        if self._pending:
            self._settle()
        time_from = max(time_from, self._min_live)
        for segment_id in sorted(self._segments):
            if (segment_id + 1) * self.interval <= time_from or segment_id * self.interval > time_to:
                continue
            for stored, value in self._segments[segment_id].range(None, None):
                start = _START.unpack_from(stored, len(stored) - 8)[0]
                if time_from <= start <= time_to:
                    yield stored[:-8], start, value

    def flush(self) -> None:
        self._settle()
        for segment in self._segments.values():
            segment.flush()

    def close(self) -> None:
        self._settle()
        for segment in self._segments.values():
            segment.close()
        self._segments.clear()
