"""What the strom.streams runtime tests share: unique names, topics, producing, reading outputs with bounded
waits, committed offsets."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from strom.streams.runtime.restore import StateRestoreListener
from tests.support.waiting import wait_until

Record = tuple[bytes | None, bytes | None, int]

# Event times of test records: an hour ago, not near 1970. Brokers delete records older than retention.ms
# (7 days by default) by their timestamps, and strom's broker does so within seconds, so tiny timestamps would
# make the input vanish mid-test.
BASE_TS = (int(time.time() * 1000) - 3_600_000) // 60_000 * 60_000


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topics(bootstrap: str, partitions: dict[str, int], configs: dict[str, str] | None = None) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(name, count, 1, config=dict(configs or {})) for name, count in partitions.items()]
    for future in admin.create_topics(new).values():
        future.result(30)


def produce(bootstrap: str, topic: str, records: Iterable[Record], partition: int | None = None) -> None:
    """Send records with Java's partitioner (murmur2), wait until all are acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
    errors: list[str] = []

    def check(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for key, value, ts in records:
        kwargs: dict[str, Any] = {"timestamp": ts, "on_delivery": check}
        if partition is not None:
            kwargs["partition"] = partition
        producer.produce(topic, value, key, **kwargs)
    assert producer.flush(30) == 0, "records were not acknowledged within 30 s"
    assert not errors, errors


class TopicReader:
    """Reads every partition of a topic from the beginning and keeps everything read; `wait_until` polls with
    a deadline. It assigns partitions itself (no consumer group), so no rebalance can make it re-read or
    stall."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.records: list[
            tuple[bytes | None, bytes | None, int, int]
        ] = []  # key, value, timestamp, partition
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": unique("reader"), "enable.auto.commit": False}
        )
        partitions = self._consumer.list_topics(topic, timeout=30).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])

    def wait_until(self, condition: Callable[[list[Any]], bool], timeout: float = 60.0) -> list[Any]:
        wait_until(
            lambda: condition(self.records),
            lambda: f"the records awaited on {self.topic}; read so far: {self.records[-20:]}",
            timeout=timeout,
            step=self._read,
        )
        return self.records

    def _read(self) -> None:
        for m in self._consumer.consume(500, timeout=0.2):
            if m.error() is None:
                self.records.append((m.key(), m.value(), m.timestamp()[1], m.partition()))

    def latest_by_key(self) -> dict[bytes | None, bytes | None]:
        return {key: value for key, value, _, _ in self.records}

    def close(self) -> None:
        self._consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    """The group's committed offset per partition (-1001 when none), read through a consumer of that group
    that never joins it. (AdminClient.list_consumer_group_offsets crashes librdkafka 2.16 on some OffsetFetch
    answers.)"""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        return [tp.offset for tp in tps]
    finally:
        consumer.close()


class CountingRestoreListener(StateRestoreListener):
    """Counts restored records per store; `ended` is set once every started restore has ended."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.restored: dict[str, int] = {}
        self.started: list[tuple[str, int, str, int, int]] = []
        self.pending = 0
        self.ended = threading.Event()

    def on_restore_start(
        self, topic: str, partition: int, store_name: str, start_offset: int, end_offset: int
    ) -> None:
        with self.lock:
            self.started.append((topic, partition, store_name, start_offset, end_offset))
            self.pending += 1
            self.ended.clear()

    def on_restore_end(self, topic: str, partition: int, store_name: str, total_restored: int) -> None:
        with self.lock:
            self.restored[store_name] = self.restored.get(store_name, 0) + total_restored
            self.pending -= 1
            if self.pending == 0:
                self.ended.set()

    @property
    def total(self) -> int:
        with self.lock:
            return sum(self.restored.values())


def streams_config(bootstrap: str, app_id: str, state_dir: Path, **extra: Any) -> dict[str, Any]:
    """A test config: short commit interval, fast group membership, its own state dir."""
    return {
        "application.id": app_id,
        "bootstrap.servers": bootstrap,
        "state.dir": str(state_dir),
        "commit.interval.ms": 100,
        "consumer.session.timeout.ms": 6000,
        "consumer.heartbeat.interval.ms": 500,
        **extra,
    }
