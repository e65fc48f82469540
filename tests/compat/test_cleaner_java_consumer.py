"""The Java consumer (kafka-console-consumer) reads a strom topic rewritten by the cleaner: offset gaps, a
producer's emptied last batch and a tombstone under a delete horizon are all handled as Kafka's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka.admin import NewTopic
from tools.kafka import require_kafka, run_kafka_tool

from strom.broker import EmbeddedBroker
from tests.integration.test_cleaner_with_clients import TIMEOUT, TOPIC, produce, roll_and_clean
from tests.support.brokers import running_strom

pytestmark = pytest.mark.kafka


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    require_kafka()
    config = {
        "cleanup.policy": "compact",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "60000",
    }
    topics = [NewTopic(TOPIC, 1, 1, config=config)]
    with running_strom(tmp_path_factory.mktemp("data"), {"num.partitions": 1}, topics=topics) as b:
        yield b


def test_java_console_consumer_reads_the_cleaned_topic(broker: EmbeddedBroker) -> None:
    produce(broker, [(b"k%d" % (i % 4), b"old-%d" % i) for i in range(8)], **{"enable.idempotence": True})
    produce(broker, [(b"k%d" % i, b"new-%d" % i) for i in range(4)] + [(b"gone", b"x"), (b"gone", None)])
    roll_and_clean(broker)
    produce(broker, [(b"tail", b"active")])

    out = run_kafka_tool(
        "kafka-console-consumer",
        "--bootstrap-server",
        broker.bootstrap_servers,
        "--topic",
        TOPIC,
        "--from-beginning",
        "--max-messages",
        "6",
        "--timeout-ms",
        str(TIMEOUT * 1000),
        "--property",
        "print.key=true",
        "--property",
        "print.offset=true",
        timeout=60,
    )
    lines = [line.split("\t") for line in out.stdout.splitlines() if line.startswith("Offset:")]
    assert [tuple(parts) for parts in lines] == [
        ("Offset:8", "k0", "new-0"),
        ("Offset:9", "k1", "new-1"),
        ("Offset:10", "k2", "new-2"),
        ("Offset:11", "k3", "new-3"),
        ("Offset:13", "gone", "null"),
        ("Offset:14", "tail", "active"),
    ]
