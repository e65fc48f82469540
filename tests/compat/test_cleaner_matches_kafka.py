"""strom's cleaner keeps exactly the records Apache Kafka's own log cleaner keeps.

The same records (keys overwritten across segments, a tombstone, keys written once) go to Apache Kafka and
to a strom partition, with record timestamps that make both roll segments at the same offsets
(`segment.ms`, driven by record timestamps in both). Kafka's cleaner thread compacts its copy on its own
schedule (`log.cleaner.backoff.ms`, 15 s); strom's is run directly. The surviving (offset, key, value)
records read from both sets of segment files must be the same, and so must the batches that hold them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from tools.kafka import ApacheKafka

from strom.log.cleaner import Cleaner
from strom.log.config import LogConfig
from strom.log.partition import Partition
from strom.protocol.records import (
    BatchBuilder,
    ControlRecordType,
    RecordBatch,
    build_control_batch,
    iter_batches,
)

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
IDEMPOTENT_ROWS = 10
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


def shape(batch: RecordBatch) -> tuple[int, ...]:
    """What identifies a batch after cleaning; the base timestamp only without a delete horizon (the
    horizon is the cleaning time plus delete.retention.ms, and the two cleaners ran at different times)."""
    base_timestamp = batch.base_timestamp if batch.delete_horizon_ms is None else 0
    return (
        batch.base_offset,
        batch.last_offset,
        batch.record_count,
        batch.base_sequence,
        batch.producer_epoch,
        batch.attributes,
        base_timestamp,
        batch.max_timestamp,
    )


def kafka_segments(kafka: ApacheKafka, topic: str) -> list[list[RecordBatch]]:
    directory = kafka.data_dir / f"{topic}-0"
    return [list(iter_batches(path.read_bytes())) for path in sorted(directory.glob("*.log"))]


def is_compacted(segments: list[list[RecordBatch]]) -> bool:
    """Kafka's cleaner has run over every inactive segment: no key appears twice there."""
    keys = [key for _, key, _ in rows_of([b for seg in segments[:-1] for b in seg])]
    return len(segments) > 1 and len(keys) == len(set(keys))


def kafka_compacted_batches(kafka: ApacheKafka, topic: str) -> list[RecordBatch]:
    """The batches of the topic's partition 0 once Kafka's cleaner compacted it; fails after 90 s."""
    deadline = time.monotonic() + 90  # Kafka's cleaner wakes every 15 s; nothing to subscribe to
    segments = kafka_segments(kafka, topic)
    while not is_compacted(segments) and time.monotonic() < deadline:
        time.sleep(0.5)
        segments = kafka_segments(kafka, topic)
    assert is_compacted(segments), "Apache Kafka's cleaner did not compact the topic within 90 s"
    return [b for seg in segments for b in seg]


def test_strom_cleaner_keeps_what_kafkas_cleaner_keeps(
    apache_kafka_server: ApacheKafka, tmp_path: Path
) -> None:
    topic = f"compare-compaction-{time.time_ns()}"
    admin = AdminClient({"bootstrap.servers": apache_kafka_server.bootstrap_servers})
    for future in admin.create_topics([NewTopic(topic, 1, 1, config=TOPIC_CONFIG)]).values():
        future.result(30)
    # The first IDEMPOTENT_ROWS records come from an idempotent producer whose every record is overwritten
    # later by a plain producer: its last batch must survive emptied, keeping its sequence number.
    settings = {"bootstrap.servers": apache_kafka_server.bootstrap_servers, "linger.ms": 0}
    idempotent = Producer({**settings, "enable.idempotence": True})
    plain = Producer(settings)
    for n, (key, value, timestamp) in enumerate(ROWS):
        producer = idempotent if n < IDEMPOTENT_ROWS else plain
        producer.produce(topic, key=key, value=value, timestamp=timestamp)
        assert producer.flush(30) == 0  # one batch per record, in order

    strom = Partition.open(
        tmp_path / "compare-0",
        LogConfig.from_properties({**TOPIC_CONFIG, "file.delete.delay.ms": "0"}),
        clock=lambda: BASE + 7 * SEGMENT_MS,
    )
    for n, (key, value, timestamp) in enumerate(ROWS):
        pid, epoch, sequence = (1000, 0, n) if n < IDEMPOTENT_ROWS else (-1, -1, -1)
        builder = BatchBuilder(producer_id=pid, producer_epoch=epoch, base_sequence=sequence)
        builder.append(key, value, timestamp)
        strom.append(builder.build())
    Cleaner(tmp_path).clean(("compare", 0), strom, int(time.time() * 1000))
    strom_batches = [b for seg in strom.segments_snapshot() for _, b in seg.batches()]
    strom_rows = rows_of(strom_batches)
    strom.close()

    kafka_batches = kafka_compacted_batches(apache_kafka_server, topic)
    kafka_rows = rows_of(kafka_batches)

    assert strom_rows == kafka_rows
    # The same batches survive, emptied ones included (an idempotent producer's last batch keeps its
    # sequence number): compare their offsets, record counts and sequences.
    assert [shape(b) for b in strom_batches] == [shape(b) for b in kafka_batches]
    assert (13, b"user-4", None) in strom_rows  # the tombstone is kept on the first clean by both
    assert [key for _, key, _ in strom_rows].count(b"user-0") == 1
    assert (9, 9, 0, 9) in [shape(b)[:4] for b in strom_batches]  # the idempotent producer's emptied batch


