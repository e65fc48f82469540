"""confluent-kafka (librdkafka) against strom and Apache Kafka: idempotent zstd producer, a two-member group,
a broker restart, and resuming from the committed offsets."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

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
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "compression.type": "zstd",
            # librdkafka's default is consistent_random (CRC32); murmur2_random matches Java's.
            "partitioner": "murmur2_random",
            "linger.ms": 5,
        }
    )
    acked: list[tuple[str, int, int]] = []
    failed: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, message: object) -> None:
        if error is not None:
            failed.append(error)
        else:
            acked.append((message.key().decode(), message.partition(), message.offset()))  # type: ignore[attr-defined]

    values = {key_of(i): f"confluent-{i}" for i in range(RECORDS)}
    for key, value in values.items():
        while True:
            try:
                producer.produce(topic, value=value.encode(), key=key.encode(), on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry this record
                producer.poll(0.1)
    remaining = producer.flush(60)
    assert remaining == 0, f"{remaining} records still unacknowledged after 60 s"
    assert not failed, f"{len(failed)} deliveries failed, first: {failed[0]}"
    assert len(acked) == RECORDS
    assert len({(p, o) for _, p, o in acked}) == RECORDS, "two records acknowledged at the same offset"
    for key, partition, _ in acked:
        assert partition == java_partition(key.encode()), f"{key} acknowledged in partition {partition}"
    return values


class ConfluentMember:
    """A group member on confluent_kafka.Consumer with manual, synchronous commits."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.topic = topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "heartbeat.interval.ms": 500,  # members learn of a rebalance sooner than the 3 s default
                # librdkafka's default isolation is read_committed: the last stable offset matters.
            }
        )
        self.consumer.subscribe([topic])

    def poll_batch(self) -> list[Consumed]:
        batch = []
        for message in self.consumer.consume(num_messages=500, timeout=0.5):
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise AssertionError(f"consumer error: {message.error()}")
            batch.append(
                Consumed(
                    message.partition(), message.offset(), message.key().decode(), message.value().decode()
                )
            )
        return batch

    def assignment(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    def commit(self, records: Sequence[Consumed]) -> None:
        offsets = [TopicPartition(self.topic, p, o) for p, o in highest_offsets(records).items()]
        self.consumer.commit(offsets=offsets, asynchronous=False)

    def rewind(self, records: Sequence[Consumed]) -> None:
        held = self.assignment()
        for partition, offset in first_offsets(records).items():
            if partition in held:
                self.consumer.seek(TopicPartition(self.topic, partition, offset))

    def close(self) -> None:
        self.consumer.close()


def test_confluent_kafka_group_resumes_after_restart_with_nothing_lost_or_repeated(
    broker_under_test: BrokerUnderTest,
) -> None:
    run_restart_scenario(broker_under_test, "confluent", produce, ConfluentMember)
