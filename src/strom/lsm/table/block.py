"""Data and index blocks: a sorted run of entries laid out for cheap lookups from Python.

Contents of a block (docs/lsm-format.md, "Blocks")::

    keys (concatenated) | values (concatenated) | key offsets (u32 x n+1) | value offsets (u32 x n+1) | n
    (u32)

Key ``i`` is ``contents[K[i]:K[i+1]]``. Value ``i`` is ``contents[V[i] & ~T : V[i+1] & ~T]`` where bit 31 (T)
of ``V[i+1]`` marks entry ``i`` as a tombstone. Two ``unpack_from`` calls decode a block's whole directory,
after which a binary search costs one slice and one comparison per step: every entry is a restart point, so
there is no prefix compression (random keys share little prefix anyway).

On disk each block is followed by a 5-byte trailer: compression type (u8: 0 none, 1 lz4, 2 zstd) and a masked
CRC-32C of the stored bytes and the type byte, seeded with the block's file offset so a block read from the
wrong place fails verification too.
"""

from __future__ import annotations

import mmap
import struct
from itertools import accumulate

import cramjam

from ..errors import CorruptionError
from .checksum import crc32c, mask

TOMBSTONE_BIT = 0x80000000
OFFSET_MASK = 0x7FFFFFFF
TRAILER_SIZE = 5
NO_COMPRESSION, LZ4, ZSTD = 0, 1, 2
COMPRESSION_BY_NAME = {"none": NO_COMPRESSION, "lz4": LZ4, "zstd": ZSTD}

_U32 = struct.Struct("<I")
_TRAILER = struct.Struct("<BI")
_OFFSET_STRUCTS: dict[int, struct.Struct] = {}
_TYPE_BYTE = [bytes((i,)) for i in range(256)]

# (contents, key offsets, value offsets, entry count)
DecodedBlock = tuple[bytes, tuple[int, ...], tuple[int, ...], int]


def _offsets(n: int) -> struct.Struct:
    s = _OFFSET_STRUCTS.get(n)
    if s is None:
        s = _OFFSET_STRUCTS[n] = struct.Struct(f"<{n}I")
    return s


def encode_block(keys: list[bytes], values: list[bytes | None]) -> bytes:
    """Contents of a block holding ``keys`` (sorted, unique) and their values (None = tombstone)."""
    n = len(keys)
    koffs = list(accumulate(map(len, keys), initial=0))
    kend = koffs[-1]
    vals = [b"" if v is None else v for v in values]
    voffs = list(accumulate(map(len, vals), initial=kend))
    for i, v in enumerate(values):
        if v is None:
            voffs[i + 1] |= TOMBSTONE_BIT
    if voffs[-1] & OFFSET_MASK >= TOMBSTONE_BIT:
        raise ValueError("block larger than 2 GiB")
    s = _offsets(n + 1)
    return b"".join((*keys, *vals, s.pack(*koffs), s.pack(*voffs), _U32.pack(n)))


def decode_block(contents: bytes) -> DecodedBlock:
    """Parse a block's directory. Raises CorruptionError when the layout is inconsistent."""
    n, kdir = check_directory(contents)
    s = _offsets(n + 1)
    koffs: tuple[int, ...] = s.unpack_from(contents, kdir)
    voffs: tuple[int, ...] = s.unpack_from(contents, kdir + 4 * (n + 1))
    return contents, koffs, voffs, n


def check_directory(contents: bytes) -> tuple[int, int]:
    """``(entry count, offset of the key offsets)`` of a block, after checking that the directory's first and
    last offsets agree with the block's size (cheap: the checksum has vouched for the bytes). Raises
    CorruptionError when they do not."""
    size = len(contents)
    if size < 12:
        raise CorruptionError(f"block of {size} bytes is too short")
    n = _U32.unpack_from(contents, size - 4)[0]
    kdir = size - 4 - 8 * (n + 1)
    if kdir < 0:
        raise CorruptionError(f"block declares {n} entries, more than its {size} bytes can hold")
    vdir = kdir + 4 * (n + 1)
    k0, kn = _U32.unpack_from(contents, kdir)[0], _U32.unpack_from(contents, vdir - 4)[0]
    v0, vn = _U32.unpack_from(contents, vdir)[0], _U32.unpack_from(contents, size - 8)[0]
    if k0 != 0 or kn != v0 or vn & OFFSET_MASK != kdir:
        raise CorruptionError("block directory does not match its contents")
    return n, kdir


def block_items(block: DecodedBlock, lo: int = 0, hi: int | None = None) -> list[tuple[bytes, bytes | None]]:
    """Entries ``lo..hi`` of a decoded block, in order (tombstones as None)."""
    buf, K, V, n = block
    return [
        (buf[K[i] : K[i + 1]], None if V[i + 1] & TOMBSTONE_BIT else buf[V[i] & OFFSET_MASK : V[i + 1]])
        for i in range(lo, n if hi is None else hi)
    ]


def lower_bound(block: DecodedBlock, key: bytes) -> int:
    """Index of the first entry whose key is >= ``key`` (``n`` if none)."""
    buf, K, _V, n = block
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if buf[K[mid] : K[mid + 1]] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


def seal(contents: bytes, offset: int, compression: int) -> bytes:
    """Stored form of a block at file ``offset``: maybe-compressed contents plus the trailer."""
    ctype = NO_COMPRESSION
    stored = contents
    if compression == LZ4:
        packed = bytes(cramjam.lz4.compress_block(contents))
        if len(packed) < len(contents) - len(contents) // 8:
            stored, ctype = packed, LZ4
    elif compression == ZSTD:
        packed = bytes(cramjam.zstd.compress(contents))
        if len(packed) < len(contents) - len(contents) // 8:
            stored, ctype = packed, ZSTD
    crc = crc32c(_TYPE_BYTE[ctype], crc32c(stored, offset & 0xFFFFFFFF))
    return stored + _TRAILER.pack(ctype, mask(crc))


def unseal(buf: bytes | mmap.mmap, offset: int, size: int, path: str) -> bytes:
    """Verify the stored block (trailer included) at ``buf[offset:offset + size]`` and return its contents."""
    if size < TRAILER_SIZE or offset + size > len(buf):
        raise CorruptionError(f"{path}: block at offset {offset} is truncated")
    body_len = size - TRAILER_SIZE
    ctype, crc = _TRAILER.unpack_from(buf, offset + body_len)
    body = buf[offset : offset + body_len]
    if mask(crc32c(_TYPE_BYTE[ctype], crc32c(body, offset & 0xFFFFFFFF))) != crc:
        raise CorruptionError(f"{path}: checksum mismatch in block at offset {offset} ({body_len} bytes)")
    if ctype == NO_COMPRESSION:
        return body
    try:
        if ctype == LZ4:
            return bytes(cramjam.lz4.decompress_block(body))
        if ctype == ZSTD:
            return bytes(cramjam.zstd.decompress(body))
    except Exception as exc:  # cramjam raises its own DecompressionError
        raise CorruptionError(f"{path}: block at offset {offset} does not decompress: {exc}") from exc
    raise CorruptionError(f"{path}: block at offset {offset} has unknown compression type {ctype}")
