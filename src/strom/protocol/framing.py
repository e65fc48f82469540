"""Kafka wire framing: an int32 size prefix, then a request or response.

Why this is separate from the codec: the size limit (`socket.request.max.bytes`) must be enforced from the
four prefix bytes alone, before any body is read or allocated, and the request header must be readable from a
frame the codec cannot decode (an unsupported ApiVersions version still gets an answer). The header is read
here once per request (`read_request_header`); the broker routes on it and the codec decodes the body after
it. A response frame goes out as `Part`s: encoded bytes, and file regions sent with sendfile. Nothing here
does I/O: the broker's connection protocol feeds received bytes to a FrameSplitter.
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Protocol

from strom.protocol.errors import FrameError, FrameTooLarge, MalformedRequest

_SIZE = struct.Struct(">i")
_HEADER = struct.Struct(">hhih")  # api_key, api_version, correlation_id, client_id length

# api_key, api_version, correlation_id and the client_id length: the smallest possible request header.
MIN_REQUEST_BYTES = 10


class RequestHeader(NamedTuple):
    """The request header fields that header v1 and v2 share, parsed once per request.

    `size` is where those fields end in the frame: the body starts there for header v1; header v2 (the
    flexible versions of an API) adds a tagged-field section there, which the codec skips because only the
    request schema knows which header version an API version uses.
    """

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    size: int


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

    @property
    def reserved(self) -> int:
        """What the incomplete frame will hold once complete: its announced size once its prefix is in
        (as Kafka's memory pool reserves a whole request at its prefix), else the bytes held so far."""
        buf = self._buffer
        if len(buf) < 4:
            return len(buf)
        return 4 + int(_SIZE.unpack_from(buf, 0)[0])

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


def read_request_header(frame: bytes | memoryview) -> RequestHeader:
    """The header of a request frame (without its size prefix); MalformedRequest if it does not parse."""
    if len(frame) < MIN_REQUEST_BYTES:
        raise MalformedRequest(f"request of {len(frame)} bytes is shorter than its header")
    api_key, api_version, correlation_id, client_len = _HEADER.unpack_from(frame, 0)
    pos = _HEADER.size
    client_id: str | None = None
    if client_len >= 0:
        end = pos + client_len
        if end > len(frame):
            raise MalformedRequest("client_id runs past the end of the request")
        try:
            client_id = str(frame[pos:end], "utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedRequest("client_id is not valid UTF-8") from exc
        pos = end
    elif client_len != -1:
        raise MalformedRequest(f"negative client_id length {client_len}")
    return RequestHeader(api_key, api_version, correlation_id, client_id, pos)


class FileRegion(Protocol):
    """A byte range of an open file (strom.log's LogSlice): sent with sendfile, never read into memory."""

    @property
    def position(self) -> int: ...

    @property
    def size(self) -> int: ...

    def fileno(self) -> int: ...


# One piece of a response frame as the server writes it: encoded bytes, or a file region sent with sendfile.
Part = bytes | memoryview | FileRegion


def part_size(part: Part) -> int:
    """The bytes `part` puts on the wire."""
    return len(part) if isinstance(part, (bytes, memoryview)) else part.size


def size_prefix(length: int) -> bytes:
    """The int32 length prefix for a frame whose payload is `length` bytes."""
    return _SIZE.pack(length)
