"""One client connection: bytes in, frames handled one at a time in arrival order, responses out.

Why a protocol rather than streams: frames are cut as bytes arrive (an oversized size prefix is refused
before its body is read), and responses are written in one batch when no further request is waiting, so a
client that pipelines (an idempotent producer keeps five Produce requests in flight) gets its answers with
one send instead of five. Record bytes of Fetch responses go out with sendfile.

Memory is bounded per connection and in total. Per connection: a frame over `socket.request.max.bytes`
closes it before its body is read, and reading pauses while `_MAX_QUEUED` frames or a full request's worth
of bytes wait. In total: received requests count against the `RequestMemoryPool`
(`queued.max.request.bytes`), and reading pauses while it is full. A peer that goes away takes its
queued requests with it (they are dropped, not handled), and one silent for `connections.max.idle.ms`
is disconnected.

A connection ends on: the peer closing (after answering what it sent, except requests queued behind one
that is in progress or would wait: those are dropped, as the peer has left), a framing or decoding error, a
handler's CloseConnection, idleness, or broker shutdown. None of these touches any other connection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import IO, cast

from strom.broker.dispatch import CloseConnection
from strom.broker.memory_pool import RequestMemoryPool
from strom.protocol.api_keys import ApiKey
from strom.protocol.errors import FrameError, MalformedRequest, UnsupportedRequest
from strom.protocol.framing import (
    FileRegion,
    FrameSplitter,
    Part,
    RequestHeader,
    part_size,
    read_request_header,
)

log = logging.getLogger("strom.broker")

# The broker's request entry point: header, frame, client host -> the response frame's parts (None: none).
FrameHandler = Callable[[RequestHeader, bytes, str], Awaitable[list[Part] | None]]

# Stop reading from a client with this many requests waiting; resume below half of it.
_MAX_QUEUED = 64
# Flush responses early once this much is queued for a pipelining client.
_FLUSH_BYTES = 1 << 20
# APIs whose handlers may park for a long time (Fetch long polls, JoinGroup and SyncGroup barriers).
_MAY_WAIT = frozenset({ApiKey.FETCH, ApiKey.JOIN_GROUP, ApiKey.SYNC_GROUP})


class _SendfileSource:
    """The file object loop.sendfile wants, over a log segment's shared descriptor.

    Reads use pread at a position of this object's own, so the shared descriptor's offset is never moved
    (appends use O_APPEND, other reads pread). asyncio reads through `readinto` only when sendfile(2) fails
    before sending anything (typically because the peer has gone), and then sends the bytes itself.
    """

    def __init__(self, region: FileRegion) -> None:
        self._fd = region.fileno()
        self._pos = 0

    def fileno(self) -> int:
        return self._fd

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = offset
        return offset

    def readinto(self, buffer: memoryview) -> int:
        data = os.pread(self._fd, len(buffer), self._pos)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may hold and for how long, from the broker config (Kafka's names)."""

    max_request_bytes: int  # socket.request.max.bytes
    idle_ms: int  # connections.max.idle.ms (-1: never close idle connections)
    pool: RequestMemoryPool  # queued.max.request.bytes, shared by all connections


