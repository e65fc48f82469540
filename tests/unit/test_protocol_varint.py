"""strom.protocol.varint: the one varint implementation, checked against its definition."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strom.protocol.errors import VarintError
from strom.protocol.varint import read_uvarint, read_uvarlong, read_varint, write_uvarint, write_varint


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_zigzag_varints_round_trip_every_64_bit_value(value: int) -> None:
    encoded = write_varint(value)
    assert len(encoded) <= 10
    assert read_varint(b"\xff" + encoded + b"\x00", 1) == (value, 1 + len(encoded))


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_unsigned_varints_round_trip_every_32_bit_value(value: int) -> None:
    encoded = write_uvarint(value)
    assert len(encoded) <= 5
    assert read_uvarint(encoded + b"\x00", 0) == (value, len(encoded))


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_unsigned_varlongs_round_trip_every_64_bit_value(value: int) -> None:
    encoded = write_uvarint(value)
    assert len(encoded) <= 10
    assert read_uvarlong(encoded + b"\x00", 0) == (value, len(encoded))


def test_zigzag_interleaves_signs_as_kafka_does() -> None:
    assert [write_varint(v) for v in (0, -1, 1, -2, 63, -64, 64)] == [
        b"\x00",
        b"\x01",
        b"\x02",
        b"\x03",
        b"\x7e",
        b"\x7f",
        b"\x80\x01",
    ]


def test_a_varint_cut_short_raises_index_error() -> None:
    with pytest.raises(IndexError):
        read_uvarint(b"\x80\x80", 0)
    with pytest.raises(IndexError):
        read_varint(b"\xff", 0)


def test_overlong_varints_are_refused_naming_the_limit() -> None:
    with pytest.raises(VarintError, match="longer than 5 bytes"):
        read_uvarint(b"\x80" * 5 + b"\x01", 0)
    with pytest.raises(VarintError, match="longer than 10 bytes"):
        read_varint(b"\x80" * 10 + b"\x01", 0)
    with pytest.raises(VarintError, match="longer than 10 bytes"):
        read_uvarlong(b"\x80" * 10 + b"\x01", 0)
