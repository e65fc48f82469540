"""Consumer groups with librdkafka (confluent-kafka) against the embedded strom broker.

Every wait is a bounded polling loop on the consumers' own rebalance callbacks; nothing sleeps for time to
pass. The broker runs with group.initial.rebalance.delay.ms=0 and a low minimum session timeout so that the
session-expiry test takes seconds, not the default 45.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from strom.broker import EmbeddedBroker
from tests.support.brokers import running_strom
from tests.support.waiting import wait_until

TOPIC = "events"
PARTITIONS = 6
ALL = {(TOPIC, p) for p in range(PARTITIONS)}
BROKER_CONFIG = {"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with running_strom(tmp_path / "data", BROKER_CONFIG, topics=[NewTopic(TOPIC, PARTITIONS, 1)]) as b:
        yield b


class Member:
    """A subscribed consumer whose assignment is tracked through its rebalance callbacks."""

    def __init__(self, bootstrap: str, group: str, strategy: str = "range", **conf: Any) -> None:
        self.assigned: set[tuple[str, int]] = set()
        self.assign_calls = 0
        self.revoke_calls = 0
        self.records: list[tuple[int, int]] = []
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "partition.assignment.strategy": strategy,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 300,
                **conf,
            }
        )
        self.consumer.subscribe(
            [TOPIC], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )

    def _on_assign(self, _c: Any, partitions: list[TopicPartition]) -> None:
        self.assign_calls += 1
        self.assigned |= {(p.topic, p.partition) for p in partitions}

    def _on_revoke(self, _c: Any, partitions: list[TopicPartition]) -> None:
        self.revoke_calls += 1
        self.assigned -= {(p.topic, p.partition) for p in partitions}

    def poll(self) -> None:
        msg = self.consumer.poll(0.05)
        if msg is not None and msg.error() is None:
            self.records.append((msg.partition(), msg.offset()))

    def close(self) -> None:
        self.consumer.close()


def poll_all(*members: Member) -> None:
    """librdkafka rebalances and fetches only inside poll(): the step of every wait in this file."""
    for m in members:
        m.poll()


def split_between(a: Member, b: Member) -> bool:
    return (
        bool(a.assigned)
        and bool(b.assigned)
        and not (a.assigned & b.assigned)
        and a.assigned | b.assigned == ALL
    )


def produce(bootstrap: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(count):
        producer.produce(TOPIC, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert producer.flush(15) == 0


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_second_member_triggers_rebalance_and_both_get_partitions(
    broker: EmbeddedBroker, strategy: str
) -> None:
    first = Member(broker.bootstrap_servers, f"g-{strategy}", strategy)
    second = None
    try:
        wait_until(
            lambda: first.assigned == ALL,
            "the first member holding every partition",
            step=lambda: poll_all(first),
        )
        second = Member(broker.bootstrap_servers, f"g-{strategy}", strategy)
        wait_until(
            lambda: split_between(first, second),
            "the two members splitting the partitions",
            step=lambda: poll_all(first, second),
        )
        assert len(first.assigned) == len(second.assigned) == 3
        # The member closing hands its partitions over.
        second.close()
        second = None
        wait_until(
            lambda: first.assigned == ALL,
            "the first member holding every partition",
            step=lambda: poll_all(first),
        )
    finally:
        first.close()
        if second is not None:
            second.close()


KILLED_MEMBER = textwrap.dedent(
    """
    import sys
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "session.timeout.ms": 1500,
                  "heartbeat.interval.ms": 200, "partition.assignment.strategy": "range"})
    c.subscribe([sys.argv[3]], on_assign=lambda _c, ps: (print("ASSIGNED", len(ps), flush=True)))
    while True:
        c.poll(0.1)
    """
)


def test_killed_member_is_expired_after_its_session_timeout(broker: EmbeddedBroker) -> None:
    survivor = Member(broker.bootstrap_servers, "g-kill")
    proc: subprocess.Popen[str] | None = None
    try:
        # The child starts only once the survivor holds every partition: started together, both could join
        # the first generation and the survivor would never hold them all.
        wait_until(
            lambda: survivor.assigned == ALL,
            "the survivor holding every partition",
            step=lambda: poll_all(survivor),
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLED_MEMBER, broker.bootstrap_servers, "g-kill", TOPIC],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        # The child joins: the survivor rebalances down to its half while the child reports its assignment.
        wait_until(
            lambda: len(survivor.assigned) == 3,
            "the survivor handing half over",
            step=lambda: poll_all(survivor),
        )
        line = proc.stdout.readline()
        assert line.startswith("ASSIGNED"), line
        proc.kill()  # no LeaveGroup: only the session timeout can notice
        proc.wait(10)
        wait_until(
            lambda: survivor.assigned == ALL,
            "the survivor taking over the killed member's partitions",
            step=lambda: poll_all(survivor),
        )
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        described = admin.describe_consumer_groups(["g-kill"])["g-kill"].result(10)
        assert len(described.members) == 1
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(10)
        survivor.close()


def test_commits_survive_restart_and_consumption_resumes(broker: EmbeddedBroker) -> None:
    produce(broker.bootstrap_servers, 120)
    member = Member(broker.bootstrap_servers, "g-restart")
    wait_until(lambda: len(member.records) >= 50, "50 records consumed", step=lambda: poll_all(member))
    member.consumer.commit(asynchronous=False)
    committed = {
        tp.partition: tp.offset
        for tp in member.consumer.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10)
    }
    first_run = set(member.records)
    member.close()
    assert sum(max(offset, 0) for offset in committed.values()) == len(first_run)

    broker.stop()
    broker.start()

    again = Member(broker.bootstrap_servers, "g-restart")
    try:
        after = {
            tp.partition: tp.offset
            for tp in again.consumer.committed(
                [TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10
            )
        }
        assert after == committed
        wait_until(
            lambda: len(first_run) + len(again.records) >= 120,
            "all 120 records consumed across the restart",
            step=lambda: poll_all(again),
        )
        second_run = set(again.records)
        assert not first_run & second_run, "records consumed again after the restart"
        assert len(first_run | second_run) == 120
        assert all(offset >= committed[p] for p, offset in second_run)
    finally:
        again.close()


def test_static_member_rejoins_without_rebalance(broker: EmbeddedBroker) -> None:
    a = Member(broker.bootstrap_servers, "g-static", **{"group.instance.id": "instance-a"})
    b = Member(broker.bootstrap_servers, "g-static", **{"group.instance.id": "instance-b"})
    b2 = None
    try:
        wait_until(
            lambda: split_between(a, b),
            "the two members splitting the partitions",
            step=lambda: poll_all(a, b),
        )
        b_partitions = set(b.assigned)
        revokes_before = a.revoke_calls
        b.close()  # a static member sends no LeaveGroup
        b2 = Member(broker.bootstrap_servers, "g-static", **{"group.instance.id": "instance-b"})
        wait_until(
            lambda: b2.assigned == b_partitions,
            "the replacement member getting the static member's partitions",
            step=lambda: poll_all(a, b2),
        )
        assert a.revoke_calls == revokes_before, "the other member was made to rebalance"
        assert a.assigned == ALL - b_partitions
    finally:
        a.close()
        if b2 is not None:
            b2.close()


def test_admin_describe_list_and_delete_groups(broker: EmbeddedBroker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    a = Member(broker.bootstrap_servers, "g-admin", **{"client.id": "client-a"})
    b = Member(broker.bootstrap_servers, "g-admin", **{"client.id": "client-b"})
    try:
        wait_until(
            lambda: split_between(a, b),
            "the two members splitting the partitions",
            step=lambda: poll_all(a, b),
        )
        wait_until(
            lambda: _state(admin, "g-admin") == "STABLE",
            "the group being Stable",
            step=lambda: poll_all(a, b),
        )
        desc = admin.describe_consumer_groups(["g-admin"])["g-admin"].result(10)
        assert desc.partition_assignor == "range"
        assert not desc.is_simple_consumer_group
        assert f"{desc.coordinator.host}:{desc.coordinator.port}" == broker.bootstrap_servers
        by_client = {m.client_id: m for m in desc.members}
        assert set(by_client) == {"client-a", "client-b"}
        for m, member in ((by_client["client-a"], a), (by_client["client-b"], b)):
            assert m.host == "/127.0.0.1"
            assert {(tp.topic, tp.partition) for tp in m.assignment.topic_partitions} == member.assigned
        listed = {g.group_id: g for g in admin.list_consumer_groups().result(10).valid}
        assert listed["g-admin"].state.name == "STABLE"
        with pytest.raises(KafkaException) as refused:
            admin.delete_consumer_groups(["g-admin"])["g-admin"].result(10)
        assert "NON_EMPTY_GROUP" in str(refused.value)
        a.consumer.commit(offsets=[TopicPartition(TOPIC, next(iter(a.assigned))[1], 0)], asynchronous=False)
    finally:
        a.close()
        b.close()
    assert _state(admin, "g-admin") == "EMPTY"
    admin.delete_consumer_groups(["g-admin"])["g-admin"].result(10)
    assert "g-admin" not in {g.group_id for g in admin.list_consumer_groups().result(10).valid}
    gone = admin.describe_consumer_groups(["g-admin"])["g-admin"].result(10)
    assert gone.state.name == "DEAD"


def _state(admin: AdminClient, group: str) -> str:
    return admin.describe_consumer_groups([group])[group].result(10).state.name


def test_connected_member_carries_on_across_a_broker_restart(broker: EmbeddedBroker) -> None:
    produce(broker.bootstrap_servers, 30)
    member = Member(broker.bootstrap_servers, "g-live")
    try:
        wait_until(lambda: len(member.records) >= 30, "30 records consumed", step=lambda: poll_all(member))
        member.consumer.commit(asynchronous=False)
        revokes = member.revoke_calls
        broker.stop()
        broker.start()  # same data directory and port: the group comes back Stable with this member
        produce(broker.bootstrap_servers, 30)
        wait_until(
            lambda: len(member.records) >= 60,
            "60 records consumed across the restart",
            step=lambda: poll_all(member),
        )
        assert member.revoke_calls == revokes, "the restart forced a rebalance"
        assert len(set(member.records)) == 60
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        assert admin.describe_consumer_groups(["g-live"])["g-live"].result(10).state.name == "STABLE"
    finally:
        member.close()
