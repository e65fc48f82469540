"""WriteBatch: an atomic group of puts and deletes, and its WAL payload (LevelDB's write_batch format).

Payload: ``sequence (u64 LE) | count (u32 LE)`` then per entry a tag byte (1 = put, 0 = delete), the varint
length and bytes of the key, and for a put the varint length and bytes of the value. The batch takes the
consecutive sequence numbers starting at the header's; recovery applies a whole batch or none of it.
"""

from __future__ import annotations

import struct

from .errors import CorruptionError
from .table.coding import VARINT, decode_varint, varint

TAG_DELETE = 0
TAG_PUT = 1
BATCH_HEADER = struct.Struct("<QI")
_PUT_HEADER = struct.Struct("<QIB")  # header + tag of a single-put batch


def check_bytes(obj: object, name: str) -> bytes:
    """Return ``obj`` as bytes or raise TypeError naming the argument (bytes subclasses are copied)."""
    if isinstance(obj, bytes):
        return bytes(obj)
    raise TypeError(f"{name} must be bytes, not {type(obj).__name__}")


class WriteBatch:
    """Puts and deletes applied atomically by ``DB.write``; later entries for a key override earlier ones.

    Keys and values are checked to be bytes when added, so ``DB.write`` never fails half-way on bad input.
    """

    __slots__ = ("_ops",)

    def __init__(self) -> None:
        self._ops: list[tuple[bytes, bytes | None]] = []

    def put(self, key: bytes, value: bytes) -> WriteBatch:
        """Add a put; returns the batch so calls can be chained."""
        if type(key) is not bytes:
            key = check_bytes(key, "key")
        if type(value) is not bytes:
            value = check_bytes(value, "value")
        self._ops.append((key, value))
        return self

    def delete(self, key: bytes) -> WriteBatch:
        """Add a delete (a tombstone); returns the batch."""
        if type(key) is not bytes:
            key = check_bytes(key, "key")
        self._ops.append((key, None))
        return self

    def clear(self) -> None:
        """Remove every entry."""
        self._ops.clear()

    def __len__(self) -> int:
        return len(self._ops)

    @property
    def ops(self) -> list[tuple[bytes, bytes | None]]:
        """The entries in order: ``(key, value)`` for a put, ``(key, None)`` for a delete."""
        return self._ops


def encode_batch(seq: int, ops: list[tuple[bytes, bytes | None]]) -> bytes:
    """WAL payload of ``ops`` starting at sequence ``seq``."""
    parts = [BATCH_HEADER.pack(seq, len(ops))]
    add = parts.append
    for key, value in ops:
        if value is None:
            add(b"\x00")
            add(varint(len(key)))
            add(key)
        else:
            add(b"\x01")
            add(varint(len(key)))
            add(key)
            add(varint(len(value)))
            add(value)
    return b"".join(parts)


def encode_put(seq: int, key: bytes, value: bytes) -> bytes:
    """WAL payload of a one-put batch (the hot path of ``DB.put``)."""
    kl = len(key)
    vl = len(value)
    if kl < 16384 and vl < 16384:
        return b"".join((_PUT_HEADER.pack(seq, 1, TAG_PUT), VARINT[kl], key, VARINT[vl], value))
    return encode_batch(seq, [(key, value)])


def decode_batch(payload: bytes) -> tuple[int, list[tuple[bytes, bytes | None]]]:
    """Parse a WAL payload into ``(first_sequence, ops)``; raises CorruptionError on a malformed payload."""
    if len(payload) < BATCH_HEADER.size:
        raise CorruptionError(f"write batch of {len(payload)} bytes is shorter than its 12-byte header")
    seq, count = BATCH_HEADER.unpack_from(payload, 0)
    pos = BATCH_HEADER.size
    ops: list[tuple[bytes, bytes | None]] = []
    end = len(payload)
    for _ in range(count):
        if pos >= end:
            raise CorruptionError(f"write batch declares {count} entries but holds {len(ops)}")
        tag = payload[pos]
        kl, pos = decode_varint(payload, pos + 1)
        key = payload[pos : pos + kl]
        pos += kl
        if tag == TAG_PUT:
            vl, pos = decode_varint(payload, pos)
            value: bytes | None = payload[pos : pos + vl]
            pos += vl
        elif tag == TAG_DELETE:
            value = None
        else:
            raise CorruptionError(f"unknown write batch tag {tag}")
        if pos > end:
            raise CorruptionError("write batch entry runs past the end of the payload")
        ops.append((key, value))
    if pos != end:
        raise CorruptionError(f"write batch has {end - pos} trailing bytes after {count} entries")
    return seq, ops
