"""strom's cleaner keeps exactly the records Apache Kafka's own log cleaner keeps.

The same records (keys overwritten across segments, a tombstone, keys written once) go to Apache Kafka and
to a strom partition, with record timestamps that make both roll segments at the same offsets
(`segment.ms`, driven by record timestamps in both). Kafka's cleaner thread compacts its copy on its own
schedule (`log.cleaner.backoff.ms`, 15 s); strom's is run directly. The surviving (offset, key, value)
records read from both sets of segment files must be the same.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from strom.log.cleaner import Cleaner
from strom.log.config import LogConfig
from strom.log.partition import Partition
from strom.protocol.records import BatchBuilder, RecordBatch, iter_batches
from tests.support.kafka import ApacheKafka

pytestmark = pytest.mark.kafka

SEGMENT_MS = 10_000
BASE = int(time.time() * 1000) - 10 * SEGMENT_MS  # in the past: Kafka refuses timestamps far in the future

# (key, value or None, timestamp); each new timestamp step of SEGMENT_MS starts a new segment in both logs.
ROWS: list[tuple[bytes, bytes | None, int]] = (
    [(b"user-%d" % (i % 5), b"v1-%d" % i, BASE) for i in range(10)]
    + [(b"user-%d" % i, b"v2-%d" % i, BASE + 2 * SEGMENT_MS) for i in range(3)]
    + [(b"user-4", None, BASE + 2 * SEGMENT_MS), (b"once", b"only write", BASE + 2 * SEGMENT_MS)]
    + [(b"user-0", b"v3-0", BASE + 4 * SEGMENT_MS)]
    + [(b"active", b"stays in the active segment", BASE + 6 * SEGMENT_MS)]
)
TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(SEGMENT_MS),
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "3600000",
    "min.compaction.lag.ms": "0",
}

Row = tuple[int, bytes | None, bytes | None]


def rows_of(batches: list[RecordBatch]) -> list[Row]:
    return [(r.offset, r.key, r.value) for b in batches if not b.is_control for r in b.records()]


def kafka_segments(kafka: ApacheKafka, topic: str) -> list[list[RecordBatch]]:
    directory = kafka.data_dir / f"{topic}-0"
    return [list(iter_batches(path.read_bytes())) for path in sorted(directory.glob("*.log"))]


def is_compacted(segments: list[list[RecordBatch]]) -> bool:
    """Kafka's cleaner has run over every inactive segment: no key appears twice there."""
    keys = [key for _, key, _ in rows_of([b for seg in segments[:-1] for b in seg])]
    return len(segments) > 1 and len(keys) == len(set(keys))


def test_strom_cleaner_keeps_what_kafkas_cleaner_keeps(
    apache_kafka_server: ApacheKafka, tmp_path: Path
) -> None:
    topic = f"compare-compaction-{time.time_ns()}"
    admin = AdminClient({"bootstrap.servers": apache_kafka_server.bootstrap_servers})
    for future in admin.create_topics([NewTopic(topic, 1, 1, config=TOPIC_CONFIG)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": apache_kafka_server.bootstrap_servers, "linger.ms": 0})
    for key, value, timestamp in ROWS:
        producer.produce(topic, key=key, value=value, timestamp=timestamp)
        assert producer.flush(30) == 0  # one batch per record, in order

    strom = Partition.open(
        tmp_path / "compare-0",
        LogConfig.from_properties({**TOPIC_CONFIG, "file.delete.delay.ms": "0"}),
        clock=lambda: BASE + 7 * SEGMENT_MS,
    )
    for key, value, timestamp in ROWS:
        builder = BatchBuilder()
        builder.append(key, value, timestamp)
        strom.append(builder.build())
    Cleaner(tmp_path).clean(("compare", 0), strom, int(time.time() * 1000))
    strom_rows = rows_of([b for seg in strom.segments_snapshot() for _, b in seg.batches()])
    strom.close()

    deadline = time.monotonic() + 90  # Kafka's cleaner wakes every 15 s; nothing to subscribe to
    segments = kafka_segments(apache_kafka_server, topic)
    while not is_compacted(segments) and time.monotonic() < deadline:
        time.sleep(0.5)
        segments = kafka_segments(apache_kafka_server, topic)
    assert is_compacted(segments), "Apache Kafka's cleaner did not compact the topic within 90 s"
    kafka_rows = rows_of([b for seg in segments for b in seg])

    assert strom_rows == kafka_rows
    assert (13, b"user-4", None) in strom_rows  # the tombstone is kept on the first clean by both
    assert [key for _, key, _ in strom_rows].count(b"user-0") == 1
