"""Compression codecs of Kafka RecordBatch v2, with the framings Kafka clients actually use.

In a compressed batch everything after `recordsCount` is one compressed block. The codec is named by bits 0-2
of the batch attributes. Framing matters for interoperability:

- gzip: an RFC 1952 stream (possibly several members).
- snappy: the Java client writes the xerial `SnappyOutputStream` framing (a 16-byte header, then blocks each
  prefixed by a big-endian int32 length); librdkafka and some Go clients write a raw snappy block. We read
  both and write xerial, which every client reads.
- lz4: the LZ4 frame format with independent blocks (the Java client's `KafkaLZ4BlockInputStream`
  decompresses each block on its own, so linked blocks would break it).
- zstd: a zstd frame.

All work is delegated to `cramjam`; decoding failures become `InvalidRecordError` naming the codec.

Decompressing what a client sent takes a bound (`limit`): cramjam's `decompress_into` writes into a buffer of
that size and stops with an error the moment it is full, so a 35 KB zstd block that would expand to 1 GiB
costs one `limit`-sized buffer and a few microseconds, not the gigabyte (`DecompressedTooLargeError`). Raw
snappy declares its length up front and is checked before anything is decompressed.
"""

from __future__ import annotations

import enum
import struct
from types import ModuleType

import cramjam

from strom.protocol.errors import DecompressedTooLargeError, InvalidRecordError, UnsupportedCompressionError


class Compression(enum.IntEnum):
    """Codec ids as stored in attribute bits 0-2."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4

    @classmethod
    def from_attributes(cls, attributes: int) -> Compression:
        """The codec named by a batch's attributes; raises UnsupportedCompressionError for ids 5-7."""
        codec = attributes & 0x07
        if codec > 4:
            raise UnsupportedCompressionError(
                f"record batch names compression codec {codec}; supported are 0-4 "
                "(none, gzip, snappy, lz4, zstd)"
            )
        return cls(codec)

    @classmethod
    def from_name(cls, name: str) -> Compression:
        """Parse a Kafka `compression.type` value (`none`, `gzip`, `snappy`, `lz4`, `zstd`)."""
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(
                f"unknown compression type {name!r}; expected one of none, gzip, snappy, lz4, zstd"
            ) from None


_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024  # the Java SnappyOutputStream default block size
_INT32 = struct.Struct(">i")


def compress(codec: Compression, data: bytes | bytearray | memoryview) -> bytes:
    """Compress `data` with `codec` in the framing the Java client reads."""
    if codec is Compression.NONE:
        return bytes(data)
    if codec is Compression.GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec is Compression.SNAPPY:
        return _xerial_encode(memoryview(data))
    if codec is Compression.LZ4:
        # Level 0 is LZ4's fast mode (the Java client's default compressor); cramjam's default is LZ4HC,
        # about 8x slower, which would make the cleaner's recompression the bottleneck.
        compressor = cramjam.lz4.Compressor(level=0, content_checksum=False, block_linked=False)
        compressor.compress(data)
        return bytes(compressor.finish())
    if codec is Compression.ZSTD:
        return bytes(cramjam.zstd.compress(data))
    raise UnsupportedCompressionError(f"cannot compress with codec {int(codec)}")


def decompress(codec: Compression, data: bytes | bytearray | memoryview, limit: int | None = None) -> bytes:
    """Decompress one batch's records block; raises InvalidRecordError when the data is not valid, and
    DecompressedTooLargeError when `limit` is given and the output would exceed it (checked while
    decompressing: the output never grows past `limit` bytes)."""
    try:
        if codec is Compression.NONE:
            out = bytes(data)
        elif codec is Compression.SNAPPY:
            view = memoryview(data)
            if view[: len(_XERIAL_MAGIC)] == _XERIAL_MAGIC:
                out = _xerial_decode(view, limit)
            else:
                out = _snappy_raw(view, limit, len(data))
        elif codec in _BOUNDED:
            module = _BOUNDED[codec]
            if limit is None:
                return bytes(module.decompress(data))
            return _bounded(module, codec, data, limit)
        else:
            raise UnsupportedCompressionError(f"cannot decompress codec {int(codec)}")
    except cramjam.DecompressionError as exc:
        raise InvalidRecordError(
            f"{codec.name.lower()} records block of {len(data)} bytes does not decompress: {exc}"
        ) from None
    if limit is not None and len(out) > limit:
        raise _too_large(codec, len(data), limit)
    return out


# The codecs whose cramjam `decompress_into` stops at the end of the output buffer, and the message it
# stops with (cramjam raises the same DecompressionError class for a full buffer and for bad data).
_BOUNDED = {Compression.GZIP: cramjam.gzip, Compression.LZ4: cramjam.lz4, Compression.ZSTD: cramjam.zstd}
_BUFFER_FULL = "failed to write whole buffer"


def _bounded(
    module: ModuleType, codec: Compression, data: bytes | bytearray | memoryview, limit: int
) -> bytes:
    """Decompress into a buffer that starts at a guess from the input size and doubles up to `limit`.

    Sizing the buffer at `limit` at once would zero-fill megabytes for every batch; a buffer that fills
    is retried twice as large, so a block costs at most about twice its output, and a bomb at most about
    twice `limit` before it is refused.
    """
    size = min(limit, max(_FIRST_GUESS, _GUESS_RATIO * len(data)))
    while True:
        buffer = bytearray(size)
        try:
            written = module.decompress_into(data, buffer)
        except cramjam.DecompressionError as exc:
            if _BUFFER_FULL not in str(exc):
                raise
            if size >= limit:
                raise _too_large(codec, len(data), limit) from None
            del buffer  # released before the next one is allocated: the peak stays one buffer
            size = min(limit, size * 2)
            continue
        del buffer[written:]
        return bytes(buffer)


_FIRST_GUESS = 64 * 1024
_GUESS_RATIO = 8


def _too_large(codec: Compression, size: int, limit: int) -> DecompressedTooLargeError:
    return DecompressedTooLargeError(
        f"{codec.name.lower()} records block of {size} bytes decompresses to more than {limit} bytes, "
        "the bound its reader set for a batch's records"
    )


def _snappy_raw(view: memoryview, limit: int | None, size: int) -> bytes:
    """A raw snappy block, its declared length checked against `limit` before decompressing."""
    if limit is not None and cramjam.snappy.decompress_raw_len(view) > limit:
        raise _too_large(Compression.SNAPPY, size, limit)
    return bytes(cramjam.snappy.decompress_raw(view))


def _xerial_encode(data: memoryview) -> bytes:
    parts = [_XERIAL_HEADER]
    for start in range(0, len(data), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(data[start : start + _XERIAL_BLOCK]))
        parts.append(_INT32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _xerial_decode(data: memoryview, limit: int | None) -> bytes:
    pos = len(_XERIAL_HEADER)
    left = limit
    if len(data) < pos:
        raise InvalidRecordError(f"xerial snappy header truncated: {len(data)} of {pos} bytes")
    out = []
    while pos < len(data):
        if pos + 4 > len(data):
            raise InvalidRecordError(f"xerial snappy block length truncated at byte {pos} of {len(data)}")
        (size,) = _INT32.unpack_from(data, pos)
        pos += 4
        if size < 0 or pos + size > len(data):
            raise InvalidRecordError(
                f"xerial snappy block of {size} bytes at byte {pos} overruns the {len(data)}-byte block"
            )
        block = data[pos : pos + size]
        out.append(_snappy_raw(block, left, len(data)))
        if left is not None:
            left -= len(out[-1])
        pos += size
    return b"".join(out)
