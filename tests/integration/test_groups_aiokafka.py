"""Consumer groups with aiokafka (non-flexible protocol versions only) against the embedded strom broker:
two members share a topic under each of its assignors, a leaving member hands over, commits resume."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from confluent_kafka.admin import NewTopic

from strom.broker import EmbeddedBroker
from tests.support.brokers import running_strom
from tests.support.waiting import wait_until_async

TOPIC = "events"
PARTITIONS = 6
ALL = {TopicPartition(TOPIC, p) for p in range(PARTITIONS)}
ASSIGNORS = {
    "range": RangePartitionAssignor,
    "roundrobin": RoundRobinPartitionAssignor,
    "sticky": StickyPartitionAssignor,
}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    config = {"group.initial.rebalance.delay.ms": "0"}
    with running_strom(tmp_path / "data", config, topics=[NewTopic(TOPIC, PARTITIONS, 1)]) as b:
        yield b


class Tracker(ConsumerRebalanceListener):
    """Publishes a member's assignment on every rebalance and wakes whoever waits for a change."""

    def __init__(self, changed: asyncio.Event) -> None:
        self.assigned: set[TopicPartition] = set()
        self.changed = changed
        self.revocations = 0

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.revocations += 1
        self.assigned -= set(revoked)
        self.changed.set()

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned = set(assigned)
        self.changed.set()


async def member(
    broker: EmbeddedBroker, group: str, changed: asyncio.Event, assignor: str = "range", **kw: object
) -> tuple[AIOKafkaConsumer, Tracker]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        group_id=group,
        partition_assignment_strategy=(ASSIGNORS[assignor],),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        heartbeat_interval_ms=200,
        **kw,
    )
    tracker = Tracker(changed)
    consumer.subscribe([TOPIC], listener=tracker)
    await consumer.start()
    return consumer, tracker


@pytest.mark.parametrize("assignor", sorted(ASSIGNORS))
def test_two_members_share_partitions(broker: EmbeddedBroker, assignor: str) -> None:
    async def scenario() -> None:
        changed = asyncio.Event()
        a, ta = await member(broker, f"aio-{assignor}", changed, assignor)
        try:
            await wait_until_async(
                lambda: ta.assigned == ALL, "the first member holding every partition", changed
            )
            b, tb = await member(broker, f"aio-{assignor}", changed, assignor)
            try:
                await wait_until_async(
                    lambda: (
                        bool(ta.assigned)
                        and bool(tb.assigned)
                        and ta.assigned | tb.assigned == ALL
                        and not ta.assigned & tb.assigned
                    ),
                    "the two members splitting the partitions",
                    changed,
                )
                assert len(ta.assigned) == len(tb.assigned) == 3
            finally:
                await b.stop()  # sends LeaveGroup
            await wait_until_async(
                lambda: ta.assigned == ALL, "the first member holding every partition", changed
            )
        finally:
            await a.stop()

    asyncio.run(scenario())


def test_commit_and_resume(broker: EmbeddedBroker) -> None:
    async def scenario() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        try:
            for i in range(30):
                await producer.send(TOPIC, key=f"k{i}".encode(), value=b"v", partition=i % PARTITIONS)
            await producer.flush()
        finally:
            await producer.stop()
        changed = asyncio.Event()
        a, ta = await member(broker, "aio-commit", changed)
        try:
            await wait_until_async(
                lambda: ta.assigned == ALL, "the first member holding every partition", changed
            )
            await a.commit({tp: 2 for tp in ALL})
        finally:
            await a.stop()
        b, tb = await member(broker, "aio-commit", changed)
        try:
            await wait_until_async(
                lambda: tb.assigned == ALL, "the second member holding every partition", changed
            )
            assert {tp: await b.committed(tp) for tp in ALL} == {tp: 2 for tp in ALL}
            batches = await asyncio.wait_for(_drain(b, expected=30 - 2 * PARTITIONS), 30)
            assert {tp: min(offsets) for tp, offsets in batches.items()} == {tp: 2 for tp in ALL}
        finally:
            await b.stop()

    asyncio.run(scenario())


async def _drain(consumer: AIOKafkaConsumer, expected: int) -> dict[TopicPartition, list[int]]:
    seen: dict[TopicPartition, list[int]] = {}
    while sum(len(v) for v in seen.values()) < expected:
        for tp, records in (await consumer.getmany(timeout_ms=500)).items():
            seen.setdefault(tp, []).extend(r.offset for r in records)
    return seen


def test_static_member_restart_keeps_assignment(broker: EmbeddedBroker) -> None:
    async def scenario() -> None:
        changed = asyncio.Event()
        a, ta = await member(broker, "aio-static", changed, group_instance_id="a")
        b, tb = await member(broker, "aio-static", changed, group_instance_id="b")
        b2 = None
        try:
            await wait_until_async(
                lambda: (
                    bool(ta.assigned)
                    and bool(tb.assigned)
                    and ta.assigned | tb.assigned == ALL
                    and not ta.assigned & tb.assigned
                ),
                "the two members splitting the partitions",
                changed,
            )
            mine = set(tb.assigned)
            before = set(ta.assigned)
            revocations = ta.revocations
            await b.stop()  # a static member's stop sends no LeaveGroup (KIP-345)
            b = None
            b2, tb2 = await member(broker, "aio-static", changed, group_instance_id="b")
            await wait_until_async(
                lambda: tb2.assigned == mine, "the rejoined member getting its partitions back", changed
            )
            assert ta.assigned == before
            assert ta.revocations == revocations, "the other member was made to rebalance"
        finally:
            await a.stop()
            if b is not None:
                await b.stop()
            if b2 is not None:
                await b2.stop()

    asyncio.run(scenario())
