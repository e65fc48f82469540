"""The same key lands on the same partition whichever client produced it, on strom and on Apache Kafka.

Six producers (confluent-kafka, kafka-python, aiokafka, kcat, franz-go, the Java console producer) write the
same 300 keys to one 6-partition topic; reading the topic back, every key's six records share one partition,
the one Java's murmur2 partitioner picks.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import defaultdict

from aiokafka import AIOKafkaProducer
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaProducer
from tools.kafka import require_kafka, run_kafka_tool
from tools.peers import franzgo_path, kcat_path

from tests.support.scenario import PARTITIONS, create_topic, java_partition, key_of, unique_name

KEYS = [key_of(i) for i in range(300)]
CLIENTS = ("confluent", "kafka-python", "aiokafka", "kcat", "franzgo", "java")


def produce_with_every_client(bootstrap: str, topic: str) -> None:
    confluent = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for key in KEYS:
        confluent.produce(topic, key=key, value=b"confluent")
    assert confluent.flush(30) == 0

    kafka_python = KafkaProducer(bootstrap_servers=bootstrap)
    for key in KEYS:
        kafka_python.send(topic, key=key.encode(), value=b"kafka_python")
    kafka_python.flush(timeout=30)
    kafka_python.close(timeout=10)

    async def with_aiokafka() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for key in KEYS:
                await producer.send(topic, key=key.encode(), value=b"aiokafka")
        finally:
            await producer.stop()

    asyncio.run(with_aiokafka())

    lines = "".join(f"{key}:{{}}\n" for key in KEYS)
    kcat = subprocess.run(
        [kcat_path(), "-P", "-b", bootstrap, "-t", topic, "-K", ":", "-X", "partitioner=murmur2_random"],
        input=lines.replace("{}", "kcat"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert kcat.returncode == 0, kcat.stderr

    # The franz-go program writes keys key-00000.. with values franzgo-N, the same key set.
    franzgo = subprocess.run(
        [str(franzgo_path()), "produce", "-brokers", bootstrap, "-topic", topic, "-count", str(len(KEYS))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert franzgo.returncode == 0, franzgo.stderr

    run_kafka_tool(
        "kafka-console-producer", "--bootstrap-server", bootstrap, "--topic", topic,
        "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
        input=lines.replace("{}", "java"),
    )  # fmt: skip


def test_every_client_puts_a_key_on_the_same_partition(any_broker: str) -> None:
    require_kafka()
    topic = unique_name("partitioning")
    create_topic(any_broker, topic)
    produce_with_every_client(any_broker, topic)

    expected_total = len(KEYS) * len(CLIENTS)
    consumer = Consumer(
        {"bootstrap.servers": any_broker, "group.id": unique_name("reader"), "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    partitions_of: dict[str, set[int]] = defaultdict(set)
    writers_of: dict[str, set[str]] = defaultdict(set)
    seen = 0
    try:
        for _ in range(600):  # bounded: a few seconds for 1,800 records
            for message in consumer.consume(num_messages=500, timeout=0.2):
                assert message.error() is None, message.error()
                key = message.key().decode()
                partitions_of[key].add(message.partition())
                writers_of[key].add(message.value().decode().split("-")[0])
                seen += 1
            if seen >= expected_total:
                break
    finally:
        consumer.close()
    assert seen == expected_total
    assert set(partitions_of) == set(KEYS)
    for key in KEYS:
        assert writers_of[key] == {"confluent", "kafka_python", "aiokafka", "kcat", "franzgo", "java"}, key
        assert partitions_of[key] == {java_partition(key.encode())}, (key, partitions_of[key])
