"""Admin operations through client libraries against strom and Apache Kafka: describe and alter topic configs,
delete records, and list consumer groups with their committed offsets and lag."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    OffsetSpec,
    ResourceType,
)

from tests.support.scenario import create_topic, java_partition, unique_name

TIMEOUT = 30.0
RETRIABLE_COMMIT = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
)
T = TypeVar("T")
KEYS = [f"key-{i}" for i in range(40)]


def fill(bootstrap: str, topic: str) -> dict[int, int]:
    """Produce KEYS to a 2-partition topic; return partition -> record count."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "enable.idempotence": True}
    )
    for key in KEYS:
        producer.produce(topic, key=key, value=b"v")
    assert producer.flush(TIMEOUT) == 0
    return {p: sum(1 for k in KEYS if java_partition(k.encode(), 2) == p) for p in (0, 1)}


def commit_offsets(bootstrap: str, group: str, offsets: list[TopicPartition]) -> None:
    """Commit as a consumer that never joins (a "simple" group), as tools that reset offsets do."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        for attempt in range(20):
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
                return
            except KafkaException as error:
                # A fresh cluster may still be creating or loading __consumer_offsets: retry, as clients do.
                if error.args[0].code() not in RETRIABLE_COMMIT or attempt == 19:
                    raise
                time.sleep(0.25)
    finally:
        consumer.close()


def test_confluent_admin_configs_delete_records_and_group_lag(any_broker: str) -> None:
    admin = AdminClient({"bootstrap.servers": any_broker})
    topic, group = unique_name("admin"), unique_name("admin-group")
    create_topic(any_broker, topic, partitions=2)
    counts = fill(any_broker, topic)

    resource = ConfigResource(ResourceType.TOPIC, topic)
    before = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT)
    assert before["retention.ms"].value == "604800000"
    assert before["retention.ms"].is_default
    assert before["cleanup.policy"].value == "delete"

    change = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("max.message.bytes", "65536", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    admin.incremental_alter_configs([change])[change].result(timeout=TIMEOUT)
    after = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT)
    assert after["retention.ms"].value == "3600000"
    assert not after["retention.ms"].is_default
    assert after["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert after["max.message.bytes"].value == "65536"

    undo = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[ConfigEntry("retention.ms", "", incremental_operation=AlterConfigOpType.DELETE)],
    )
    admin.incremental_alter_configs([undo])[undo].result(timeout=TIMEOUT)
    reverted = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT)
    assert reverted["retention.ms"].value == "604800000"
    assert reverted["max.message.bytes"].value == "65536"

    deleted = admin.delete_records([TopicPartition(topic, 0, 3)])
    assert next(iter(deleted.values())).result(timeout=TIMEOUT).low_watermark == 3
    earliest = admin.list_offsets({TopicPartition(topic, p): OffsetSpec.earliest() for p in (0, 1)})
    assert {tp.partition: f.result(timeout=TIMEOUT).offset for tp, f in earliest.items()} == {0: 3, 1: 0}

    commit_offsets(any_broker, group, [TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 2)])
    listed = admin.list_consumer_groups().result(timeout=TIMEOUT)
    assert group in {g.group_id for g in listed.valid}
    request = [ConsumerGroupTopicPartitions(group)]
    committed = admin.list_consumer_group_offsets(request)[group].result(timeout=TIMEOUT).topic_partitions
    assert {(tp.topic, tp.partition): tp.offset for tp in committed} == {(topic, 0): 5, (topic, 1): 2}
    latest = admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in (0, 1)})
    ends = {tp.partition: f.result(timeout=TIMEOUT).offset for tp, f in latest.items()}
    assert ends == counts
    lag = {tp.partition: ends[tp.partition] - tp.offset for tp in committed}
    assert lag == {0: counts[0] - 5, 1: counts[1] - 2}


def until_coordinator_ready(call: Callable[[], T]) -> T:
    """Run a group call, retrying while a fresh cluster still creates or loads __consumer_offsets."""
    from kafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError, NotCoordinatorError

    for attempt in range(40):
        try:
            return call()
        except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError):
            if attempt == 39:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


def test_kafka_python_admin_configs_delete_records_and_group_lag(any_broker: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KConfigResource
    from kafka.admin import ConfigResourceType
    from kafka.structs import OffsetAndMetadata
    from kafka.structs import TopicPartition as KTopicPartition

    topic, group = unique_name("admin-kp"), unique_name("admin-kp-group")
    create_topic(any_broker, topic, partitions=2)
    counts = fill(any_broker, topic)
    admin = KafkaAdminClient(bootstrap_servers=any_broker)
    try:
        resource = KConfigResource(ConfigResourceType.TOPIC, topic)
        everything = admin.describe_configs([resource], config_filter="all")["topic"][topic]
        assert everything["retention.ms"]["value"] == "604800000"
        assert everything["retention.ms"]["config_source"] == "DEFAULT_CONFIG"

        change = KConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7200000"})
        assert admin.alter_configs([change]) == {"topic": {topic: "OK"}}
        modified = admin.describe_configs([resource])["topic"][topic]
        assert modified["retention.ms"]["value"] == "7200000"
        assert modified["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"

        deleted = admin.delete_records({KTopicPartition(topic, 1): 4})
        assert deleted[KTopicPartition(topic, 1)]["low_watermark"] == 4
        earliest = admin.list_partition_offsets({KTopicPartition(topic, p): -2 for p in (0, 1)})
        assert {tp.partition: o.offset for tp, o in earliest.items()} == {0: 0, 1: 4}

        # Committing offsets for a group with no members: what `kafka-consumer-groups --reset-offsets` does.
        offsets = {
            KTopicPartition(topic, 0): OffsetAndMetadata(6, "", -1),
            KTopicPartition(topic, 1): OffsetAndMetadata(5, "", -1),
        }
        results = until_coordinator_ready(lambda: admin.alter_group_offsets(group, offsets))
        assert all(error.errno == 0 for error in results.values()), results
        assert group in {g["group_id"] for g in admin.list_groups()}
        committed = admin.list_group_offsets({group: None})[group]
        assert {tp.partition: o.offset for tp, o in committed.items()} == {0: 6, 1: 5}
        latest = admin.list_partition_offsets({KTopicPartition(topic, p): -1 for p in (0, 1)})
        lag = {tp.partition: latest[tp].offset - o.offset for tp, o in committed.items()}
        assert lag == {0: counts[0] - 6, 1: counts[1] - 5}
    finally:
        admin.close()
