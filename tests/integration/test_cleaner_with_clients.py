"""Real clients read a compacted topic after strom's cleaner rewrote it: gaps in offsets, a producer's
emptied last batch, tombstones under a delete horizon and then gone.

The broker runs in-process; the test drives the log maintenance (roll, then `BrokerLogs.maintain`, the
same call the broker's maintenance thread makes) so that nothing waits for a timer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition

from strom.broker import EmbeddedBroker
from tests.support.brokers import running_strom

TIMEOUT = 30  # generous: a loaded CI machine may take long to elect and start a consumer
TOPIC = "compacted-cleaned"


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    config = {
        "cleanup.policy": "compact",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "0",
    }
    topics = [NewTopic(TOPIC, 1, 1, config=config)]
    with running_strom(tmp_path_factory.mktemp("data"), {"num.partitions": 1}, topics=topics) as b:
        yield b


def produce(broker: EmbeddedBroker, rows: list[tuple[bytes, bytes | None]], **extra: object) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 5, **extra})
    for key, value in rows:
        producer.produce(TOPIC, key=key, value=value)
    assert producer.flush(TIMEOUT) == 0


def roll_and_clean(broker: EmbeddedBroker) -> None:
    assert broker.broker is not None
    part = broker.broker.logs.get(TOPIC, 0)
    assert part is not None
    part.roll()
    broker.broker.logs.maintain()


def consume_confluent(broker: EmbeddedBroker, expected: int) -> list[tuple[int, bytes | None, bytes | None]]:
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": f"cleaned-{time.time_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
    rows: list[tuple[int, bytes | None, bytes | None]] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while len(rows) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            rows.append((message.offset(), message.key(), message.value()))
    finally:
        consumer.close()
    return rows


def consume_kafka_python(
    broker: EmbeddedBroker, expected: int
) -> list[tuple[int, bytes | None, bytes | None]]:
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        enable_auto_commit=False,
        consumer_timeout_ms=TIMEOUT * 1000,
    )
    consumer.assign([KTopicPartition(TOPIC, 0)])
    consumer.seek_to_beginning()
    rows = []
    try:
        for message in consumer:
            rows.append((message.offset, message.key, message.value))
            if len(rows) >= expected:
                break
    finally:
        consumer.close()
    return rows


def test_consumers_read_a_cleaned_compacted_topic(broker: EmbeddedBroker) -> None:
    # An idempotent producer writes first; every one of its records is overwritten later, so its last
    # batch survives only as an empty header (to keep its sequence numbers).
    produce(
        broker, [(b"k%d" % (i % 5), b"idempotent-%d" % i) for i in range(10)], **{"enable.idempotence": True}
    )
    produce(broker, [(b"k%d" % i, b"final-%d" % i) for i in range(5)])
    produce(broker, [(b"doomed", b"soon deleted"), (b"doomed", None)])
    roll_and_clean(broker)  # first pass: old values go, the tombstone stays with a delete horizon
    assert broker.broker is not None
    part = broker.broker.logs.get(TOPIC, 0)
    assert part is not None
    batches = [b for seg in part.segments_snapshot() for _, b in seg.batches()]
    assert [(b.record_count, b.last_offset) for b in batches if b.producer_id >= 0] == [(0, 9)]
    assert any(b.delete_horizon_ms is not None for b in batches)
    produce(broker, [(b"tail", b"in the active segment")])

    expected = [(10 + i, b"k%d" % i, b"final-%d" % i) for i in range(5)]
    expected += [(16, b"doomed", None), (17, b"tail", b"in the active segment")]
    assert consume_confluent(broker, len(expected)) == expected
    assert consume_kafka_python(broker, len(expected)) == expected

    roll_and_clean(broker)  # the horizon (delete.retention.ms=0) has passed: the tombstone goes
    produce(broker, [(b"after", b"second pass")])
    expected = [row for row in expected if row[1] != b"doomed"] + [(18, b"after", b"second pass")]
    assert consume_confluent(broker, len(expected)) == expected
    assert consume_kafka_python(broker, len(expected)) == expected
