"""kafka-python against strom and Apache Kafka: idempotent gzip producer, a two-member group, a broker
restart, and resuming from the committed offsets."""

from __future__ import annotations

from collections.abc import Sequence

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.support.brokers import BrokerUnderTest
from tests.support.scenario import (
    RECORDS,
    Consumed,
    first_offsets,
    highest_offsets,
    java_partition,
    key_of,
    run_restart_scenario,
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


def test_kafka_python_group_resumes_after_restart_with_nothing_lost_or_repeated(
    broker_under_test: BrokerUnderTest,
) -> None:
    run_restart_scenario(broker_under_test, "kafka-python", produce, KafkaPythonMember)
