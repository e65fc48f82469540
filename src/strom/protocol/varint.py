"""Kafka's variable-length integers: the one implementation in strom.

Two encodings share the 7-bits-per-byte layout (low group first, high bit = more bytes follow):
- unsigned varints (flexible versions' compact lengths, tagged-field counts, tags and sizes), at most 5 bytes
  since Kafka's UNSIGNED_VARINT is 32 bits;
- zigzag varints (record fields: lengths, timestamp and offset deltas), read and written as Kafka's 64-bit
  varlong (at most 10 bytes), which also covers every 32-bit varint.

Readers take a buffer and a position and return (value, next position). Running off the end raises
IndexError, for free, because the bytes are indexed directly; the callers turn it into their own failure
(a truncated record, a malformed request). A varint longer than its type raises VarintError.
"""

from __future__ import annotations

from strom.protocol.errors import VarintError

_SMALL = [bytes([z]) for z in range(0x80)]


def read_uvarint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """An unsigned varint of at most 5 bytes at `pos`: (value, next position)."""
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    return _read_unsigned(buf, pos + 1, byte & 0x7F, 5)


def read_uvarlong(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """An unsigned varint of up to 64 bits (at most 10 bytes) at `pos`: (value, next position).

    Not a Kafka wire type: strom.lsm stores its lengths, sequence numbers and file numbers this way (LevelDB's
    varint64), and reads them here so that strom has one varint implementation."""
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    return _read_unsigned(buf, pos + 1, byte & 0x7F, 10)


def _read_unsigned(
    buf: bytes | bytearray | memoryview, pos: int, value: int, max_bytes: int
) -> tuple[int, int]:
    """The multi-byte loop both unsigned readers share, from the second byte at `pos` with the first byte's
    7 bits in `value`; they differ only in `max_bytes`, and keep the one-byte case (most lengths and tags)
    inline so it costs no extra call."""
    shift = 7
    last_shift = 7 * (max_bytes - 1)
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > last_shift:
            raise VarintError(f"unsigned varint ending at byte {pos} is longer than {max_bytes} bytes")


def write_uvarint(value: int) -> bytes:
    """The unsigned varint of `value` (>= 0), of any width (a uvarint or, for strom.lsm, a uvarlong)."""
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """A zigzag varint (up to a 64-bit varlong) at `pos`: (value, next position)."""
    byte = buf[pos]
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), pos + 1
    result = byte & 0x7F
    shift = 7
    pos += 1
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise VarintError(f"varint at byte {pos} is longer than 10 bytes")


def write_varint(value: int) -> bytes:
    """The zigzag varint of a signed 64-bit integer."""
    z = (value << 1) ^ (value >> 63)
    if z < 0x80:
        return _SMALL[z]
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)
