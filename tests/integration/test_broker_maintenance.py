"""Retention and compaction run in the background, with topic configs applied live, each on its own
schedule."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strom.broker import EmbeddedBroker
from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from strom.protocol.records import BatchBuilder, iter_batches
from tests.support.brokers import running_strom
from tests.support.waiting import wait_until
from tests.support.wire import WireClient

DEADLINE_S = 20


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    config = {"log.retention.check.interval.ms": 50, "log.cleaner.backoff.ms": 50}
    with running_strom(tmp_path_factory.mktemp("maintenance"), config) as b:
        yield b


def _create(client: WireClient, name: str, configs: dict[str, str]) -> None:
    body = {
        "topics": [
            {
                "name": name,
                "num_partitions": 1,
                "replication_factor": 1,
                "assignments": [],
                "configs": [{"name": k, "value": v} for k, v in configs.items()],
            }
        ],
        "timeout": 5000,
        "validate_only": False,
    }
    assert client.call(ApiKey.CREATE_TOPICS, 5, body).topics[0].error_code == ErrorCode.NONE


def _produce(client: WireClient, topic: str, key: bytes) -> None:
    builder = BatchBuilder()
    builder.append(key=key, value=b"v" * 200, timestamp=int(time.time() * 1000))
    body = {
        "transactional_id": None,
        "acks": -1,
        "timeout": 5000,
        "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": builder.build()}]}],
    }
    assert (
        client.call(ApiKey.PRODUCE, 9, body).responses[0].partition_responses[0].error_code == ErrorCode.NONE
    )


def _earliest(client: WireClient, topic: str) -> int:
    body = {
        "replica_id": -1,
        "isolation_level": 0,
        "topics": [{"name": topic, "partitions": [{"partition_index": 0, "timestamp": -2}]}],
    }
    offset: int = client.call(ApiKey.LIST_OFFSETS, 7, body).topics[0].partitions[0].offset
    return offset


def _records_from_start(client: WireClient, topic: str) -> int:
    body = {
        "max_wait": 0,
        "min_bytes": 0,
        "max_bytes": 1 << 20,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "forgotten_topics_data": [],
        "rack_id": "",
        "topics": [
            {
                "topic": topic,
                "partitions": [
                    {
                        "partition": 0,
                        "fetch_offset": _earliest(client, topic),
                        "log_start_offset": -1,
                        "partition_max_bytes": 1 << 20,
                    }
                ],
            }
        ],
    }
    records = bytes(client.call(ApiKey.FETCH, 12, body).responses[0].partitions[0].records)
    return sum(batch.record_count for batch in iter_batches(records))


def wait_for_background_compaction(client: WireClient, topic: str) -> None:
    """Creates a compacted topic of 30 records over two keys and waits until a background pass cleans it."""
    _create(
        client,
        topic,
        {
            "cleanup.policy": "compact",
            "segment.bytes": "1024",
            "min.cleanable.dirty.ratio": "0.01",
            "file.delete.delay.ms": "0",
        },
    )
    for i in range(30):
        _produce(client, topic, b"key%d" % (i % 2))
    # No event announces a cleaner pass: wait_until polls.
    wait_until(
        lambda: _records_from_start(client, topic) != 30,
        "the cleaner compacting the topic",
        timeout=DEADLINE_S,
    )


def test_retention_change_applies_live_and_runs_in_the_background(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        _create(client, "expiring", {"segment.bytes": "1024", "file.delete.delay.ms": "0"})
        for i in range(20):
            _produce(client, "expiring", b"k%d" % i)
        assert _earliest(client, "expiring") == 0
        body = {
            "resources": [
                {
                    "resource_type": 2,
                    "resource_name": "expiring",
                    "configs": [{"name": "retention.ms", "config_operation": 0, "value": "1"}],
                }
            ],
            "validate_only": False,
        }
        response = client.call(ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, body)
        assert response.responses[0].error_code == ErrorCode.NONE
        # No event announces a maintenance pass: wait_until polls.
        wait_until(
            lambda: _earliest(client, "expiring") != 0,
            "retention deleting the old segments",
            timeout=DEADLINE_S,
        )
        assert 0 < _earliest(client, "expiring") <= 20


def test_compaction_keeps_the_latest_value_per_key_in_the_background(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        wait_for_background_compaction(client, "squashed")
        assert _records_from_start(client, "squashed") < 30


def test_the_cleaner_runs_while_retention_waits_for_its_own_interval(tmp_path: Path) -> None:
    # Retention is checked every log.retention.check.interval.ms, not at the cleaner's faster cadence.
    config = {"log.retention.check.interval.ms": 3_600_000, "log.cleaner.backoff.ms": 20}
    with (
        running_strom(tmp_path, config) as broker,
        WireClient(broker.bootstrap_servers) as client,
    ):
        _create(
            client, "expiring", {"segment.bytes": "1024", "retention.ms": "1", "file.delete.delay.ms": "0"}
        )
        for i in range(20):
            _produce(client, "expiring", b"k%d" % i)
        wait_for_background_compaction(client, "squashed")
        # Maintenance passes ran after "expiring" was written, yet its expired segments wait for the first
        # retention check (30 s after start at the earliest, with a one-hour interval).
        assert _earliest(client, "expiring") == 0
