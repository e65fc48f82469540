"""Kafka wire framing: an int32 size prefix, then a request or response.

Why this is separate from the codec: the size limit (`socket.request.max.bytes`) must be enforced from the
four prefix bytes alone, before any body is read or allocated, and the correlation id must be recoverable
from a frame the codec cannot decode (an unsupported ApiVersions version still gets an answer). Nothing here
does I/O: the broker's connection protocol feeds received bytes to a FrameSplitter.
"""

from __future__ import annotations

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


class FrameSplitter:
    """Cuts a TCP byte stream into request frames as the bytes arrive.

    Invariant: the buffer never holds more than one incomplete frame, and never any byte of a frame whose
    announced size is over the limit: `feed` raises FrameTooLarge as soon as that frame's 4-byte prefix is
    seen, before its body arrives or anything is allocated for it.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame (without its size prefix) completed by them, in order."""
        buf = self._buffer
        buf += data
        frames: list[bytes] = []
        pos = 0
        end = len(buf)
        with memoryview(buf) as view:
            while end - pos >= 4:
                (size,) = _SIZE.unpack_from(view, pos)
                if size > self.max_bytes:
                    raise FrameTooLarge(size, self.max_bytes)
                if size < MIN_REQUEST_BYTES:
                    raise FrameError(
                        f"frame size {size} is smaller than a request header ({MIN_REQUEST_BYTES} bytes)"
                    )
                if end - pos - 4 < size:
                    break
                with view[pos + 4 : pos + 4 + size] as frame:
                    frames.append(bytes(frame))  # the one copy: the frame outlives the buffer
                pos += 4 + size
        if pos:
            del buf[:pos]
        return frames


def header_prefix(frame: bytes | memoryview) -> HeaderPrefix:
    """api_key, api_version and correlation_id of a request frame (without its size prefix)."""
    if len(frame) < _HEADER_PREFIX.size:
        raise FrameError(f"request of {len(frame)} bytes is too short for a header")
    return HeaderPrefix(*_HEADER_PREFIX.unpack_from(frame, 0))


def size_prefix(length: int) -> bytes:
    """The int32 length prefix for a frame whose payload is `length` bytes."""
    return _SIZE.pack(length)
