"""kafka-python against strom and Apache Kafka: idempotent gzip producer, a two-member group, a broker
restart, and resuming from the committed offsets."""

from __future__ import annotations

from collections.abc import Sequence

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.support.brokers import BrokerUnderTest
from tests.support.scenario import (
    FIRST_PHASE,
    RECORDS,
    Consumed,
    GroupMember,
    assert_exactly_once,
    assert_group_split_work,
    consume_as_group,
    create_topic,
    first_offsets,
    highest_offsets,
    java_partition,
    key_of,
    unique_name,
)


def produce(bootstrap: str, topic: str) -> dict[str, str]:
    """Produce the scenario's records idempotently; return key -> value, having checked every ack."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        compression_type="gzip",
        linger_ms=5,
    )
    try:
        values = {key_of(i): f"kafka-python-{i}" for i in range(RECORDS)}
        futures = {key: producer.send(topic, key=key.encode(), value=v.encode()) for key, v in values.items()}
        producer.flush(timeout=60)
        acked = {key: future.get(timeout=10) for key, future in futures.items()}
    finally:
        producer.close(timeout=10)
    assert len({(m.partition, m.offset) for m in acked.values()}) == RECORDS, "two records share an offset"
    for key, metadata in acked.items():
        assert metadata.partition == java_partition(key.encode()), f"{key} acked in {metadata.partition}"
    return values


class KafkaPythonMember:
    """A group member on kafka.KafkaConsumer with manual, synchronous commits."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.topic = topic
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            heartbeat_interval_ms=500,
        )
        self.consumer.subscribe([topic])

    def poll_batch(self) -> list[Consumed]:
        polled = self.consumer.poll(timeout_ms=500, max_records=500)
        return [
            Consumed(m.partition, m.offset, m.key.decode(), m.value.decode())
            for messages in polled.values()
            for m in messages
        ]

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    def commit(self, records: Sequence[Consumed]) -> None:
        offsets = {
            TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1)
            for p, o in highest_offsets(records).items()
        }
        self.consumer.commit(offsets)

    def rewind(self, records: Sequence[Consumed]) -> None:
        held = self.assignment()
        for partition, offset in first_offsets(records).items():
            if partition in held:
                self.consumer.seek(TopicPartition(self.topic, partition), offset)

    def close(self) -> None:
        self.consumer.close(autocommit=False)


def members(bootstrap: str, topic: str, group: str) -> list[GroupMember]:
    return [KafkaPythonMember(bootstrap, topic, group) for _ in range(2)]


def test_kafka_python_group_resumes_after_restart_with_nothing_lost_or_repeated(
    broker_under_test: BrokerUnderTest,
) -> None:
    broker = broker_under_test
    topic, group = unique_name("kafka-python"), unique_name("kafka-python-group")
    create_topic(broker.bootstrap_servers, topic)
    values = produce(broker.bootstrap_servers, topic)

    first = consume_as_group(
        lambda: members(broker.bootstrap_servers, topic, group), FIRST_PHASE, FIRST_PHASE // 2
    )
    assert_group_split_work(first)
    broker.restart()
    second = consume_as_group(lambda: members(broker.bootstrap_servers, topic, group), RECORDS - FIRST_PHASE)
    assert_group_split_work(second)
    assert_exactly_once(first.records + second.records, values)
