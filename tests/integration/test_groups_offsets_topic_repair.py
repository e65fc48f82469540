"""A data directory holding a plain (uncompacted) `__consumer_offsets` is repaired when the broker starts:
the topic becomes internal and compacted, and the offsets committed before and after stay readable."""

from __future__ import annotations

import json
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from strom.broker import EmbeddedBroker
from tests.support.brokers import running_strom

TIMEOUT = 15
OFFSETS = "__consumer_offsets"


def _consumer(broker: EmbeddedBroker) -> Consumer:
    return Consumer(
        {"bootstrap.servers": broker.bootstrap_servers, "group.id": "keeper", "enable.auto.commit": False}
    )


def _commit(broker: EmbeddedBroker, offset: int) -> None:
    consumer = _consumer(broker)
    try:
        consumer.commit(offsets=[TopicPartition("orders", 0, offset)], asynchronous=False)
    finally:
        consumer.close()


def _committed(broker: EmbeddedBroker) -> int:
    consumer = _consumer(broker)
    try:
        (tp,) = consumer.committed([TopicPartition("orders", 0)], timeout=TIMEOUT)
        offset: int = tp.offset
        return offset
    finally:
        consumer.close()


def _cleanup_policy(broker: EmbeddedBroker) -> str:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    resource = ConfigResource(ConfigResource.Type.TOPIC, OFFSETS)
    value: str = admin.describe_configs([resource])[resource].result(TIMEOUT)["cleanup.policy"].value
    return value


def _make_plain(data_dir: Path) -> None:
    """Rewrite the registry as an older strom left it: `__consumer_offsets` a plain topic, no overrides."""
    registry = data_dir / "topics.json"
    doc = json.loads(registry.read_text(encoding="utf-8"))
    doc["topics"][OFFSETS].update(internal=False, configs={})
    registry.write_text(json.dumps(doc), encoding="utf-8")


def test_a_plain_offsets_topic_is_made_internal_and_compacted_at_start(tmp_path: Path) -> None:
    with running_strom(tmp_path) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        admin.create_topics([NewTopic("orders", 1, 1)])["orders"].result(TIMEOUT)
        _commit(broker, 7)
    _make_plain(tmp_path)

    with running_strom(tmp_path) as broker:
        assert _cleanup_policy(broker) == "compact"
        topic = broker.call(lambda b: b.topics.get(OFFSETS))
        assert topic.internal
        assert topic.configs == {"cleanup.policy": "compact", "segment.bytes": "104857600"}
        assert broker.call(lambda b: b.partition(OFFSETS, 0).config.compact)
        assert _committed(broker) == 7  # written while the topic was plain, replayed after the repair
        _commit(broker, 11)
        assert _committed(broker) == 11

    with running_strom(tmp_path) as broker:  # the repair was persisted; commits survive restarts
        assert _cleanup_policy(broker) == "compact"
        assert _committed(broker) == 11


def test_an_internal_offsets_topic_keeps_its_own_segment_bytes(tmp_path: Path) -> None:
    # Like Kafka, a later change of offsets.topic.segment.bytes does not alter a topic already created.
    with running_strom(tmp_path, {"offsets.topic.segment.bytes": "1048576"}) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        admin.create_topics([NewTopic("orders", 1, 1)])["orders"].result(TIMEOUT)
        _commit(broker, 3)
    with running_strom(tmp_path, {"offsets.topic.segment.bytes": "2097152"}) as broker:
        topic = broker.call(lambda b: b.topics.get(OFFSETS))
        assert topic.configs == {"cleanup.policy": "compact", "segment.bytes": "1048576"}
        assert _committed(broker) == 3
