"""An Apache Kafka broker loads a partition directory written by strom.log and serves its records.

Kafka creates the topic (so its metadata and topic id exist), is stopped cleanly, strom replaces the
partition's segments, indexes, producer snapshot and leader-epoch checkpoint with its own, and Kafka is
started again: it must load them without complaints (segments, indexes, producer snapshot), report the same
offsets, hand a consumer exactly the records strom wrote, and append new records after them."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from tools.kafka import ApacheKafka

from strom.log.config import LogConfig
from strom.log.partition import Partition
from strom.protocol.records import BatchBuilder, Compression

pytestmark = pytest.mark.kafka

TOPIC = "strom-written"


def write_with_strom(partition_dir: Path) -> list[tuple[int, bytes | None, bytes | None, int]]:
    """Replace Kafka's empty segment with strom's; returns (offset, key, value, timestamp) written."""
    for name in ("00000000000000000000.log", "00000000000000000000.index", "00000000000000000000.timeindex"):
        (partition_dir / name).unlink(missing_ok=True)
    for snapshot in partition_dir.glob("*.snapshot"):
        snapshot.unlink()
    part = Partition.open(partition_dir, LogConfig(segment_bytes=1200, index_interval_bytes=256))
    written = []
    codecs = [Compression.NONE, Compression.GZIP, Compression.LZ4, Compression.ZSTD, Compression.SNAPPY]
    for i in range(25):
        builder = BatchBuilder(
            compression=codecs[i % 5], producer_id=5000, producer_epoch=0, base_sequence=3 * i
        )
        rows = []
        for j in range(3):
            key, value, ts = b"key-%d" % (3 * i + j), b"value-%d" % (3 * i + j), 1_700_000_000_000 + 3 * i + j
            builder.append(key, value if j != 1 else None, ts, headers=[("n", b"%d" % j)])
            rows.append((key, value if j != 1 else None, ts))
        result = part.append(builder.build())
        written += [(result.base_offset + j, *row) for j, row in enumerate(rows)]
    assert len(part.segments_snapshot()) > 2
    part.close()
    return written


def consume_all(bootstrap: str, end: int) -> list[tuple[int, bytes | None, bytes | None, int]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "strom-log-check", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(TOPIC, 0, 0)])
        out: list[tuple[int, bytes | None, bytes | None, int]] = []
        for _ in range(200):
            if len(out) >= end:
                break
            for msg in consumer.consume(100, timeout=1.0):
                assert msg.error() is None, msg.error()
                out.append((msg.offset(), msg.key(), msg.value(), msg.timestamp()[1]))
        low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
        assert (low, high) == (0, end)
        return out
    finally:
        consumer.close()


def test_apache_kafka_serves_a_partition_written_by_strom(apache_kafka_server: ApacheKafka):
    kafka = apache_kafka_server
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(timeout=30)
    # One acknowledged record proves Kafka has created the partition's log directory (and its metadata).
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    producer.produce(TOPIC, b"placeholder", partition=0)
    assert producer.flush(30) == 0
    del producer, admin
    partition_dir = kafka.data_dir / f"{TOPIC}-0"
    assert (partition_dir / "partition.metadata").exists()
    kafka.stop()
    log_start = kafka.log_path.stat().st_size
    try:
        written = write_with_strom(partition_dir)
    finally:
        kafka.start()  # the session's broker must come back whatever happened
    assert consume_all(kafka.bootstrap_servers, len(written)) == written
    with open(kafka.log_path, "rb") as f:
        f.seek(log_start)
        log = f.read().decode(errors="replace")
    for complaint in (
        "CorruptRecordException",
        "CorruptIndexException",
        "CorruptSnapshotException",
        "invalid",
    ):
        assert complaint not in log, complaint

    offsets: list[int] = []
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    producer.produce(
        TOPIC, b"after strom", partition=0, on_delivery=lambda err, msg: offsets.append(msg.offset())
    )
    assert producer.flush(30) == 0
    assert offsets == [len(written)]
