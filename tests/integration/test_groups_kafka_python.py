"""Consumer groups with kafka-python against the embedded strom broker: its range, roundrobin, sticky and
cooperative-sticky assignors, commits, static membership, and its admin client's group operations.

Each consumer polls on its own thread (see `Member`); the test waits on the assignment snapshots they publish,
with a bound on every wait.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from kafka.structs import OffsetAndMetadata

from strom.broker import EmbeddedBroker
from tests.support.brokers import running_strom
from tests.support.waiting import wait_until

TOPIC = "events"
PARTITIONS = 6
ALL = {TopicPartition(TOPIC, p) for p in range(PARTITIONS)}
ASSIGNORS = {
    "range": RangePartitionAssignor,
    "roundrobin": RoundRobinPartitionAssignor,
    "sticky": StickyPartitionAssignor,
    "cooperative-sticky": CooperativeStickyAssignor,
}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    config = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}
    with running_strom(tmp_path / "data", config) as b:
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap_servers)
        try:
            admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        finally:
            admin.close()
        yield b


class Member:
    """A KafkaConsumer driven by its own thread, which polls continuously as an application would.

    kafka-python rebalances inside `poll`; a poll that times out while a SyncGroup is in flight can lose the
    assignment (seen with 3.0.12 when one thread alternates short polls over several consumers), so each
    member polls on its own with a long timeout. Consumers are not thread-safe: the test thread only reads
    the snapshots taken after each poll, and hands other calls to the poll thread with `call`.
    """

    def __init__(self, broker: EmbeddedBroker, group: str, assignor: str = "range", **kw: object) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=broker.bootstrap_servers,
            group_id=group,
            partition_assignment_strategy=[ASSIGNORS[assignor]],
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            heartbeat_interval_ms=200,
            session_timeout_ms=6000,
            **kw,
        )
        self.consumer.subscribe([TOPIC])
        self.assigned: set[TopicPartition] = set()
        self.offsets: dict[TopicPartition, list[int]] = {}
        self.changed = threading.Condition()  # notified after every poll
        self._calls: queue.Queue[tuple[Callable[[KafkaConsumer], object], queue.Queue[object]]] = (
            queue.Queue()
        )
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            records = self.consumer.poll(timeout_ms=500)
            with self.changed:
                self.assigned = set(self.consumer.assignment())
                for tp, batch in records.items():
                    self.offsets.setdefault(tp, []).extend(r.offset for r in batch)
                self.changed.notify_all()
            while not self._calls.empty():
                fn, answer = self._calls.get()
                try:
                    answer.put(fn(self.consumer))
                except Exception as exc:
                    answer.put(exc)

    def call(self, fn: Callable[[KafkaConsumer], object]) -> object:
        answer: queue.Queue[object] = queue.Queue()
        self._calls.put((fn, answer))
        result = answer.get(timeout=30)
        if isinstance(result, Exception):
            raise result
        return result

    def close(self) -> None:
        self._stop = True
        self._thread.join(30)
        self.consumer.close()


def split(a: Member, b: Member) -> bool:
    x, y = a.assigned, b.assigned
    return bool(x) and bool(y) and not (x & y) and x | y == ALL


@pytest.mark.parametrize("assignor", sorted(ASSIGNORS))
def test_two_members_share_partitions(broker: EmbeddedBroker, assignor: str) -> None:
    group = f"kp-{assignor}"
    a = Member(broker, group, assignor)
    b = None
    try:
        wait_until(lambda: a.assigned == ALL, "the first member holding every partition", changed=a.changed)
        b = Member(broker, group, assignor)
        wait_until(lambda: split(a, b), "the two members splitting the partitions", changed=a.changed)
        assert len(a.assigned) == len(b.assigned) == 3
        b.close()  # sends LeaveGroup
        b = None
        wait_until(lambda: a.assigned == ALL, "the first member holding every partition", changed=a.changed)
    finally:
        a.close()
        if b is not None:
            b.close()


def test_commit_and_resume(broker: EmbeddedBroker) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    for i in range(60):
        producer.send(TOPIC, key=f"k{i}".encode(), value=b"v")
    producer.flush(15)
    producer.close()
    a = Member(broker, "kp-commit")
    try:
        wait_until(lambda: a.assigned == ALL, "the first member holding every partition", changed=a.changed)
        a.call(lambda c: c.commit({tp: OffsetAndMetadata(3, "meta", -1) for tp in ALL}))
    finally:
        a.close()
    b = Member(broker, "kp-commit")
    try:
        wait_until(
            lambda: sum(len(v) for v in b.offsets.values()) >= 60 - 3 * PARTITIONS,
            "the second member reading every record after the committed offsets",
            changed=b.changed,
        )
        assert all(min(offsets) == 3 for offsets in b.offsets.values())
        assert all(b.call(lambda c, tp=tp: c.committed(tp)) == 3 for tp in ALL)
    finally:
        b.close()
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        offsets = admin.list_group_offsets("kp-commit")["kp-commit"]
        assert {tp: om.offset for tp, om in offsets.items()} == {tp: 3 for tp in ALL}
        assert {om.metadata for om in offsets.values()} == {"meta"}
    finally:
        admin.close()


class _Listener(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.revoked: list[object] = []

    def on_partitions_revoked(self, revoked: object) -> None:
        if revoked:
            self.revoked.append(revoked)

    def on_partitions_assigned(self, assigned: object) -> None:
        pass


def test_static_member_replacement_keeps_assignment(broker: EmbeddedBroker) -> None:
    a = Member(broker, "kp-static", group_instance_id="a")
    b = Member(broker, "kp-static", group_instance_id="b")
    b2 = None
    try:
        wait_until(lambda: split(a, b), "the two members splitting the partitions", changed=a.changed)
        mine = set(b.assigned)
        listener = _Listener()
        a.call(lambda c: c.subscribe([TOPIC], listener=listener))  # same subscription: no rejoin
        # "b" restarts: a new process comes with the same group.instance.id while the old one is hung.
        b._stop = True
        b._thread.join(30)
        b2 = Member(broker, "kp-static", group_instance_id="b")
        wait_until(
            lambda: b2.assigned == mine,
            "the replacement member getting the static member's partitions",
            changed=a.changed,
        )
        assert a.assigned == ALL - mine
        assert listener.revoked == [], "the other member was made to rebalance"
        b.consumer.close()  # the fenced old process: closing it must not remove its replacement
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        try:
            desc = admin.describe_groups(["kp-static"])["kp-static"]
        finally:
            admin.close()
        assert desc["group_state"] == "Stable"
        assert sorted(m["group_instance_id"] for m in desc["members"]) == ["a", "b"]
    finally:
        a.close()
        if b2 is not None:
            b2.close()
        b.consumer.close()


def test_admin_group_operations(broker: EmbeddedBroker) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    a = Member(broker, "kp-admin", client_id="kp-a")
    try:
        wait_until(lambda: a.assigned == ALL, "the first member holding every partition", changed=a.changed)
        a.call(lambda c: c.commit({TopicPartition(TOPIC, 0): OffsetAndMetadata(1, "", -1)}))
        desc = admin.describe_groups(["kp-admin"])["kp-admin"]
        assert desc["error"] is None
        assert (desc["group_state"], desc["protocol_type"], desc["protocol_data"]) == (
            "Stable",
            "consumer",
            "range",
        )
        (member,) = desc["members"]
        assert member["client_id"] == "kp-a" and member["client_host"] == "/127.0.0.1"
        assert member["member_metadata"]["topics"] == [TOPIC]
        assert member["member_assignment"]["assigned_partitions"] == [
            {"topic": TOPIC, "partitions": list(range(PARTITIONS))}
        ]
        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert listed["kp-admin"]["protocol_type"] == "consumer"
        # OffsetDelete refuses offsets of a topic the group consumes.
        result = admin.delete_group_offsets("kp-admin", [TopicPartition(TOPIC, 0)])
        assert result[TopicPartition(TOPIC, 0)].__name__ == "GroupSubscribedToTopicError"
    finally:
        a.close()
    try:
        assert admin.describe_groups(["kp-admin"])["kp-admin"]["group_state"] == "Empty"
        result = admin.delete_group_offsets("kp-admin", [TopicPartition(TOPIC, 0)])
        assert result[TopicPartition(TOPIC, 0)].__name__ == "NoError"
        assert admin.list_group_offsets("kp-admin") == {"kp-admin": {}}
        assert admin.delete_groups(["kp-admin"]) == {"kp-admin": "OK"}
        assert "kp-admin" not in {g["group_id"] for g in admin.list_groups()}
    finally:
        admin.close()
