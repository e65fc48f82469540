"""RecordBatch v2 and its codecs against the reference implementation: Apache Kafka's Java code.

One direction: batches built by strom (every codec, large enough for several lz4 and snappy blocks, plus a
compacted batch with a delete horizon and a transaction marker) are decoded by Kafka's own DumpLogSegments.
Other direction: batches written by the Java producer and by librdkafka (confluent-kafka) with every codec
are read back from Apache Kafka's segment files by strom.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from tools.kafka import ApacheKafka, require_kafka, run_kafka_tool

from strom.protocol.records import (
    BatchBuilder,
    Compression,
    ControlRecordType,
    RecordBatch,
    build_control_batch,
    iter_batches,
    rebuild_batch,
)

pytestmark = pytest.mark.kafka

_BIG = 90_000  # over the 64 KiB lz4 block and two 32 KiB xerial snappy blocks


def _value(codec: Compression, i: int) -> bytes:
    return (b"%s-%d|" % (codec.name.encode(), i)) * (_BIG // 12 if i == 0 else 20)


def test_kafka_dump_log_decodes_strom_batches_in_every_codec(tmp_path: Path) -> None:
    require_kafka()
    parts = []
    offset = 0
    for codec in Compression:
        builder = BatchBuilder(
            base_offset=offset, compression=codec, producer_id=3, producer_epoch=0, base_sequence=offset
        )
        for i in range(3):
            value = _value(codec, i) if i < 2 else None
            builder.append(b"key-%s-%d" % (codec.name.encode(), i), value, 1000 + offset + i, [("h", b"x")])
        parts.append(builder.build())
        offset += 3
    # A compacted batch: the middle record removed, the tombstone kept under a delete horizon.
    builder = BatchBuilder(base_offset=offset, compression=Compression.LZ4, producer_id=3, producer_epoch=0)
    for i in range(3):
        builder.append(b"cleaned-%d" % i, None if i == 2 else b"v%d" % i, 5000 + i)
    original = RecordBatch(builder.build())
    data, spans = original.record_spans()
    parts.append(rebuild_batch(original, data, [spans[0], spans[2]], delete_horizon_ms=987654321))
    offset += 3
    parts.append(
        build_control_batch(
            ControlRecordType.ABORT, producer_id=3, producer_epoch=0, timestamp=7, base_offset=offset
        )
    )
    segment = tmp_path / "00000000000000000000.log"
    segment.write_bytes(b"".join(parts))

    out = run_kafka_tool("kafka-dump-log", "--deep-iteration", "--print-data-log", "--files", str(segment))
    text = out.stdout
    assert "isvalid: false" not in text and "Exception" not in out.stderr, out.stderr[-2000:]
    headers = [line for line in text.splitlines() if line.startswith("baseOffset:")]
    assert len(headers) == len(Compression) + 2
    for codec, line in zip(Compression, headers, strict=False):
        assert f"compresscodec: {codec.name.lower()}" in line and "isvalid: true" in line
    for codec in Compression:
        for i in range(2):
            key = f"key-{codec.name}-{i}"
            match = re.search(rf"key: {key} payload: (\S+)", text)
            assert match is not None, f"{key} missing from DumpLogSegments output"
            assert match.group(1).encode() == _value(codec, i)
        assert re.search(rf"valueSize: -1 .*key: key-{codec.name}-2\b", text)
    assert "deleteHorizonMs: OptionalLong[987654321]" in headers[len(Compression)]
    assert "key: cleaned-0 payload: v0" in text and "cleaned-1" not in text
    assert re.search(r"offset: 17 CreateTime: 5002 .*key: cleaned-2$", text, re.MULTILINE)
    assert "endTxnMarker: ABORT" in text


def _segment_batches(kafka: ApacheKafka, topic: str) -> list[RecordBatch]:
    """The batches of the topic's first segment. Kafka appends to the file before it acknowledges, and the
    producers here wait for their acknowledgements, so the file is complete when this runs."""
    segment = kafka.data_dir / f"{topic}-0" / "00000000000000000000.log"
    return list(iter_batches(segment.read_bytes()))


@pytest.mark.parametrize("codec", [c for c in Compression if c is not Compression.NONE])
def test_batches_from_the_java_producer_are_read(
    apache_kafka_server: ApacheKafka, codec: Compression
) -> None:
    topic = f"records-java-{codec.name.lower()}-{time.time_ns()}"
    lines = [f"k{i}\t" + f"java value {i} " * 40 for i in range(200)]
    run_kafka_tool(
        "kafka-console-producer",
        "--bootstrap-server",
        apache_kafka_server.bootstrap_servers,
        "--topic",
        topic,
        "--property",
        "parse.key=true",
        "--compression-codec",
        codec.name.lower(),
        "--producer-property",
        "linger.ms=50",
        input="\n".join(lines) + "\n",
    )
    batches = _segment_batches(apache_kafka_server, topic)
    assert batches and all(b.compression is codec for b in batches)
    for batch in batches:
        batch.validate()
    records = [r for b in batches for r in b.records()]
    assert [(r.key, r.value) for r in records] == [
        (line.split("\t")[0].encode(), line.split("\t")[1].encode()) for line in lines
    ]
    assert [r.offset for r in records] == list(range(len(lines)))


@pytest.mark.parametrize("codec", [c for c in Compression if c is not Compression.NONE])
def test_batches_from_librdkafka_are_read(apache_kafka_server: ApacheKafka, codec: Compression) -> None:
    topic = f"records-rdkafka-{codec.name.lower()}-{time.time_ns()}"
    producer = Producer(
        {
            "bootstrap.servers": apache_kafka_server.bootstrap_servers,
            "compression.type": codec.name.lower(),
            "linger.ms": 20,
        }
    )
    sent = [(b"k%d" % i, b"librdkafka value %d " % i * 50) for i in range(300)]
    for key, value in sent:
        producer.produce(topic, key=key, value=value, headers=[("n", key)])
    assert producer.flush(30) == 0
    batches = _segment_batches(apache_kafka_server, topic)
    assert batches and all(b.compression is codec for b in batches)
    records = [r for b in batches for r in b.records()]
    assert [(r.key, r.value, r.headers) for r in records] == [(k, v, (("n", k),)) for k, v in sent]
