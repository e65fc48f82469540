"""Suppression (``KTable.suppress``): hold a table's updates back and forward only some of them.

``Suppressed.until_window_closes(buffer)`` forwards only the final result of each window of a windowed KTable,
once stream time reaches the window end + grace (session windows: passes it); ``until_time_limit(ms, buffer)``
forwards the latest update of a key once ``ms`` of stream time have passed since the key's first buffered
update. The buffer is a logged key-value store (``<application.id>-<store>-changelog``), so buffered updates
survive a restart and are emitted later. A bounded buffer either emits its oldest entry early when full or
stops the application (``shut_down_when_full``), as in Kafka Streams. Only records move stream time, so
nothing is emitted while input is idle.
"""

from __future__ import annotations

import heapq
import struct
from typing import Any

from strom.streams.errors import SerializationError, StreamsError
from strom.streams.processor.node import Node
from strom.streams.processor.table import Change
from strom.streams.serdes import Serde

_HEADER = struct.Struct(">?qq")


class BufferConfig:
    """How many records a suppression buffer may hold, and what happens when it is full."""

    __slots__ = ("max_records", "shut_down_when_full_")

    def __init__(self, max_records: int | None, shut_down_when_full: bool) -> None:
        if max_records is not None and max_records < 1:
            raise ValueError(f"a suppression buffer must hold at least one record, got {max_records}")
        self.max_records = max_records
        self.shut_down_when_full_ = shut_down_when_full

    @classmethod
    def unbounded(cls) -> BufferConfig:
        return cls(None, True)

    @classmethod
    def with_max_records(cls, max_records: int) -> BufferConfig:
        """At most ``max_records`` keys; when full, the oldest entry is emitted early."""
        return cls(max_records, False)

    def shut_down_when_full(self) -> BufferConfig:
        """Stop processing (a ``StreamsError``) instead of emitting early when the buffer is full."""
        return BufferConfig(self.max_records, True)

    def emit_early_when_full(self) -> BufferConfig:
        return BufferConfig(self.max_records, False)


class Suppressed:
    __slots__ = ("buffer", "time_limit_ms", "until_close")

    def __init__(self, until_close: bool, time_limit_ms: int, buffer: BufferConfig) -> None:
        if time_limit_ms < 0:
            raise ValueError(f"suppression time limit must be >= 0 ms, got {time_limit_ms}")
        self.until_close = until_close
        self.time_limit_ms = time_limit_ms
        self.buffer = buffer

    @classmethod
    def until_window_closes(cls, buffer: BufferConfig | None = None) -> Suppressed:
        buffer = buffer or BufferConfig.unbounded()
        if not buffer.shut_down_when_full_:
            raise ValueError("final results need a buffer that shuts down when full, not one emitting early")
        return cls(True, 0, buffer)

    @classmethod
    def until_time_limit(cls, time_limit_ms: int, buffer: BufferConfig) -> Suppressed:
        return cls(False, time_limit_ms, buffer)


class BufferedSerde(Serde[tuple[Any, int, int]]):
    """A buffered update ``(value, record timestamp, buffer time)``: ``has value (1) || record ts (8) ||
    buffer time (8) || value``; a None value (a buffered tombstone) has no value bytes."""

    name = "suppress-buffer"

    def __init__(self, inner: Serde[Any] | None) -> None:
        self.inner = inner

    def with_inner(self, inner: Serde[Any]) -> BufferedSerde:
        return BufferedSerde(inner)

    def serialize(self, topic: str, value: tuple[Any, int, int] | None) -> bytes | None:
        if value is None:
            return None
        assert self.inner is not None, "buffer serde without an inner serde (resolve_serde sets it)"
        data = self.inner.serialize(topic, value[0])
        return _HEADER.pack(data is not None, value[1], value[2]) + (data or b"")

    def deserialize(self, topic: str, data: bytes | None) -> tuple[Any, int, int] | None:
        if data is None:
            return None
        assert self.inner is not None, "buffer serde without an inner serde (resolve_serde sets it)"
        if len(data) < _HEADER.size:
            raise SerializationError(f"suppression buffer record of {len(data)} bytes is shorter than 17")
        has_value, record_ts, buffer_time = _HEADER.unpack_from(data)
        value = self.inner.deserialize(topic, data[_HEADER.size :]) if has_value else None
        return value, record_ts, buffer_time


class SuppressNode(Node):
    """Buffers ``Change``s by key in a logged store and forwards them as the suppression allows.

    Invariants: the in-memory index (key -> buffer time, and a heap by buffer time with stale entries skipped)
    describes exactly the store's contents; it is rebuilt from the store on first use, after any restore.
    """

    __slots__ = (
        "buffer_times",
        "grace",
        "heap",
        "loaded",
        "observed",
        "seq",
        "session",
        "store",
        "store_name",
        "suppressed",
    )  # fmt: skip

    def __init__(
        self, name: str, store_name: str, suppressed: Suppressed, grace_ms: int, session: bool
    ) -> None:
        super().__init__(name)
        self.store_name = store_name
        self.suppressed = suppressed
        self.grace = grace_ms
        self.session = session
        self.observed = -1
        self.loaded = False
        self.buffer_times: dict[Any, int] = {}
        self.heap: list[tuple[int, int, Any]] = []
        self.seq = 0

    def init(self, ctx: Any) -> None:
        super().init(ctx)
        self.store = ctx.get_store(self.store_name)

    def _index(self, key: Any, buffer_time: int) -> None:
        self.buffer_times[key] = buffer_time
        self.seq += 1
        heapq.heappush(self.heap, (buffer_time, self.seq, key))

    def _load(self) -> None:
        self.loaded = True
        for key, (_value, _ts, buffer_time) in self.store.all():
            self._index(key, buffer_time)

    def _expired(self, buffer_time: int) -> bool:
        if not self.suppressed.until_close:
            return buffer_time + self.suppressed.time_limit_ms <= self.observed
        if self.session:
            return buffer_time + self.grace < self.observed
        return buffer_time + self.grace <= self.observed

    def process(self, key: Any, value: Change, timestamp: int) -> None:
        if not self.loaded:
            self._load()
        if timestamp > self.observed:
            self.observed = timestamp
        store = self.store
        known = self.buffer_times.get(key)
        if value.new is None and self.suppressed.until_close:
            # a window that was merged away or deleted never becomes final: forget it
            if known is not None:
                del self.buffer_times[key]
                store.put(key, None, timestamp)
        else:
            if self.suppressed.until_close:
                buffer_time = key.window.end
            else:
                buffer_time = timestamp if known is None else known
            store.put(key, (value.new, timestamp, buffer_time), timestamp)
            if known is None:
                self._index(key, buffer_time)
        self._evict()

    def _evict(self) -> None:
        heap, times, store = self.heap, self.buffer_times, self.store
        limit = self.suppressed.buffer.max_records
        while heap:
            buffer_time, _seq, key = heap[0]
            if times.get(key) != buffer_time:
                heapq.heappop(heap)  # stale: the key was emitted or forgotten since
                continue
            if not self._expired(buffer_time):
                if limit is None or len(times) <= limit:
                    return
                if self.suppressed.buffer.shut_down_when_full_:
                    raise StreamsError(
                        f"suppression buffer of {self.name!r} is full ({limit} records); give it more room "
                        "or let it emit early (BufferConfig.with_max_records)"
                    )
            heapq.heappop(heap)
            del times[key]
            value, record_ts, _ = store.get(key)
            store.put(key, None, record_ts)
            change = Change(value, None)
            for child in self.children:
                child.process(key, change, record_ts)
