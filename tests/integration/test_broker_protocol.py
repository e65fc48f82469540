"""The broker's protocol layer: ApiVersions negotiation, pipelining, Metadata, and hostile input."""

from __future__ import annotations

import os
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from strom.broker import EmbeddedBroker
from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from strom.protocol.records import BatchBuilder
from tests.support.brokers import running_strom
from tests.support.wire import WireClient, decode_response, request_frame

NO_OPS = {"include_topic_authorized_operations": False, "include_cluster_authorized_operations": False}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    config = {"num.partitions": 2, "socket.request.max.bytes": 1_000_000}
    with running_strom(tmp_path_factory.mktemp("protocol"), config) as b:
        yield b


def test_api_versions_v0_lists_every_advertised_api(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        resp = client.call(ApiKey.API_VERSIONS, 0, {})
    assert resp.error_code == ErrorCode.NONE
    ranges = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}
    assert ranges[18] == (0, 4)
    assert ranges[3] == (0, 12)


def test_api_versions_v3_with_bad_software_name_is_invalid_request(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        resp = client.call(
            ApiKey.API_VERSIONS, 3, {"client_software_name": "-bad name-", "client_software_version": "1.0"}
        )
    assert resp.error_code == ErrorCode.INVALID_REQUEST


def test_unsupported_api_versions_version_gets_v0_fallback(broker: EmbeddedBroker) -> None:
    # A version from the future: the body cannot be parsed, so the answer is v0 with UNSUPPORTED_VERSION.
    header = struct.pack(">hhih", 18, 99, 77, 1) + b"x" + b"\x00garbage"
    with WireClient(broker.bootstrap_servers) as client:
        client.send(struct.pack(">i", len(header)) + header)
        resp = decode_response(18, 0, client.read_frame(), 77)
        assert resp.error_code == ErrorCode.UNSUPPORTED_VERSION
        assert 18 in {k.api_key for k in resp.api_keys}
        # The connection stays usable for the retry at a supported version.
        assert (
            client.call(
                ApiKey.API_VERSIONS, 3, {"client_software_name": "t", "client_software_version": "1"}
            ).error_code
            == ErrorCode.NONE
        )


def test_pipelined_requests_are_answered_in_order(broker: EmbeddedBroker) -> None:
    frames = []
    for corr in range(1, 201):  # more than the 64 requests a connection buffers before it pauses reading
        if corr % 2:
            frames.append(request_frame(ApiKey.API_VERSIONS, 2, corr, {}))
        else:
            frames.append(request_frame(ApiKey.METADATA, 9, corr, {"topics": None, **NO_OPS}))
    with WireClient(broker.bootstrap_servers) as client:
        client.send(b"".join(frames))
        seen = [struct.unpack_from(">i", client.read_frame())[0] for _ in frames]
    assert seen == list(range(1, 201))


def test_answers_before_a_long_poll_are_not_held_back_by_it(broker: EmbeddedBroker) -> None:
    fetch = {
        "max_wait": 60_000,
        "min_bytes": 1,
        "max_bytes": 1 << 20,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [
            {
                "topic": "long-poll",
                "partitions": [
                    {"partition": 0, "fetch_offset": 0, "log_start_offset": -1, "partition_max_bytes": 1024}
                ],
            }
        ],
        "forgotten_topics_data": [],
        "rack_id": "",
    }
    with WireClient(broker.bootstrap_servers, timeout=20) as client:
        client.call(
            ApiKey.METADATA,
            9,
            {"topics": [{"name": "long-poll"}], "allow_auto_topic_creation": True, **NO_OPS},
        )
        client.send(
            request_frame(ApiKey.API_VERSIONS, 2, 501, {}) + request_frame(ApiKey.FETCH, 12, 502, fetch)
        )
        # Arrives while the fetch is still parked (it waits up to 60 s for data nobody has produced yet).
        assert struct.unpack_from(">i", client.read_frame())[0] == 501
        builder = BatchBuilder()
        builder.append(key=b"k", value=b"v", timestamp=int(time.time() * 1000))
        produce = {
            "transactional_id": None,
            "acks": 1,
            "timeout": 5000,
            "topic_data": [
                {"name": "long-poll", "partition_data": [{"index": 0, "records": builder.build()}]}
            ],
        }
        with WireClient(broker.bootstrap_servers) as producer:
            assert (
                producer.call(ApiKey.PRODUCE, 9, produce).responses[0].partition_responses[0].error_code
                == ErrorCode.NONE
            )
        assert struct.unpack_from(">i", client.read_frame())[0] == 502


def _assert_broker_still_serves(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        assert client.call(ApiKey.API_VERSIONS, 0, {}).error_code == ErrorCode.NONE


def test_oversized_length_prefix_closes_the_connection_without_reading_a_body(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        client.send(struct.pack(">i", 2**31 - 1))  # 2 GiB announced, nothing sent: must not wait for it
        assert client.is_closed_by_peer()
    _assert_broker_still_serves(broker)


@pytest.mark.parametrize(
    "data",
    [
        struct.pack(">i", -5),  # negative length
        struct.pack(">i", 3) + b"abc",  # shorter than any header
        struct.pack(">i", 64) + os.urandom(64),  # garbage
        struct.pack(">i", 12) + struct.pack(">hhih", 999, 0, 1, -1) + b"\0\0",  # unknown api key
        struct.pack(">i", 12) + struct.pack(">hhih", 3, 99, 1, -1) + b"\0\0",  # unknown Metadata version
        request_frame(ApiKey.METADATA, 9, 5, {"topics": [{"name": "a" * 50}], **NO_OPS})[
            :-20
        ],  # truncated: the announced length is larger than what follows, then the client goes quiet
        # A Fetch v12 with absurd array counts (found by fuzzing; kio alone would abort the process).
        struct.pack(">i", 88)
        + bytes.fromhex(
            "0001000c0000000100017400ffffffff00000000000000000000006400009d1489ac000000ffffffff2602740200000000"
            "ffffffff0000000000000000ffffffffffddc8ffffffffffffff0000000a0000010100dcdcd8bb"
        ),
    ],
    ids=[
        "negative-length",
        "too-short",
        "garbage",
        "unknown-api-key",
        "unknown-version",
        "truncated",
        "huge-count",
    ],
)
def test_hostile_frames_close_only_their_connection(broker: EmbeddedBroker, data: bytes) -> None:
    with (
        WireClient(broker.bootstrap_servers, timeout=5) as bystander,
        WireClient(broker.bootstrap_servers) as bad,
    ):
        bad.send(data)
        if data.startswith(request_frame(ApiKey.METADATA, 9, 5, {"topics": [], **NO_OPS})[:4]):
            pass
        bad.sock.shutdown(1)  # half-close: a truncated frame then ends in EOF mid-frame
        assert bad.is_closed_by_peer()
        assert bystander.call(ApiKey.API_VERSIONS, 0, {}).error_code == ErrorCode.NONE


def test_length_prefix_inside_the_limit_is_read_and_decoded(broker: EmbeddedBroker) -> None:
    # A Metadata request for a long list of topic names, well under socket.request.max.bytes, is answered.
    names = [{"name": f"no-such-topic-{i}"} for i in range(200)]
    with WireClient(broker.bootstrap_servers) as client:
        resp = client.call(
            ApiKey.METADATA,
            9,
            {
                "topics": names,
                "allow_auto_topic_creation": False,
                **NO_OPS,
            },
        )
    assert [t.error_code for t in resp.topics] == [3] * 200


def test_metadata_names_the_broker_as_controller_and_auto_creates_topics(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        resp = client.call(
            ApiKey.METADATA,
            12,
            {
                "topics": [{"name": "auto-made", "topic_id": None}],
                **NO_OPS,
            },
        )
    assert resp.controller_id == 0
    assert [(b.node_id, b.port) for b in resp.brokers] == [(0, broker.port)]
    (topic,) = resp.topics
    assert topic.error_code == ErrorCode.NONE and topic.name == "auto-made"
    assert len(topic.partitions) == 2
    assert topic.topic_id is not None


def test_metadata_never_auto_creates_internal_topics(tmp_path: Path) -> None:
    # Before any group exists __consumer_offsets may be absent; a client asking for it must not create an
    # ordinary (uncompacted) topic under that name.
    with running_strom(tmp_path) as b, WireClient(b.bootstrap_servers) as client:
        names = [{"name": "__transaction_state"}] + (
            [] if _exists(client, "__consumer_offsets") else [{"name": "__consumer_offsets"}]
        )
        resp = client.call(ApiKey.METADATA, 9, {"topics": names, "allow_auto_topic_creation": True, **NO_OPS})
        assert [t.error_code for t in resp.topics] == [3] * len(names)


def _exists(client: WireClient, name: str) -> bool:
    resp = client.call(
        ApiKey.METADATA, 9, {"topics": [{"name": name}], "allow_auto_topic_creation": False, **NO_OPS}
    )
    return bool(resp.topics[0].error_code == ErrorCode.NONE)


def test_metadata_rejects_invalid_topic_names(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        resp = client.call(ApiKey.METADATA, 9, {"topics": [{"name": "bad/name"}], **NO_OPS})
    assert resp.topics[0].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION


@pytest.mark.parametrize("version", [10, 11])
def test_metadata_before_v12_refuses_lookups_by_topic_id(broker: EmbeddedBroker, version: int) -> None:
    # v10 and v11 carry a topic_id field, but Kafka looks topics up by id only from v12: it answers
    # INVALID_REQUEST for every requested topic (a null name comes back as "")
    unknown = uuid.uuid4()
    with WireClient(broker.bootstrap_servers) as client:
        resp = client.call(
            ApiKey.METADATA,
            version,
            {
                "topics": [{"name": None, "topic_id": unknown}, {"name": "auto-made", "topic_id": None}],
                "allow_auto_topic_creation": False,
                **NO_OPS,
            },
        )
        assert [(t.name, t.topic_id, t.error_code) for t in resp.topics] == [
            ("", unknown, ErrorCode.INVALID_REQUEST),
            ("auto-made", None, ErrorCode.INVALID_REQUEST),
        ]


def test_metadata_v12_answers_an_unknown_topic_id(broker: EmbeddedBroker) -> None:
    unknown = uuid.uuid4()
    with WireClient(broker.bootstrap_servers) as client:
        resp = client.call(ApiKey.METADATA, 12, {"topics": [{"name": None, "topic_id": unknown}], **NO_OPS})
    assert [(t.name, t.topic_id, t.error_code) for t in resp.topics] == [
        (None, unknown, ErrorCode.UNKNOWN_TOPIC_ID)
    ]


def test_cluster_id_and_topic_ids_survive_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def snapshot(b: EmbeddedBroker) -> tuple[str, dict[str, object]]:
        with WireClient(b.bootstrap_servers) as client:
            resp = client.call(ApiKey.METADATA, 12, {"topics": None, **NO_OPS})
        return resp.cluster_id, {t.name: t.topic_id for t in resp.topics}

    with running_strom(tmp_path) as b:
        md = AdminClient({"bootstrap.servers": b.bootstrap_servers}).list_topics("kept", timeout=10)
        assert md.topics["kept"].error is None
        before = snapshot(b)
        b.stop()
        b.start()
        after = snapshot(b)
    assert before == after
    assert "kept" in after[1]
