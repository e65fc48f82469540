"""Memory and connections a client can hold: bounded per connection and in total, released when it leaves.

Kafka's limits by Kafka's names: `socket.request.max.bytes` (one frame; see test_broker_protocol for the
oversized prefix), `queued.max.request.bytes` (all received requests together), `connections.max.idle.ms`
(a silent connection is closed), and `fetch.max.bytes` (one Fetch response).
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest

from strom.broker import EmbeddedBroker
from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from strom.protocol.records import BatchBuilder
from tests.support.waiting import wait_until
from tests.support.wire import WireClient, decode_response, request_frame

NOW = int(time.time() * 1000)


def _connect(broker: EmbeddedBroker, timeout: float = 10.0) -> socket.socket:
    host, port = broker.bootstrap_servers.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def _closed_by_broker(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True



def _fetch_body(topic: str, max_wait_ms: int, min_bytes: int) -> dict[str, object]:
    max_bytes = 2**31 - 1
    partition = {"partition": 0, "fetch_offset": 0, "log_start_offset": -1, "partition_max_bytes": max_bytes}
    return {
        "max_wait": max_wait_ms,
        "min_bytes": min_bytes,
        "max_bytes": max_bytes,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "forgotten_topics_data": [],
        "rack_id": "",
        "topics": [{"topic": topic, "partitions": [partition]}],
    }


def _produce_frame(topic: str, correlation_id: int, value: bytes = b"v") -> bytes:
    builder = BatchBuilder()
    builder.append(key=None, value=value, timestamp=NOW)
    body = {
        "transactional_id": None,
        "acks": 1,
        "timeout": 5000,
        "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": builder.build()}]}],
    }
    return request_frame(ApiKey.PRODUCE, 9, correlation_id, body)


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    config = {"queued.max.request.bytes": 1 << 20, "connections.max.idle.ms": 400, "fetch.max.bytes": 1024}
    with EmbeddedBroker(config=config, num_partitions=1) as b:
        with WireClient(b.bootstrap_servers) as client:
            client.call(
                ApiKey.METADATA,
                9,
                {
                    "topics": [{"name": "t"}],
                    "allow_auto_topic_creation": True,
                    "include_topic_authorized_operations": False,
                    "include_cluster_authorized_operations": False,
                },
            )
        yield b


def test_a_silent_connection_with_a_partial_frame_is_closed_when_idle(broker: EmbeddedBroker) -> None:
    with _connect(broker) as sock:
        sock.sendall(struct.pack(">i", 100 << 20) + b"\x00\x12")  # 100 MiB announced, 2 bytes sent
        assert _closed_by_broker(sock)
    wait_until(
        lambda: broker.call(lambda b: b.request_pool.used) == 0,
        "the request pool emptied",
        timeout=10,
    )


def test_a_request_parked_longer_than_the_idle_limit_is_still_answered(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        answer = client.call(ApiKey.FETCH, 12, _fetch_body("t", max_wait_ms=1000, min_bytes=1))
        assert answer.error_code == ErrorCode.NONE


def test_reads_stop_while_the_request_pool_is_full_and_resume_when_it_frees(broker: EmbeddedBroker) -> None:
    hog = _connect(broker)
    hog.sendall(struct.pack(">i", (1 << 20) + 10) + b"\x00\x12")  # reserves more than the whole pool
    wait_until(lambda: broker.call(lambda b: b.request_pool.full), "the request pool full", timeout=10)
    with _connect(broker, timeout=0.3) as waiting:
        waiting.sendall(request_frame(ApiKey.API_VERSIONS, 0, 7, {}))
        with pytest.raises(TimeoutError):
            waiting.recv(4)  # not read while the pool is full
        hog.close()
        waiting.settimeout(10)
        size = struct.unpack(">i", waiting.recv(4, socket.MSG_WAITALL))[0]
        answer = decode_response(ApiKey.API_VERSIONS, 0, waiting.recv(size, socket.MSG_WAITALL), 7)
        assert answer.error_code == ErrorCode.NONE


def test_requests_queued_behind_a_parked_fetch_are_dropped_when_the_client_leaves(
    broker: EmbeddedBroker,
) -> None:
    with _connect(broker) as sock:
        parked = request_frame(ApiKey.FETCH, 12, 1, _fetch_body("t", max_wait_ms=300, min_bytes=1))
        sock.sendall(parked + b"".join(_produce_frame("t", 2 + i, b"x" * 50_000) for i in range(10)))
        wait_until(
            lambda: broker.call(lambda b: b.request_pool.used) > 500_000,
            "over 500 kB of requests held",
            timeout=10,
        )
    wait_until(
        lambda: broker.call(lambda b: b.request_pool.used) == 0,
        "the request pool emptied",
        timeout=10,
    )
    # had the queued Produce requests been handled after the client left, this long poll would see them
    with WireClient(broker.bootstrap_servers) as client:
        answer = client.call(ApiKey.FETCH, 12, _fetch_body("t", max_wait_ms=1000, min_bytes=1))
    (partition,) = answer.responses[0].partitions
    assert partition.high_watermark == 0


def test_a_fetch_asking_for_2_gib_is_capped_at_fetch_max_bytes(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        for i in range(10):
            client.send(_produce_frame("t", 100 + i, b"y" * 600))
            client.read_frame()
        answer = client.call(ApiKey.FETCH, 12, _fetch_body("t", max_wait_ms=0, min_bytes=0))
    (partition,) = answer.responses[0].partitions
    assert partition.high_watermark == 10
    # the first batch always goes whole (KIP-74); the next one would pass fetch.max.bytes=1024
    assert 600 < len(partition.records) <= 1024
