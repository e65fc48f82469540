"""A broker whose data directory fills up: Produce answers KAFKA_STORAGE_ERROR (56) for the partition that
could not be written, which stays offline for writes while Fetch keeps serving every acknowledged record."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strom.broker import EmbeddedBroker
from strom.broker.errors import StorageError
from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from strom.protocol.records import BatchBuilder, iter_batches
from tests.support.tmpfs import mounted_tmpfs
from tests.support.wire import WireClient

NOW = int(time.time() * 1000)


@pytest.fixture
def full_disk_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with mounted_tmpfs(tmp_path / "data", "2m") as data:
        broker = EmbeddedBroker(data_dir=data, num_partitions=1)
        broker.start()
        yield broker
        # The partition went offline and the disk is still full: the stop says it was not clean.
        with pytest.raises(StorageError, match="without a clean shutdown"):
            broker.stop()


def produce(client: WireClient, records: bytes) -> Any:
    body = {
        "transactional_id": None,
        "acks": -1,
        "timeout": 5000,
        "topic_data": [{"name": "fills", "partition_data": [{"index": 0, "records": records}]}],
    }
    return client.call(ApiKey.PRODUCE, 9, body).responses[0].partition_responses[0]


def fetch_all(client: WireClient, end: int) -> list[int]:
    offsets: list[int] = []
    while not offsets or offsets[-1] + 1 < end:
        start = offsets[-1] + 1 if offsets else 0
        body = {
            "max_wait": 0,
            "min_bytes": 0,
            "max_bytes": 1 << 20,
            "isolation_level": 0,
            "session_id": 0,
            "session_epoch": -1,
            "topics": [
                {
                    "topic": "fills",
                    "partitions": [
                        {
                            "partition": 0,
                            "fetch_offset": start,
                            "log_start_offset": -1,
                            "partition_max_bytes": 1 << 20,
                        }
                    ],
                }
            ],
            "forgotten_topics_data": [],
            "rack_id": "",
        }
        answer = client.call(ApiKey.FETCH, 12, body).responses[0].partitions[0]
        assert answer.error_code == ErrorCode.NONE
        batches = iter_batches(answer.records, allow_truncated_tail=True)
        offsets.extend(r.offset for b in batches for r in b.records() if r.offset >= start)
    return offsets


def test_produce_on_a_full_disk_answers_kafka_storage_error_and_reads_keep_working(
    full_disk_broker: EmbeddedBroker,
) -> None:
    with WireClient(full_disk_broker.bootstrap_servers) as client:
        client.call(
            ApiKey.METADATA,
            9,
            {
                "topics": [{"name": "fills"}],
                "allow_auto_topic_creation": True,
                "include_topic_authorized_operations": False,
                "include_cluster_authorized_operations": False,
            },
        )
        acknowledged = 0
        for tag in range(2_000):
            builder = BatchBuilder()
            for i in range(8):
                builder.append(b"k%d" % tag, b"%08d-%d" % (tag, i) + b"x" * 2_000, NOW)
            answer = produce(client, builder.build())
            if answer.error_code != ErrorCode.NONE:
                break
            acknowledged = answer.base_offset + 8
        assert answer.error_code == ErrorCode.KAFKA_STORAGE_ERROR
        assert acknowledged > 0
        assert produce(client, builder.build()).error_code == ErrorCode.KAFKA_STORAGE_ERROR  # offline
        assert fetch_all(client, acknowledged) == list(range(acknowledged))
