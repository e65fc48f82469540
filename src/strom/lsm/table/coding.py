"""Varint and length-prefixed byte-string coding shared by the WAL batch, MANIFEST and SSTable metadata.

The varint itself is strom.protocol.varint's (one implementation in strom); this module gives it strom.lsm's
failure, CorruptionError, and caches the encodings of small lengths for the put path.
"""

from __future__ import annotations

from strom.protocol.errors import VarintError
from strom.protocol.varint import read_uvarlong, write_uvarint

from ..errors import CorruptionError

# Encodings of 0..16383 precomputed: batch encoding on the put path looks lengths up instead of calling.
VARINT: list[bytes] = [write_uvarint(i) for i in range(16384)]


def encode_varint(n: int) -> bytes:
    """LEB128 encoding of a non-negative integer (LevelDB's varint64)."""
    if n < 0:
        raise ValueError(f"varint must be non-negative, got {n}")
    return write_uvarint(n)


def varint(n: int) -> bytes:
    """Cached varint for small values, computed for large ones."""
    return VARINT[n] if n < 16384 else encode_varint(n)


def decode_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a varint at ``pos``; return ``(value, next_pos)``. Raises CorruptionError if truncated."""
    try:
        return read_uvarlong(buf, pos)
    except (IndexError, VarintError):
        raise CorruptionError(f"truncated or overlong varint at offset {pos}") from None


def encode_bytes(b: bytes) -> bytes:
    """Length-prefixed byte string."""
    return varint(len(b)) + b


def decode_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    """Decode a length-prefixed byte string at ``pos``; return ``(value, next_pos)``."""
    n, pos = decode_varint(buf, pos)
    if pos + n > len(buf):
        raise CorruptionError(f"byte string of {n} bytes at offset {pos} runs past the end ({len(buf)})")
    return bytes(buf[pos : pos + n]), pos + n
