"""Mutated requests of every API the broker serves: it answers or closes the connection, never fails inside.

Each request is a valid one with a few bytes overwritten, inserted or cut (lengths, counts and nulls in the
wrong places). The broker must keep serving, must not log an internal error, and must not create absurd
amounts of anything. The seed is fixed, so a failure replays.
"""

from __future__ import annotations

import logging
import random
import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from strom.protocol.records import BatchBuilder
from tests.support.brokers import running_strom
from tests.support.wire import WireClient, request_frame

NO_OPS = {"include_topic_authorized_operations": False, "include_cluster_authorized_operations": False}
CONNECTIONS = 150
REQUESTS_PER_CONNECTION = 20


def _seeds() -> list[bytes]:
    builder = BatchBuilder()
    builder.append(key=b"k", value=b"v", timestamp=int(time.time() * 1000))
    batch = builder.build()
    fetch_partition = {"partition": 0, "fetch_offset": 0, "log_start_offset": -1, "partition_max_bytes": 10}
    produce: dict[str, Any] = {
        "transactional_id": None,
        "acks": 1,
        "timeout": 5000,
        "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": batch}]}],
    }
    return [
        request_frame(ApiKey.PRODUCE, 9, 1, produce),
        request_frame(ApiKey.PRODUCE, 3, 1, {**produce, "acks": -1}),
        request_frame(
            ApiKey.FETCH,
            12,
            1,
            {
                "max_wait": 0,
                "min_bytes": 0,
                "max_bytes": 100,
                "isolation_level": 0,
                "session_id": 0,
                "session_epoch": -1,
                "forgotten_topics_data": [],
                "rack_id": "",
                "topics": [{"topic": "t", "partitions": [fetch_partition]}],
            },
        ),
        request_frame(
            ApiKey.FETCH,
            4,
            1,
            {
                "replica_id": -1,
                "max_wait": 0,
                "min_bytes": 0,
                "max_bytes": 100,
                "isolation_level": 0,
                "topics": [{"topic": "t", "partitions": [fetch_partition]}],
            },
        ),
        request_frame(ApiKey.METADATA, 12, 1, {"topics": [{"name": "t", "topic_id": None}], **NO_OPS}),
        request_frame(ApiKey.METADATA, 1, 1, {"topics": [{"name": "t"}]}),
        request_frame(
            ApiKey.CREATE_TOPICS,
            5,
            1,
            {
                "topics": [
                    {
                        "name": "x",
                        "num_partitions": 1,
                        "replication_factor": 1,
                        "assignments": [],
                        "configs": [{"name": "retention.ms", "value": "9"}],
                    }
                ],
                "timeout": 100,
                "validate_only": False,
            },
        ),
        request_frame(ApiKey.DELETE_TOPICS, 4, 1, {"topic_names": ["x"], "timeout": 100}),
        request_frame(
            ApiKey.CREATE_PARTITIONS,
            2,
            1,
            {
                "topics": [{"name": "t", "count": 2, "assignments": None}],
                "timeout": 100,
                "validate_only": True,
            },
        ),
        request_frame(
            ApiKey.DESCRIBE_CONFIGS,
            4,
            1,
            {
                "resources": [{"resource_type": 2, "resource_name": "t", "configuration_keys": None}],
                "include_synonyms": True,
                "include_documentation": True,
            },
        ),
        request_frame(
            ApiKey.ALTER_CONFIGS,
            1,
            1,
            {
                "resources": [
                    {
                        "resource_type": 2,
                        "resource_name": "t",
                        "configs": [{"name": "retention.ms", "value": "1000"}],
                    }
                ],
                "validate_only": True,
            },
        ),
        request_frame(
            ApiKey.INCREMENTAL_ALTER_CONFIGS,
            1,
            1,
            {
                "resources": [
                    {
                        "resource_type": 2,
                        "resource_name": "t",
                        "configs": [{"name": "cleanup.policy", "config_operation": 2, "value": "compact"}],
                    }
                ],
                "validate_only": True,
            },
        ),
        request_frame(
            ApiKey.LIST_OFFSETS,
            7,
            1,
            {
                "replica_id": -1,
                "isolation_level": 0,
                "topics": [{"name": "t", "partitions": [{"partition_index": 0, "timestamp": -1}]}],
            },
        ),
        request_frame(
            ApiKey.DELETE_RECORDS,
            1,
            1,
            {"topics": [{"name": "t", "partitions": [{"partition_index": 0, "offset": 0}]}], "timeout": 100},
        ),
        request_frame(ApiKey.INIT_PRODUCER_ID, 4, 1, {"transactional_id": None, "transaction_timeout": 1000}),
        request_frame(
            ApiKey.OFFSET_FOR_LEADER_EPOCH,
            4,
            1,
            {
                "replica_id": -2,
                "topics": [
                    {
                        "topic": "t",
                        "partitions": [{"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}],
                    }
                ],
            },
        ),
        request_frame(
            ApiKey.DESCRIBE_CLUSTER, 1, 1, {"include_cluster_authorized_operations": True, "endpoint_type": 1}
        ),
        request_frame(
            ApiKey.API_VERSIONS, 3, 1, {"client_software_name": "a", "client_software_version": "1"}
        ),
    ]


def _mutate(rng: random.Random, frame: bytes) -> bytes:
    body = bytearray(frame[4:])
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        if op < 0.6:
            body[rng.randrange(10, len(body))] = rng.choice([0, 0xFF, 0x7F, 0x80, 1, rng.randrange(256)])
        elif op < 0.8:
            at = rng.randrange(10, len(body))
            body[at : at + 4] = rng.choice([b"\x7f\xff\xff\xff", b"\xff\xff\xff\xff", b"\x80\x00\x00\x00"])
        else:
            at = rng.randrange(10, len(body) + 1)
            body[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 5)))
    return struct.pack(">i", len(body)) + bytes(body)


def test_mutated_requests_never_break_the_broker(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.INFO, logger="strom")
    rng = random.Random(20261126)
    seeds = _seeds()
    with running_strom(tmp_path, {"num.partitions": 2}) as broker:
        with WireClient(broker.bootstrap_servers) as client:
            client.call(
                ApiKey.METADATA, 9, {"topics": [{"name": "t"}], "allow_auto_topic_creation": True, **NO_OPS}
            )
        host, port = broker.bootstrap_servers.rsplit(":", 1)
        for _ in range(CONNECTIONS):
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                try:
                    for _ in range(REQUESTS_PER_CONNECTION):
                        sock.sendall(_mutate(rng, rng.choice(seeds)))
                except OSError:
                    pass  # the broker closed this connection after a bad request: expected
        with WireClient(broker.bootstrap_servers) as client:
            assert client.call(ApiKey.API_VERSIONS, 0, {}).error_code == ErrorCode.NONE
            topics = client.call(
                ApiKey.METADATA, 9, {"topics": None, "allow_auto_topic_creation": False, **NO_OPS}
            ).topics
        assert sum(len(t.partitions) for t in topics) < 20_000
    internal = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert internal == []
