"""Apache Kafka's kafka-dump-log reads segments rewritten by strom's cleaner: merged groups, offset gaps,
emptied producer batches, delete horizons and transaction markers, with indexes that pass its checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tools.kafka import run_kafka_tool

from strom.log.cleaner import Cleaner
from strom.log.config import LogConfig
from strom.log.partition import Partition
from strom.protocol.records import BatchBuilder, Compression, ControlRecordType, build_control_batch

pytestmark = pytest.mark.kafka

T0 = 1_700_000_000_000


def test_kafka_dump_log_reads_cleaned_segments_and_their_indexes(tmp_path: Path) -> None:
    config = LogConfig(
        cleanup_policy=frozenset({"compact"}),
        segment_bytes=8000,
        index_interval_bytes=300,
        file_delete_delay_ms=0,
        delete_retention_ms=60_000,
    )
    part = Partition.open(tmp_path / "cleaned-0", config, clock=lambda: T0)
    codecs = list(Compression)
    for i in range(40):
        builder = BatchBuilder(
            compression=codecs[i % len(codecs)],
            producer_id=42 if i == 3 else -1,
            producer_epoch=0 if i == 3 else -1,
            base_sequence=0 if i == 3 else -1,
        )
        for j in range(4):
            value = None if (i == 39 and j == 0) else b"round-%d-" % i + b"v" * 60
            builder.append(b"key-%d" % ((i * 4 + j) % 24), value, T0 + i)
        part.append(builder.build())
        if i % 4 == 3:
            part.roll()
    txn = BatchBuilder(producer_id=77, producer_epoch=1, base_sequence=0, is_transactional=True)
    txn.append(b"key-1", b"aborted", T0 + 50)
    part.append(txn.build())
    part.append(
        build_control_batch(ControlRecordType.ABORT, producer_id=77, producer_epoch=1, timestamp=T0 + 51)
    )
    part.roll()
    part.append(_one(b"tail", b"active"))
    segments_before = len(part.segments_snapshot())
    result = Cleaner(tmp_path, clock=lambda: T0 + 100).clean(("cleaned", 0), part, T0 + 100)
    assert result is not None and result.segments_after < result.segments_before
    survivors = {
        r.offset: (r.key, r.value)
        for seg in part.segments_snapshot()
        for _, b in seg.batches()
        if not b.is_control
        for r in b.records()
    }
    assert len(part.segments_snapshot()) < segments_before
    part.close()

    directory = tmp_path / "cleaned-0"
    logs = sorted(directory.glob("*.log"))
    dumped = run_kafka_tool(
        "kafka-dump-log", "--deep-iteration", "--print-data-log", "--files", ",".join(map(str, logs))
    )
    bases = {int(p.stem) for p in logs}
    complaints = [
        line
        for line in dumped.stderr.splitlines()
        if line.strip()
        and not line.startswith("Non-consecutive offsets in ")  # compaction leaves gaps by design
        and not line.startswith("  ")  # the gap list under that heading
        and not (line.strip().startswith("-1 is followed by ") and int(line.split()[-1]) in bases)
    ]
    assert complaints == []
    headers = [line for line in dumped.stdout.splitlines() if line.startswith("baseOffset:")]
    assert headers and all("isvalid: true" in line for line in headers)
    assert any("count: 0" in line and "producerId: 42" in line for line in headers)  # emptied, kept
    assert any(f"deleteHorizonMs: OptionalLong[{T0 + 100 + 60_000}]" in line for line in headers)
    assert "endTxnMarker: ABORT" in dumped.stdout
    seen = {}
    for line in dumped.stdout.splitlines():
        match = re.match(r"^\| offset: (\d+) .*? key: (\S+)(?: payload: (\S+))?$", line)
        if match and "endTxnMarker" not in line:
            value = match.group(3).encode() if match.group(3) is not None else None
            seen[int(match.group(1))] = (match.group(2).encode(), value)
    assert seen == survivors

    indexes = sorted(directory.glob("*.index")) + sorted(directory.glob("*.timeindex"))
    files = ",".join(map(str, indexes))
    sanity = run_kafka_tool("kafka-dump-log", "--index-sanity-check", "--files", files)
    checked = sanity.stdout.count("passed sanity check") + sanity.stdout.count(" is empty.")
    assert checked == len(indexes), sanity.stdout
    verify = run_kafka_tool("kafka-dump-log", "--verify-index-only", "--files", files)
    assert verify.stderr.strip() == "", verify.stderr[-2000:]


def _one(key: bytes, value: bytes) -> bytes:
    builder = BatchBuilder()
    builder.append(key, value, T0 + 99)
    return builder.build()
