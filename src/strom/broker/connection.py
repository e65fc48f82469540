"""One client connection: bytes in, frames handled one at a time in arrival order, responses out.

Why a protocol rather than streams: frames are cut as bytes arrive (an oversized size prefix is refused
before its body is read), and responses are written in one batch when no further request is waiting, so a
client that pipelines (an idempotent producer keeps five Produce requests in flight) gets its answers with
one send instead of five. Record bytes of Fetch responses go out with sendfile.

A connection ends on: the peer closing (after answering what it sent), a framing or decoding error, a
handler's CloseConnection, or broker shutdown. None of these touches any other connection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import Awaitable, Callable
from typing import IO, cast

from strom.broker.dispatch import CloseConnection
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


class Connection(asyncio.Protocol):
    """Invariants: requests are handled strictly one after another in arrival order and their responses
    written in the same order; at most `_MAX_QUEUED` complete requests are buffered before reading pauses."""

    def __init__(self, handle_frame: FrameHandler, registry: set[Connection], max_request_bytes: int) -> None:
        self._handle_frame = handle_frame
        self._registry = registry  # the broker's open connections, to close them at shutdown
        self.client_host = ""
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self._splitter = FrameSplitter(max_request_bytes)
        self._frames: collections.deque[bytes] = collections.deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._eof = False
        self._lost = False

    # --- asyncio.Protocol callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client_host = str(peer[0]) if peer else ""
        self.task = asyncio.get_running_loop().create_task(self._run())
        self._registry.add(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._frames.extend(self._splitter.feed(data))
        except FrameError as exc:
            log.info("closing connection from %s: %s", self.client_host, exc)
            self._abort()
            return
        if len(self._frames) >= _MAX_QUEUED and not self._reading_paused and self.transport is not None:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # keep the transport open to answer what was already received

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._registry.discard(self)
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # --- request loop ---------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _abort(self) -> None:
        self._lost = True
        if self.transport is not None:
            self.transport.abort()

    async def _next_frame(self) -> bytes | None:
        while not self._frames:
            if self._eof or self._lost:
                return None
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup
        frame = self._frames.popleft()
        if self._reading_paused and len(self._frames) < _MAX_QUEUED // 2 and self.transport is not None:
            self.transport.resume_reading()
            self._reading_paused = False
        return frame

    async def _run(self) -> None:
        out: list[Part] = []
        try:
            while (frame := await self._next_frame()) is not None:
                header = read_request_header(frame)
                if out and header.api_key in _MAY_WAIT:
                    await self._flush(out)  # earlier answers must not wait for a long poll
                    out = []
                parts = await self._handle_frame(header, frame, self.client_host)
                if parts:
                    out.extend(parts)
                if out and (not self._frames or _size(out) >= _FLUSH_BYTES):
                    await self._flush(out)
                    out = []
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
