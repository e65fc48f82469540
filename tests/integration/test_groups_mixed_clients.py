"""One group, two client libraries: a librdkafka member and a kafka-python member agree on the `range`
protocol through strom's coordinator and split a topic, and a commit by one is seen by the other."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.structs import TopicPartition as KpTopicPartition

from tests.integration.test_groups_kafka_python import Member as KafkaPythonMember
from tests.support.brokers import running_strom
from tests.support.waiting import wait_until

TOPIC = "events"  # the kafka-python Member subscribes to this topic
PARTITIONS = 6


def test_librdkafka_and_kafka_python_share_one_group(tmp_path: Path) -> None:
    config = {"group.initial.rebalance.delay.ms": "0"}
    with running_strom(tmp_path / "data", config, topics=[NewTopic(TOPIC, PARTITIONS, 1)]) as broker:
        rd_assigned: set[int] = set()
        rd = Consumer(
            {
                "bootstrap.servers": broker.bootstrap_servers,
                "group.id": "mixed",
                "partition.assignment.strategy": "range",
                "enable.auto.commit": False,
            }
        )
        rd.subscribe(
            [TOPIC],
            on_assign=lambda _c, ps: rd_assigned.update(p.partition for p in ps),
            on_revoke=lambda _c, ps: rd_assigned.difference_update(p.partition for p in ps),
        )
        kp = KafkaPythonMember(broker, "mixed", "range")
        assert kp.consumer.config["partition_assignment_strategy"] == [RangePartitionAssignor]
        try:
            kp_assigned: set[int] = set()

            def split() -> bool:
                kp_assigned.clear()
                kp_assigned.update(tp.partition for tp in kp.assigned)
                disjoint = rd_assigned and kp_assigned and not rd_assigned & kp_assigned
                return bool(disjoint) and rd_assigned | kp_assigned == set(range(PARTITIONS))

            wait_until(
                split,
                lambda: f"the two clients splitting the partitions (held: {rd_assigned}, {kp_assigned})",
                step=lambda: rd.poll(0.05),
            )
            assert len(rd_assigned) == len(kp_assigned) == 3
            partition = min(rd_assigned)
            rd.commit(offsets=[TopicPartition(TOPIC, partition, 7)], asynchronous=False)
            assert kp.call(lambda c: c.committed(KpTopicPartition(TOPIC, partition))) == 7
        finally:
            kp.close()
            rd.close()
