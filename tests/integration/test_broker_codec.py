"""The broker's wire encoding checked against an independent decoder (kio's generated schemas)."""

from __future__ import annotations

import struct
import uuid
from typing import Any

import pytest
from kio.index import load_response_schema
from kio.serial import entity_reader

from strom.protocol.api_keys import ApiKey
from strom.protocol.codec import (
    api_versions_fallback,
    build,
    decode_request,
    encode_response,
    response_header,
)
from strom.protocol.error_codes import ErrorCode
from strom.protocol.errors import MalformedRequest
from strom.protocol.fetch_response import PartitionResult, encode_fetch_response
from strom.protocol.framing import part_size, read_request_header
from strom.protocol.produce_response import PartitionAck, encode_produce_response
from strom.protocol.records import BatchBuilder
from tests.support.wire import decode_response, request_frame


class _Region:
    """A file region stand-in holding its bytes, to check the layout around sendfile parts."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position, self.size = data, 0, len(data)

    def fileno(self) -> int:
        raise AssertionError("not sent here")


def _flatten(parts: list) -> bytes:  # type: ignore[type-arg]
    return b"".join(p.data if isinstance(p, _Region) else bytes(p) for p in parts)


@pytest.mark.parametrize("version", range(4, 13))
def test_fetch_response_matches_the_schema_of_every_version(version: int) -> None:
    builder = BatchBuilder()
    builder.append(key=b"k", value=b"v" * 100, timestamp=1_700_000_000_000)
    batch = builder.build()
    topics = [
        (
            "orders",
            [
                PartitionResult(0, 0, 10, 10, 0, _Region(batch)),
                PartitionResult(1, 1, 5, 5, 2, None),
                PartitionResult(2, 0, 7, 7, 0, b""),
            ],
        ),
        ("ünïcode-topic", [PartitionResult(3, 0, 1, 1, 0, batch)]),
    ]
    parts = encode_fetch_response(version, 0, topics)
    body = _flatten(parts)
    assert sum(part_size(p) for p in parts) == len(body)
    cls = load_response_schema(1, version)
    decoded, used = entity_reader(cls)(body, 0)
    assert used == len(body)
    (orders, other) = decoded.responses
    assert orders.topic == "orders" and other.topic == "ünïcode-topic"
    p0, p1, p2 = orders.partitions
    assert (p0.partition_index, p0.error_code, p0.high_watermark, bytes(p0.records)) == (0, 0, 10, batch)
    assert (p1.error_code, p1.records) == (1, b"")
    assert p2.records == b""
    if version >= 5:
        assert p1.log_start_offset == 2
    assert bytes(other.partitions[0].records) == batch


@pytest.mark.parametrize("version", range(3, 10))
def test_produce_response_matches_the_schema_of_every_version(version: int) -> None:
    topics = [
        ("orders", [PartitionAck(0, 0, 42, -1, 7, None), PartitionAck(3, 2, -1, -1, -1, "bad crc in batch")]),
        ("ünïcode", [PartitionAck(1, 0, 0, 1_700_000_000_123, 0, None)]),
    ]
    body = encode_produce_response(version, topics)
    decoded, used = entity_reader(load_response_schema(0, version))(body, 0)
    assert used == len(body)
    orders, other = decoded.responses
    assert (orders.name, other.name) == ("orders", "ünïcode")
    ok, bad = orders.partition_responses
    assert (ok.index, ok.error_code, ok.base_offset) == (0, 0, 42)
    assert (bad.index, bad.error_code) == (3, 2)
    assert other.partition_responses[0].log_append_time.timestamp() == 1_700_000_000.123
    if version >= 5:
        assert ok.log_start_offset == 7
    if version >= 8:
        assert bad.error_message == "bad crc in batch" and ok.error_message is None
        assert bad.record_errors == ()


def test_build_drops_fields_a_version_lacks_and_converts_plain_values() -> None:
    values = {"throttle_time": 5, "error_code": 0, "producer_id": 7, "producer_epoch": 0}
    for version in range(5):
        frame = encode_response(22, version, 99, values)
        resp = decode_response(22, version, frame[4:], 99)
        assert resp.producer_id == 7
        assert resp.throttle_time.total_seconds() == 0.005


def test_build_refuses_to_invent_required_fields() -> None:
    with pytest.raises(KeyError, match="producer_id"):
        build(load_response_schema(22, 4), {"error_code": 0})


def test_api_versions_fallback_is_a_v0_body_with_unsupported_version() -> None:
    frame = api_versions_fallback(12, {18: (0, 4), 3: (0, 12)})
    resp = decode_response(18, 0, frame[4:], 12)
    assert resp.error_code == ErrorCode.UNSUPPORTED_VERSION
    assert [(k.api_key, k.min_version, k.max_version) for k in resp.api_keys] == [(3, 0, 12), (18, 0, 4)]


def test_request_header_tagged_fields_are_skipped() -> None:
    frame = request_frame(
        ApiKey.API_VERSIONS, 3, 4, {"client_software_name": "x", "client_software_version": "1"}
    )[4:]
    # Header v2 ends with an empty tagged-field section right after client_id "t"; add an unknown tag 7.
    head_len = 2 + 2 + 4 + 2 + 1
    assert frame[head_len] == 0
    patched = frame[:head_len] + bytes([1, 7, 2, 0xAA, 0xBB]) + frame[head_len + 1 :]
    header = read_request_header(patched)
    assert header.correlation_id == 4
    assert decode_request(header, patched).client_software_name == "x"


def _decode(frame: bytes) -> Any:
    return decode_request(read_request_header(frame), frame)


def _header_v2(api_key: int, version: int, correlation_id: int) -> bytes:
    return struct.pack(">hhih", api_key, version, correlation_id, 1) + b"t" + b"\x00"


def test_unknown_tagged_fields_in_a_body_are_skipped() -> None:
    topic_id = uuid.uuid4()

    def metadata_v12(topic_tags: bytes, body_tags: bytes) -> bytes:
        topic = topic_id.bytes + bytes([len("orders") + 1]) + b"orders" + topic_tags
        return _header_v2(3, 12, 9) + bytes([2]) + topic + b"\x01\x00" + body_tags

    clean = _decode(metadata_v12(b"\x00", b"\x00"))
    # Unknown tag 7 (3 bytes) inside the topic struct, unknown tags 5 and 6 at the end of the body.
    tagged = _decode(metadata_v12(b"\x01\x07\x03abc", b"\x02\x05\x01z\x06\x00"))
    assert tagged == clean
    assert tagged.topics[0].name == "orders" and tagged.topics[0].topic_id == topic_id


def test_a_body_that_ends_inside_a_tag_is_malformed() -> None:
    frame = _header_v2(18, 3, 1) + b"\x02x\x021" + b"\x01\x07\x09ab"  # tag 7 claims 9 bytes, has 2
    with pytest.raises(MalformedRequest):
        _decode(frame)


@pytest.mark.parametrize(
    "frame",
    [
        # Metadata v8 (not flexible): a topics array claiming 2^31-1 entries, then nothing.
        struct.pack(">hhih", 3, 8, 1, 1) + b"t" + b"\x7f\xff\xff\xff",
        # Metadata v12 (flexible): a compact array count of 2^34 in a 5-byte uvarint.
        _header_v2(3, 12, 1) + b"\x80\x80\x80\x80\x40",
        # Produce v9: one topic whose partition array claims 10^9 entries.
        _header_v2(0, 9, 1) + b"\x00\x00\x01\x00\x00\x13\x88\x02\x02t" + b"\x80\x94\xeb\xdc\x03",
        # A mutated Fetch v12 found by fuzzing: kio alone aborts the process trying to allocate 83 GB.
        bytes.fromhex(
            "0001000c0000000100017400ffffffff00000000000000000000006400009d1489ac000000ffffffff2602740200000000"
            "ffffffff0000000000000000ffffffffffddc8ffffffffffffff0000000a0000010100dcdcd8bb"
        ),
    ],
    ids=["legacy-array", "compact-array", "nested-array", "fuzzed-fetch"],
)
def test_absurd_array_counts_are_refused_before_allocation(frame: bytes) -> None:
    # kio itself would reserve memory for the announced count and abort the process.
    with pytest.raises(MalformedRequest, match=r"exceeds|ends inside"):
        _decode(frame)


@pytest.mark.parametrize("api", [(0, 8), (0, 9), (1, 11), (1, 12), (18, 0), (18, 4), (3, 12)])
def test_response_header_matches_the_schema(api: tuple[int, int]) -> None:
    api_key, version = api
    header_cls = load_response_schema(api_key, version).__header_schema__
    header, used = entity_reader(header_cls)(response_header(api_key, version, 4242), 0)
    assert header.correlation_id == 4242
    assert used == len(response_header(api_key, version, 4242))
