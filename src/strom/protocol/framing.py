"""Kafka wire framing: an int32 size prefix, then a request or response.

Why this is separate from the codec: the size limit (`socket.request.max.bytes`) must be enforced from the
four prefix bytes alone, before any body is read or allocated, and the correlation id must be recoverable
from a frame the codec cannot decode (an unsupported ApiVersions version still gets an answer).
"""

from __future__ import annotations

import asyncio
import struct
from typing import NamedTuple

_SIZE = struct.Struct(">i")
_HEADER_PREFIX = struct.Struct(">hhi")

# api_key, api_version, correlation_id and the client_id length: the smallest possible request header.
MIN_REQUEST_BYTES = 10


class FrameError(Exception):
    """The byte stream is not a valid sequence of Kafka frames; the connection cannot continue."""


class FrameTooLarge(FrameError):
    """A length prefix exceeds the configured limit; raised before the body is read."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds socket.request.max.bytes={limit}")
        self.size = size
        self.limit = limit


class HeaderPrefix(NamedTuple):
    """The fixed-layout start of every request header (identical in header v1 and v2)."""

    api_key: int
    api_version: int
    correlation_id: int


async def read_frame(reader: asyncio.StreamReader, max_bytes: int) -> bytes | None:
    """Read one size-prefixed request; None on a clean end of stream between frames.

    Raises FrameTooLarge before reading the body when the prefix is over `max_bytes`, FrameError when the
    prefix is negative or too small to hold a header, and asyncio.IncompleteReadError when the peer closes
    in the middle of a frame.
    """
    try:
        prefix = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    (size,) = _SIZE.unpack(prefix)
    if size > max_bytes:
        raise FrameTooLarge(size, max_bytes)
    if size < MIN_REQUEST_BYTES:
        raise FrameError(f"frame size {size} is smaller than a request header ({MIN_REQUEST_BYTES} bytes)")
    return await reader.readexactly(size)


def header_prefix(frame: bytes | memoryview) -> HeaderPrefix:
    """api_key, api_version and correlation_id of a request frame (without its size prefix)."""
    if len(frame) < _HEADER_PREFIX.size:
        raise FrameError(f"request of {len(frame)} bytes is too short for a header")
    return HeaderPrefix(*_HEADER_PREFIX.unpack_from(frame, 0))


def size_prefix(length: int) -> bytes:
    """The int32 length prefix for a frame whose payload is `length` bytes."""
    return _SIZE.pack(length)