class Connection(asyncio.Protocol):
    """Invariants: requests are handled strictly one after another in arrival order and their responses
    written in the same order; reading pauses while `_MAX_QUEUED` complete requests or
    `max_request_bytes` of them wait, or while the shared pool is full and no frame is half received; the
    pool always holds what this connection holds (nothing once it is lost)."""

    def __init__(
        self, handle_frame: FrameHandler, registry: set[Connection], limits: ConnectionLimits
    ) -> None:
        self._handle_frame = handle_frame
        self._registry = registry  # the broker's open connections, to close them at shutdown
        self._limits = limits
        self._pool = limits.pool
        self.client_host = ""
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self._splitter = FrameSplitter(limits.max_request_bytes)
        self._frames: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0  # of the complete frames in `_frames`
        self._current_bytes = 0  # of the frame being handled
        self._wakeup: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._eof = False
        self._lost = False
        self._busy = False  # handling a request or writing its answer: not idle
        self._last_activity = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client_host = str(peer[0]) if peer else ""
        loop = asyncio.get_running_loop()
        self.task = loop.create_task(self._run())
        self._registry.add(self)
        self._last_activity = loop.time()
        if self._limits.idle_ms >= 0:
            self._idle_timer = loop.call_later(self._limits.idle_ms / 1000, self._check_idle)
        self._update_reading()  # a full pool keeps a new connection from reading its first request

    def data_received(self, data: bytes) -> None:
        self._last_activity = asyncio.get_running_loop().time()
        try:
            frames = self._splitter.feed(data)
        except FrameError as exc:
            log.info("closing connection from %s: %s", self.client_host, exc)
            self._abort()
            return
        if frames:
            self._frames.extend(frames)
            self._queued_bytes += sum(len(f) for f in frames)
        self._account()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        if self._busy:
            # the peer left while a request was in progress (typically a parked long poll): what it queued
            # behind that request is dropped, as Kafka drops a closed channel's requests
            self._drop_queued()
        self._wake()
        return True  # keep the transport open to answer what was already received

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._registry.discard(self)
        # nothing is kept for a client that left: requests queued behind a parked one are dropped
        self._drop_queued()
        self._pool.release(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # --- memory and idleness ---------------------------------------------------------------------------

    def _drop_queued(self) -> None:
        self._frames.clear()
        self._queued_bytes = 0
        self._splitter = FrameSplitter(self._limits.max_request_bytes)
        self._account()

    def _account(self) -> None:
        """Report what this connection holds to the pool, then pause or resume reading accordingly."""
        if self._lost:
            return
        self._pool.hold(self, self._queued_bytes + self._current_bytes + self._splitter.reserved)
        self._update_reading()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or self._lost:
            return
        own_limit = self._limits.max_request_bytes
        # a frame already begun may finish even when the pool is full (its size was reserved at its prefix)
        starved = self._pool.full and self._splitter.buffered == 0
        if self._reading_paused:
            backlog = len(self._frames) >= _MAX_QUEUED // 2 or self._queued_bytes >= own_limit // 2
            if not backlog and not starved:
                transport.resume_reading()
                self._reading_paused = False
        elif len(self._frames) >= _MAX_QUEUED or self._queued_bytes >= own_limit or starved:
            transport.pause_reading()
            self._reading_paused = True
        if self._reading_paused and starved:
            self._pool.wait(self, self._update_reading)

    def _check_idle(self) -> None:
        """Close the connection once nothing was received and nothing handled for `idle_ms`."""
        loop = asyncio.get_running_loop()
        idle_s = self._limits.idle_ms / 1000
        remaining = self._last_activity + idle_s - loop.time()
        if self._busy or remaining > 0:
            self._idle_timer = loop.call_later(max(remaining, idle_s if self._busy else 0), self._check_idle)
            return
        self._idle_timer = None
        log.info("closing connection from %s: idle for %d ms", self.client_host, self._limits.idle_ms)
        self._abort()

    # --- request loop ---------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _abort(self) -> None:
        self._lost = True
        if self.transport is not None:
            self.transport.abort()

    async def _next_frame(self) -> bytes | None:
        """The next request to handle, counted as held until the next call; None once the peer is gone
        (or has closed its side and every request it sent was taken)."""
        self._current_bytes = 0
        while not self._frames:
            if self._eof or self._lost:
                self._account()
                return None
            self._account()
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup
        frame = self._frames.popleft()
        self._queued_bytes -= len(frame)
        self._current_bytes = len(frame)
        self._account()
        return frame

    async def _run(self) -> None:
        out: list[Part] = []
        try:
            while (frame := await self._next_frame()) is not None:
                self._busy = True
                header = read_request_header(frame)
                if header.api_key in _MAY_WAIT:
                    if self._eof:
                        self._drop_queued()  # the peer has left: nothing it sent may wait behind a long poll
                    if out:
                        await self._flush(out)  # earlier answers must not wait for a long poll
                        out = []
                parts = await self._handle_frame(header, frame, self.client_host)
                del frame
                if parts:
                    out.extend(parts)
                if out and (not self._frames or _size(out) >= _FLUSH_BYTES):
                    await self._flush(out)
                    out = []
                self._busy = False
                self._last_activity = asyncio.get_running_loop().time()
        except (MalformedRequest, UnsupportedRequest, CloseConnection) as exc:
            log.info("closing connection from %s: %s", self.client_host, exc)
        except (ConnectionError, asyncio.CancelledError):
            out = []
        except Exception:
            log.exception("closing connection from %s after an internal error", self.client_host)
        try:
            if out:
                await self._flush(out)  # answers to the requests before the one that failed
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        if self.transport is not None:
            self.transport.close()

    async def _flush(self, parts: list[Part]) -> None:
        """Write responses; a file region goes out with sendfile once the bytes before it are written."""
        transport = self.transport
        if transport is None or self._lost:
            raise ConnectionError("connection closed")
        pending: list[bytes | memoryview] = []
        for part in parts:
            if isinstance(part, (bytes, memoryview)):
                pending.append(part)
                continue
            if pending:
                transport.writelines(pending)
                pending = []
            if transport.is_closing():  # the peer went away (loop.sendfile would raise RuntimeError)
                raise ConnectionError("connection closed")
            loop = asyncio.get_running_loop()
            source = cast(IO[bytes], _SendfileSource(part))
            await loop.sendfile(transport, source, part.position, part.size)
        if pending:
            transport.writelines(pending)
        if self._writable is not None:
            await self._writable
        if self._lost:
            raise ConnectionError("connection closed")

    def close(self) -> None:
        """End the connection now (broker shutdown)."""
        if self.task is not None:
            self.task.cancel()
        self._abort()


def _size(parts: list[Part]) -> int:
    return sum(part_size(p) for p in parts)
