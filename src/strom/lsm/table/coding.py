"""Varint and length-prefixed byte-string coding shared by the WAL batch, MANIFEST and SSTable metadata."""

from __future__ import annotations

from ..errors import CorruptionError

# Encodings of 0..16383 precomputed: batch encoding on the put path looks lengths up instead of looping.
VARINT: list[bytes] = []


def encode_varint(n: int) -> bytes:
    """LEB128 encoding of a non-negative integer."""
    if n < 0:
        raise ValueError(f"varint must be non-negative, got {n}")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


VARINT.extend(encode_varint(i) for i in range(16384))


def varint(n: int) -> bytes:
    """Cached varint for small values, computed for large ones."""
    return VARINT[n] if n < 16384 else encode_varint(n)


def decode_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a varint at ``pos``; return ``(value, next_pos)``. Raises CorruptionError if truncated."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end or shift > 63:
            raise CorruptionError(f"truncated or overlong varint at offset {pos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def encode_bytes(b: bytes) -> bytes:
    """Length-prefixed byte string."""
    return varint(len(b)) + b


def decode_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    """Decode a length-prefixed byte string at ``pos``; return ``(value, next_pos)``."""
    n, pos = decode_varint(buf, pos)
    if pos + n > len(buf):
        raise CorruptionError(f"byte string of {n} bytes at offset {pos} runs past the end ({len(buf)})")
    return bytes(buf[pos : pos + n]), pos + n
