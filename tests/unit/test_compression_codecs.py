"""Compression codecs: round trips, the framings real clients write, and clear errors on bad data."""

from __future__ import annotations

import gzip
import struct

import cramjam
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strom.protocol.compression import Compression, compress, decompress
from strom.protocol.errors import InvalidRecordError, UnsupportedCompressionError


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=5000), codec=st.sampled_from(list(Compression)))
def test_every_codec_round_trips(data: bytes, codec: Compression) -> None:
    assert decompress(codec, compress(codec, data)) == data


def test_large_inputs_round_trip_across_block_boundaries() -> None:
    data = bytes(range(256)) * 1000 + b"tail"  # > 64 KiB lz4 blocks, > 32 KiB snappy blocks
    for codec in Compression:
        assert decompress(codec, memoryview(compress(codec, data))) == data


def test_snappy_is_written_in_xerial_framing_as_java_reads_it() -> None:
    data = b"abc" * 30_000
    framed = compress(Compression.SNAPPY, data)
    assert framed[:16] == b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    (first_block,) = struct.unpack_from(">i", framed, 16)
    assert bytes(cramjam.snappy.decompress_raw(framed[20 : 20 + first_block])) == data[: 32 * 1024]


def test_raw_snappy_from_librdkafka_is_read() -> None:
    data = b"librdkafka writes raw snappy " * 50
    assert decompress(Compression.SNAPPY, bytes(cramjam.snappy.compress_raw(data))) == data


def test_lz4_frames_use_independent_blocks() -> None:
    frame = compress(Compression.LZ4, b"x" * 200_000)
    assert frame[:4] == b"\x04\x22\x4d\x18"
    flags = frame[4]
    assert flags >> 6 == 1  # frame version 01
    assert flags & 0x20  # block independence: Kafka's Java reader decodes each block alone


def test_gzip_from_the_standard_library_is_read() -> None:
    assert decompress(Compression.GZIP, gzip.compress(b"hello" * 10)) == b"hello" * 10


@pytest.mark.parametrize("codec", [c for c in Compression if c is not Compression.NONE])
def test_garbage_is_an_invalid_record_naming_the_codec(codec: Compression) -> None:
    with pytest.raises(InvalidRecordError, match=codec.name.lower()):
        decompress(codec, b"\x01\x02garbage that is not compressed")


def test_truncated_xerial_block_is_named() -> None:
    framed = compress(Compression.SNAPPY, b"abc" * 1000)
    with pytest.raises(InvalidRecordError, match="xerial"):
        decompress(Compression.SNAPPY, framed[:-3])


def test_codec_ids_and_names() -> None:
    assert Compression.from_attributes(0x14) is Compression.ZSTD
    assert Compression.from_name("snappy") is Compression.SNAPPY
    with pytest.raises(UnsupportedCompressionError, match="codec 7"):
        Compression.from_attributes(7)
    with pytest.raises(ValueError, match="brotli"):
        Compression.from_name("brotli")
