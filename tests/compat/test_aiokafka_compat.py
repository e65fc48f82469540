"""aiokafka against strom and Apache Kafka: idempotent lz4 producer, a two-member group, a broker restart, and
resuming from the committed offsets."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

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

T = TypeVar("T")


async def produce_async(bootstrap: str, topic: str) -> dict[str, str]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, compression_type="lz4", linger_ms=5
    )
    await producer.start()
    try:
        values = {key_of(i): f"aiokafka-{i}" for i in range(RECORDS)}
        pending = {
            key: await producer.send(topic, key=key.encode(), value=v.encode()) for key, v in values.items()
        }
        acked = dict(zip(pending, await asyncio.wait_for(asyncio.gather(*pending.values()), 60), strict=True))
    finally:
        await producer.stop()
    assert len({(m.partition, m.offset) for m in acked.values()}) == RECORDS, "two records share an offset"
    for key, metadata in acked.items():
        assert metadata.partition == java_partition(key.encode()), f"{key} acked in {metadata.partition}"
    return values


def produce(bootstrap: str, topic: str) -> dict[str, str]:
    """Produce the scenario's records idempotently; return key -> value, having checked every ack."""
    return asyncio.run(produce_async(bootstrap, topic))


class AiokafkaMember:
    """A group member on AIOKafkaConsumer with manual commits, behind a synchronous interface.

    Each member owns an event loop running on its own thread, so its heartbeats go on while other members
    work; every call into the consumer is made on that loop.
    """

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        self.topic = topic
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.consumer = self._run(self._start(bootstrap, group))

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    async def _start(self, bootstrap: str, group: str) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            heartbeat_interval_ms=500,
        )
        await consumer.start()
        return consumer

    def poll_batch(self) -> list[Consumed]:
        polled = self._run(self.consumer.getmany(timeout_ms=500, max_records=500))
        return [
            Consumed(m.partition, m.offset, m.key.decode(), m.value.decode())
            for messages in polled.values()
            for m in messages
        ]

    def assignment(self) -> set[int]:
        return self._run(self._assignment())

    async def _assignment(self) -> set[int]:
        return {tp.partition for tp in self.consumer.assignment()}

    def commit(self, records: Sequence[Consumed]) -> None:
        offsets = {TopicPartition(self.topic, p): o for p, o in highest_offsets(records).items()}
        self._run(self.consumer.commit(offsets))

    def rewind(self, records: Sequence[Consumed]) -> None:
        self._run(self._rewind(records))

    async def _rewind(self, records: Sequence[Consumed]) -> None:
        held = {tp.partition for tp in self.consumer.assignment()}
        for partition, offset in first_offsets(records).items():
            if partition in held:
                self.consumer.seek(TopicPartition(self.topic, partition), offset)

    def close(self) -> None:
        try:
            self._run(self.consumer.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


def test_aiokafka_group_resumes_after_restart_with_nothing_lost_or_repeated(
    broker_under_test: BrokerUnderTest,
) -> None:
    run_restart_scenario(broker_under_test, "aiokafka", produce, AiokafkaMember)
