"""`__consumer_offsets` key/value schemas: Kafka's byte layouts, every readable version, and partitioning."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strom.broker.coordinator.schema import (
    GroupKey,
    GroupValue,
    MemberValue,
    OffsetKey,
    OffsetValue,
    SchemaError,
    decode_group_value,
    decode_key,
    decode_offset_value,
    encode_group_key,
    encode_group_value,
    encode_offset_key,
    encode_offset_value,
    java_string_hash,
    partition_for,
    subscribed_topics,
)


def test_offset_key_layout_matches_kafka() -> None:
    assert (
        encode_offset_key(OffsetKey("g", "t", 3))
        == b"\x00\x01" + b"\x00\x01g" + b"\x00\x01t" + b"\x00\x00\x00\x03"
    )
    assert decode_key(b"\x00\x00\x00\x01g\x00\x01t\x00\x00\x00\x03") == OffsetKey("g", "t", 3)  # key v0


def test_group_key_layout_matches_kafka() -> None:
    assert encode_group_key(GroupKey("grp")) == b"\x00\x02\x00\x03grp"
    assert decode_key(b"\x00\x02\x00\x03grp") == GroupKey("grp")


def test_offset_value_v3_layout() -> None:
    data = encode_offset_value(OffsetValue(42, 7, "md", 1000))
    assert data == struct.pack(">hqih2sq", 3, 42, 7, 2, b"md", 1000)
    assert decode_offset_value(data) == OffsetValue(42, 7, "md", 1000)


def test_offset_value_with_expiry_is_v1() -> None:
    data = encode_offset_value(OffsetValue(42, -1, "", 1000, 5000))
    assert data[:2] == b"\x00\x01"
    assert decode_offset_value(data) == OffsetValue(42, -1, "", 1000, 5000)


def test_offset_value_old_and_flexible_versions_decode() -> None:
    v0 = struct.pack(">hqh1sq", 0, 5, 1, b"m", 77)
    assert decode_offset_value(v0) == OffsetValue(5, -1, "m", 77)
    v2 = struct.pack(">hqh1sq", 2, 5, 1, b"m", 77)
    assert decode_offset_value(v2) == OffsetValue(5, -1, "m", 77)
    # v4: flexible: compact string (length+1 as uvarint) and an empty tagged-field section
    v4 = struct.pack(">hqi", 4, 5, 9) + b"\x02m" + struct.pack(">q", 77) + b"\x00"
    assert decode_offset_value(v4) == OffsetValue(5, 9, "m", 77)
    # unknown tagged fields are skipped
    v4_tags = v4[:-1] + b"\x01\x05\x02ab"
    assert decode_offset_value(v4_tags) == OffsetValue(5, 9, "m", 77)


def test_group_value_round_trip_and_layout_prefix() -> None:
    member = MemberValue("m-1", "inst", "cli", "/127.0.0.1", 30000, 10000, b"sub", b"asg")
    value = GroupValue("consumer", 4, "range", "m-1", 123, (member,))
    data = encode_group_value(value)
    assert data.startswith(b"\x00\x03\x00\x08consumer\x00\x00\x00\x04\x00\x05range\x00\x03m-1")
    assert decode_group_value(data) == value
    empty = GroupValue("consumer", 5, None, None, 9, ())
    assert decode_group_value(encode_group_value(empty)) == empty


def test_group_value_v0_without_rebalance_timeout() -> None:
    data = (
        struct.pack(">h", 0)
        + b"\x00\x08consumer"
        + struct.pack(">i", 1)
        + b"\x00\x05range"
        + b"\x00\x01m"
        + struct.pack(">i", 1)
        + b"\x00\x01m"
        + b"\x00\x01c"
        + b"\x00\x01h"
        + struct.pack(">i", 6000)
        + struct.pack(">i", 1)
        + b"s"
        + struct.pack(">i", 1)
        + b"a"
    )
    got = decode_group_value(data)
    assert got.members[0] == MemberValue("m", None, "c", "h", 6000, 6000, b"s", b"a")
    assert got.current_state_timestamp == -1


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x00\x07\x00\x01g", b"\x00\x01\x00\x05g", b"\x00\x02\x00\x01g\x00", b"\x00\x02\xff\xfe"],
)
def test_bad_keys_raise_schema_error(data: bytes) -> None:
    with pytest.raises(SchemaError):
        decode_key(data)


def test_bad_values_raise_schema_error() -> None:
    with pytest.raises(SchemaError):
        decode_offset_value(b"\x00\x09")
    with pytest.raises(SchemaError):
        decode_group_value(b"\x00\x03\x00")
    with pytest.raises(SchemaError):
        decode_offset_value(encode_offset_value(OffsetValue(1, 1, "", 1)) + b"x")


@given(
    st.text(max_size=50),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(2**31), 2**31 - 1),
    st.text(max_size=100),
    st.integers(0, 2**62),
    st.one_of(st.none(), st.integers(0, 2**62)),
)
def test_offset_records_round_trip(
    group: str, offset: int, epoch: int, md: str, ts: int, exp: int | None
) -> None:
    key = OffsetKey(group, "topic", 5)
    assert decode_key(encode_offset_key(key)) == key
    value = OffsetValue(offset, -1 if exp is not None else epoch, md, ts, exp)
    assert decode_offset_value(encode_offset_value(value)) == value


def test_java_string_hash_and_partition() -> None:
    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("polygenelubricants") == -(2**31)  # the famous Integer.MIN_VALUE hash
    assert java_string_hash("\U0001f600") == 1772899  # surrogate pair, as Java sees it
    assert partition_for("polygenelubricants", 50) == 0  # Utils.abs masks the sign bit
    assert all(0 <= partition_for(f"g{i}", 50) < 50 for i in range(100))


def test_subscribed_topics_parsing() -> None:
    sub = (
        struct.pack(">hi", 1, 2) + b"\x00\x01a" + b"\x00\x02bb" + struct.pack(">i", -1) + struct.pack(">i", 0)
    )
    assert subscribed_topics(sub) == frozenset({"a", "bb"})
    assert subscribed_topics(b"") is None
    assert subscribed_topics(struct.pack(">hi", 0, 1000)) is None
    assert subscribed_topics(struct.pack(">hi", -1, 0)) is None
