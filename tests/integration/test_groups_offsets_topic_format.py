"""`__consumer_offsets` written by strom is what Apache Kafka writes: its own kafka-dump-log --offsets-decoder
decodes every group-metadata and offset-commit record strom stored for a real librdkafka consumer group."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from tools.kafka import run_kafka_tool

from tests.support.brokers import running_strom
from tests.support.waiting import wait_until

pytestmark = pytest.mark.kafka

_RECORD = re.compile(r"^\| offset: (\d+) .* key: (\{.*\}) payload: (\{.*\}|<DELETE>)$")


def test_kafka_dump_log_decodes_strom_offsets_topic(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = {"group.initial.rebalance.delay.ms": "0"}
    with running_strom(data, config, topics=[NewTopic("orders", 2, 1)]) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        consumer = Consumer(
            {"bootstrap.servers": broker.bootstrap_servers, "group.id": "dump-group", "client.id": "dumper"}
        )
        assigned: list[object] = []
        consumer.subscribe(["orders"], on_assign=lambda _c, parts: assigned.append(parts))
        wait_until(lambda: bool(assigned), "the consumer's first assignment", step=lambda: consumer.poll(0.1))
        consumer.commit(offsets=[TopicPartition("orders", 1, 42)], asynchronous=False)
        consumer.close()
        for future in admin.delete_consumer_groups(["dump-group"]).values():
            future.result(10)

    (segment,) = sorted((data / "__consumer_offsets-0").glob("*.log"))
    out = run_kafka_tool(
        "kafka-dump-log", "--offsets-decoder", "--print-data-log", "--files", str(segment)
    ).stdout
    records = [
        (json.loads(m.group(2)), None if m.group(3) == "<DELETE>" else json.loads(m.group(3)))
        for m in (_RECORD.match(line) for line in out.splitlines())
        if m
    ]
    assert records, out

    groups = [(k, v) for k, v in records if k["type"] == "2"]
    offsets = [(k, v) for k, v in records if k["type"] == "1"]
    # The stable generation with its member, subscription and assignment, as Kafka's schema reads them.
    stable = next(v for k, v in groups if v is not None and v["data"]["members"])
    assert stable["data"]["protocolType"] == "consumer" and stable["data"]["protocol"] == "range"
    (member,) = stable["data"]["members"]
    assert member["clientId"] == "dumper" and member["clientHost"] == "/127.0.0.1"
    assert member["subscription"]["topics"] == ["orders"]
    assert member["assignment"]["assignedPartitions"] == [{"topic": "orders", "partitions": [0, 1]}]
    # The commit, then the tombstones DeleteGroups wrote for the offset and the group.
    key, value = offsets[0]
    assert key["data"] == {"group": "dump-group", "topic": "orders", "partition": 1}
    assert value is not None and value["data"]["offset"] == 42
    assert offsets[-1] == (key, None)
    assert groups[-1] == ({"type": "2", "data": {"group": "dump-group"}}, None)