def txn_shape(batch: RecordBatch) -> tuple[object, ...]:
    """Batch identity without timestamps (transaction markers carry the coordinator's wall-clock time)."""
    return (
        batch.base_offset,
        batch.last_offset,
        batch.record_count,
        batch.base_sequence,
        batch.is_transactional,
        batch.is_control,
        batch.delete_horizon_ms is not None,
        [(r.key, r.value) for r in batch.records()] if not batch.is_control else None,
    )


def test_transactions_are_cleaned_as_kafka_cleans_them(
    apache_kafka_server: ApacheKafka, tmp_path: Path
) -> None:
    """An aborted transaction's record goes while its ABORT marker stays; a committed transaction whose
    record is overwritten keeps an empty batch (its producer's last) and its COMMIT marker."""
    minute = 60_000
    now = int(time.time() * 1000)  # the markers carry the coordinator's clock: stay near it
    topic = f"compare-txn-{time.time_ns()}"
    config = {**TOPIC_CONFIG, "segment.ms": str(5 * minute)}
    admin = AdminClient({"bootstrap.servers": apache_kafka_server.bootstrap_servers})
    for future in admin.create_topics([NewTopic(topic, 1, 1, config=config)]).values():
        future.result(30)
    settings = {"bootstrap.servers": apache_kafka_server.bootstrap_servers, "linger.ms": 0}
    txn = Producer({**settings, "transactional.id": f"compare-{time.time_ns()}"})
    txn.init_transactions(30)
    txn.begin_transaction()
    txn.produce(topic, key=b"x", value=b"aborted", timestamp=now)
    txn.flush(30)
    txn.abort_transaction(30)
    txn.begin_transaction()
    txn.produce(topic, key=b"y", value=b"committed", timestamp=now)
    txn.flush(30)
    txn.commit_transaction(30)
    plain = Producer(settings)
    later = [
        (b"y", b"overwritten", now + 10 * minute),
        (b"z", b"z", now + 10 * minute),
        (b"t", b"t", now + 20 * minute),
    ]
    for key, value, timestamp in later:
        plain.produce(topic, key=key, value=value, timestamp=timestamp)
        assert plain.flush(30) == 0

    strom = Partition.open(
        tmp_path / "txn-0",
        LogConfig.from_properties({**config, "file.delete.delay.ms": "0"}),
        clock=lambda: now,
    )
    for sequence, (key, value, kind) in enumerate(
        [(b"x", b"aborted", ControlRecordType.ABORT), (b"y", b"committed", ControlRecordType.COMMIT)]
    ):
        builder = BatchBuilder(
            producer_id=3000, producer_epoch=0, base_sequence=sequence, is_transactional=True
        )
        builder.append(key, value, now)
        strom.append(builder.build())
        strom.append(build_control_batch(kind, producer_id=3000, producer_epoch=0, timestamp=now))
    for key, value, timestamp in later:
        builder = BatchBuilder()
        builder.append(key, value, timestamp)
        strom.append(builder.build())
    Cleaner(tmp_path).clean(("txn", 0), strom, now)
    strom_batches = [b for seg in strom.segments_snapshot() for _, b in seg.batches()]
    strom.close()

    kafka_batches = kafka_compacted_batches(apache_kafka_server, topic)

    assert [txn_shape(b) for b in strom_batches] == [txn_shape(b) for b in kafka_batches]
    assert [txn_shape(b)[:3] for b in strom_batches if b.producer_id == 3000] == [
        (1, 1, 1),  # the ABORT marker
        (2, 2, 0),  # the committed batch, emptied: its producer's last
        (3, 3, 1),  # the COMMIT marker
    ]
