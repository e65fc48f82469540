"""A tour of strom's storage engine (`.venv/bin/python examples/log_tour.py`): a Kafka-format log on disk.

It appends batches to a topic-partition, reads them back by offset and by timestamp, shows an idempotent
producer's retry being recognised, compacts a table topic, cuts a torn write off after a simulated crash,
and applies time retention with a controllable clock. The data lives under ./strom-data/log-tour (recreated on
each run), in the same layout Apache Kafka uses, so `kafka-dump-log --files <segment>` can read it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from strom.log import LogConfig, LogManager
from strom.log.log_manager import INITIAL_TASK_DELAY_MS
from strom.log.partition import Partition
from strom.protocol.records import BatchBuilder, Compression, iter_batches

DATA = Path(__file__).resolve().parent.parent / "strom-data" / "log-tour"


class Clock:
    """A wall clock the demo can move forward (the log never reads time any other way)."""

    def __init__(self) -> None:
        self.now = 1_767_225_600_000  # 2026-01-01T00:00:00Z

    def __call__(self) -> int:
        return self.now


def orders_batch(first: int, count: int, ts: int, **producer: int) -> bytes:
    builder = BatchBuilder(compression=Compression.GZIP, **producer)  # type: ignore[arg-type]
    for n in range(first, first + count):
        builder.append(
            b"order-%d" % n,
            b'{"order": %d, "amount": %d, "note": "%s"}' % (n, 10 * n, os.urandom(40).hex().encode()),
            ts + n,
        )
    return builder.build()


def read_all(part: Partition) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every record from the log start to the end, one Fetch-sized read at a time."""
    out = []
    offset = part.log_start_offset
    while offset < part.next_offset:
        batches = list(iter_batches(part.read_bytes(offset, 64 * 1024), allow_truncated_tail=True))
        out += [(r.offset, r.key, r.value) for b in batches for r in b.records() if r.offset >= offset]
        offset = batches[-1].next_offset
    return out


def section(title: str) -> None:
    print(f"\n== {title}")


def main() -> None:
    shutil.rmtree(DATA, ignore_errors=True)
    clock = Clock()
    config = LogConfig(segment_bytes=2048, index_interval_bytes=512, retention_ms=3_600_000)
    logs = LogManager(DATA, default_config=config, clock=clock)

    section("append batches (gzip-compressed, 10 orders each, two hours old) to orders-0")
    orders = logs.create("orders", 0)
    for i in range(12):
        result = orders.append(orders_batch(10 * i, 10, clock.now - 7_200_000 + 1000 * i))
        if i < 3 or i == 11:
            print(f"  batch {i:2d} -> offsets {result.base_offset}..{result.last_offset}")
    segments = orders.segments_snapshot()
    print(
        f"  {orders.next_offset} records in {len(segments)} segments: {[s.log_path.name for s in segments]}"
    )

    section("read by offset: a Fetch at offset 57 starts at the batch holding it")
    data = orders.read(57, 300)
    first = next(iter_batches(data.read(), allow_truncated_tail=True))
    print(
        f"  slice of {data.segment.log_path.name if data.segment else '-'}: position {data.position}, "
        f"{data.size} bytes; first batch holds offsets {first.base_offset}..{first.last_offset}"
    )

    section("look up by timestamp (ListOffsets)")
    target = clock.now - 7_200_000 + 5_000 + 55
    offset, ts = orders.offsets_for_timestamp(target) or (-1, -1)
    print(f"  first record at or after {target}: offset {offset} (timestamp {ts})")

    section("idempotent producer: a retried batch is recognised, not written twice")
    producer = {"producer_id": 1000, "producer_epoch": 0}
    sent = orders.append(orders_batch(500, 5, clock.now, base_sequence=0, **producer))
    retry = orders.append(orders_batch(500, 5, clock.now, base_sequence=0, **producer))
    print(
        f"  first send -> {sent.base_offset}..{sent.last_offset}; retry -> {retry.base_offset}.."
        f"{retry.last_offset} duplicate={retry.duplicate}; log end still {orders.next_offset}"
    )

    section("retention: segments whose newest record is older than retention.ms=1h are deleted")
    before_segments = len(orders.segments_snapshot())
    clock.now += INITIAL_TASK_DELAY_MS  # like Kafka, the first retention check comes 30 s after opening
    logs.maintain(clock.now)
    print(
        f"  segments {before_segments} -> {len(orders.segments_snapshot())}; log start offset now "
        f"{orders.log_start_offset}, log end {orders.next_offset}"
    )

    section("compaction: a table topic keeps the latest value per key")
    table = logs.create("prices", 0, LogConfig(cleanup_policy=frozenset({"compact"}), segment_bytes=2048))
    for version in range(30):
        builder = BatchBuilder()
        for item in ("apple", "pear", "plum"):
            builder.append(item.encode(), b"%s v%d" % (item.encode(), version), clock.now)
        table.append(builder.build())
    table.roll()
    before = table.size_in_bytes
    clock.now += logs.cleaner_backoff_ms  # the cleaner found nothing last time, so it backed off
    logs.maintain(clock.now)
    latest = {k: v for _, k, v in read_all(table)}
    print(f"  {before} bytes -> {table.size_in_bytes} bytes; latest values: {latest}")

    section("crash: a torn write at the tail is cut off on restart")
    tail = orders.active_segment.log_path
    end_before = orders.next_offset
    logs.close()
    # Simulate a crash in the middle of a write: half a batch at the end of the active segment, and no
    # clean-shutdown marker (a crashed broker never writes it).
    with open(tail, "ab") as f:
        f.write(orders_batch(999, 10, clock.now)[:150])
    (DATA / ".kafka_cleanshutdown").unlink()
    logs = LogManager(DATA, default_config=config, clock=clock)
    orders = logs.get("orders", 0)
    assert orders is not None
    print(
        f"  recovered {orders.recovered_segments} segment(s), cut {orders.truncated_bytes} torn bytes; "
        f"log end {orders.next_offset} (was {end_before})"
    )

    logs.close()
    print(f"\nfiles of orders-0 in {DATA / 'orders-0'}:")
    for name in sorted(os.listdir(DATA / "orders-0")):
        print(f"  {name}")


if __name__ == "__main__":
    main()
