"""Apache Kafka's own kafka-dump-log (DumpLogSegments) reads strom's segments, indexes and producer snapshots
without complaint and shows the records strom wrote."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tools.kafka import run_kafka_tool

from strom.log.config import LogConfig
from strom.log.partition import Partition
from strom.protocol.records import BatchBuilder, Compression, ControlRecordType, build_control_batch

pytestmark = pytest.mark.kafka

PID = 9001
_BATCH_LINE = re.compile(
    r"^baseOffset: (\d+) lastOffset: (\d+) count: (\d+) baseSequence: (-?\d+) lastSequence: (-?\d+) "
    r"producerId: (-?\d+) producerEpoch: (-?\d+) partitionLeaderEpoch: (-?\d+) isTransactional: (\w+) "
    r"isControl: (\w+) .* isvalid: (\w+)$"
)
_RECORD_LINE = re.compile(
    r"^\| offset: (\d+) (CreateTime|LogAppendTime): (-?\d+) .*?(?: key: (\S*))?(?: payload: (.*))?$"
)


def build_partition(path: Path) -> dict[int, tuple[bytes | None, bytes | None]]:
    """A closed partition with several segments and every kind of batch; returns offset -> (key, value)."""
    part = Partition.open(path, LogConfig(segment_bytes=3000, index_interval_bytes=200))
    expected: dict[int, tuple[bytes | None, bytes | None]] = {}
    codecs = [Compression.NONE, Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD]
    seq = 0
    for i in range(30):
        idempotent = i % 3 == 0
        builder = BatchBuilder(
            compression=codecs[i % len(codecs)],
            producer_id=PID if idempotent else -1,
            producer_epoch=0 if idempotent else -1,
            base_sequence=seq if idempotent else -1,
        )
        rows: list[tuple[bytes | None, bytes | None]] = []
        for j in range(5):
            key = None if j == 4 else b"key-%d-%d" % (i, j)
            value = None if j == 3 else b"value-%d-%d-" % (i, j) + b"z" * 40
            builder.append(
                key, value, 1_700_000_000_000 + i * 10 + j, headers=[("h", b"x")] if j == 0 else []
            )
            rows.append((key, value))
        result = part.append(builder.build(), leader_epoch=i // 10)
        if idempotent:
            seq += 5
        for j, row in enumerate(rows):
            expected[result.base_offset + j] = row
    txn = BatchBuilder(producer_id=77, producer_epoch=1, base_sequence=0, is_transactional=True)
    txn.append(b"txn-key", b"txn-value", 1_700_000_001_000)
    first = part.append(txn.build(), leader_epoch=2).base_offset
    expected[first] = (b"txn-key", b"txn-value")
    abort = build_control_batch(
        ControlRecordType.ABORT, producer_id=77, producer_epoch=1, timestamp=1_700_000_002_000
    )
    part.append(abort, leader_epoch=2)
    part.close()
    return expected


def test_kafka_dump_log_reads_strom_segments_with_the_same_records(tmp_path: Path):
    path = tmp_path / "dump-0"
    expected = build_partition(path)
    logs = sorted(path.glob("*.log"))
    assert len(logs) >= 3
    result = run_kafka_tool(
        "kafka-dump-log", "--deep-iteration", "--print-data-log", "--files", ",".join(map(str, logs))
    )
    # DumpLogSegments compares each file's first offset with the previous file's last (-1 for the first
    # file it dumps): a segment with a non-zero base offset gets a "-1 is followed by <base>" note even for
    # Kafka's own logs. Anything else on stderr is a complaint.
    bases = {int(p.stem) for p in logs}
    complaints = [
        line
        for line in result.stderr.splitlines()
        if line.strip()
        and not line.startswith("Non-consecutive offsets in ")
        and not (line.strip().startswith("-1 is followed by ") and int(line.split()[-1]) in bases)
    ]
    assert complaints == []
    assert "invalid bytes" not in result.stdout

    batches = [
        _BATCH_LINE.match(line) for line in result.stdout.splitlines() if line.startswith("baseOffset:")
    ]
    assert all(m is not None for m in batches)
    assert all(m.group(11) == "true" for m in batches if m)  # isvalid
    control = [m for m in batches if m and m.group(10) == "true"]
    assert len(control) == 1 and control[0].group(6) == "77" and control[0].group(9) == "true"
    idempotent = [m for m in batches if m and m.group(6) == str(PID)]
    assert [int(m.group(4)) for m in idempotent] == list(range(0, 50, 5))
    assert [int(m.group(8)) for m in batches if m][:30:10] == [0, 1, 2]

    seen: dict[int, tuple[bytes | None, bytes | None]] = {}
    for line in result.stdout.splitlines():
        if not line.startswith("| offset:"):
            continue
        m = _RECORD_LINE.match(line)
        assert m is not None, line
        offset = int(m.group(1))
        if "endTxnMarker: ABORT" in line:
            continue
        key = m.group(4).encode() if m.group(4) is not None else None
        value = m.group(5).encode() if m.group(5) is not None else None
        seen[offset] = (key, value)
    assert seen == expected


def test_kafka_dump_log_verifies_strom_indexes_and_reads_snapshots(tmp_path: Path):
    path = tmp_path / "index-0"
    build_partition(path)
    indexes = sorted(path.glob("*.index")) + sorted(path.glob("*.timeindex"))
    snapshots = sorted(path.glob("*.snapshot"))
    txn_indexes = sorted(path.glob("*.txnindex"))
    assert indexes and snapshots and txn_indexes
    files = ",".join(map(str, indexes))

    sanity = run_kafka_tool("kafka-dump-log", "--index-sanity-check", "--files", files)
    assert sanity.stdout.count("passed sanity check") == len(indexes), sanity.stdout
    assert sanity.stderr.strip() == ""

    verify = run_kafka_tool("kafka-dump-log", "--verify-index-only", "--files", files)
    assert "Mismatches" not in verify.stderr and "mismatch" not in verify.stderr.lower()
    assert "not found in the log" not in verify.stderr and "out of order" not in verify.stderr.lower()
    assert verify.stderr.strip() == ""

    dumped = run_kafka_tool(
        "kafka-dump-log", "--files", ",".join(map(str, indexes[:1] + snapshots[-1:] + txn_indexes))
    )
    assert re.search(r"^offset: \d+ position: \d+$", dumped.stdout, re.M)
    assert f"producerId: {PID} producerEpoch: 0" in dumped.stdout
    assert "lastSequence: 49" in dumped.stdout
    assert re.search(r"version: 0 producerId: 77 firstOffset: 150 lastOffset: 151", dumped.stdout)
    assert dumped.stderr.strip() == ""


def test_kafka_dump_log_reads_log_append_time_batches(tmp_path: Path):
    path = tmp_path / "stamped-0"
    now = 1_750_000_000_000
    part = Partition.open(path, LogConfig(message_timestamp_type="LogAppendTime"), clock=lambda: now)
    for codec in (Compression.NONE, Compression.ZSTD):
        builder = BatchBuilder(compression=codec)
        for i in range(3):
            builder.append(b"k%d" % i, b"v%d" % i, 1_000 + i)  # producer timestamps are replaced
        part.append(builder.build())
    part.close()
    (log,) = path.glob("*.log")
    result = run_kafka_tool("kafka-dump-log", "--deep-iteration", "--print-data-log", "--files", str(log))
    assert result.stderr.strip() == ""
    batches = [line for line in result.stdout.splitlines() if line.startswith("baseOffset:")]
    assert len(batches) == 2
    assert all(f"LogAppendTime: {now}" in line and "isvalid: true" in line for line in batches)
    records = [line for line in result.stdout.splitlines() if line.startswith("| offset:")]
    assert [f"LogAppendTime: {now}" in line for line in records] == [True] * 6
