"""A Partition shared by an appending thread, a reading thread and a maintenance thread (retention,
cleaner, roll flushes) stays consistent: no exception, every read is valid, offsets never go backwards."""

from __future__ import annotations

import itertools
import random
import threading
from pathlib import Path

from strom.log.config import LogConfig
from strom.log.errors import OffsetOutOfRangeError
from strom.log.log_manager import LogManager
from strom.protocol.records import BatchBuilder, iter_batches

BATCHES = 600


def test_append_read_and_maintain_concurrently(tmp_path: Path):
    now = [1_700_000_000_000]
    config = LogConfig(
        cleanup_policy=frozenset({"compact", "delete"}),
        segment_bytes=2_000,
        retention_bytes=20_000,
        min_cleanable_dirty_ratio=0.1,
        file_delete_delay_ms=0,
    )
    logs = LogManager(tmp_path, default_config=config, clock=lambda: now[0])
    part = logs.create("busy", 0)
    done = threading.Event()
    errors: list[BaseException] = []

    def guarded(fn):  # type: ignore[no-untyped-def]
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
                done.set()

        return run

    @guarded
    def writer() -> None:
        for i in range(BATCHES):
            builder = BatchBuilder()
            for j in range(3):
                builder.append(b"key-%d" % ((i * 3 + j) % 40), b"value-%d" % (i * 3 + j), now[0])
            result = part.append(builder.build())
            assert result.base_offset == 3 * i
        done.set()

    @guarded
    def reader() -> None:
        rng = random.Random(7)
        reads = 0
        for _ in range(1_000_000):  # bounded; normally ends soon after the writer
            if done.is_set() and reads >= 50:
                break
            low, high = part.log_start_offset, part.next_offset
            if high == low:
                continue
            offset = rng.randrange(low, high)
            try:
                data = part.read_bytes(offset, 4096)
            except OffsetOutOfRangeError:
                continue  # retention moved the log start between the two calls
            batches = list(iter_batches(data, allow_truncated_tail=True))
            assert batches, f"nothing readable at {offset} in [{low}, {high})"
            for batch in batches:
                batch.validate()
            assert batches[0].last_offset >= offset
            reads += 1

    @guarded
    def maintainer() -> None:
        for rounds in range(100_000):
            if done.is_set() and rounds >= 3:
                break
            logs.maintain(now[0])

    threads = [threading.Thread(target=f) for f in (writer, reader, maintainer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert errors == []
    assert part.next_offset == 3 * BATCHES
    segments = part.segments_snapshot()
    assert all(a.next_offset <= b.base_offset for a, b in itertools.pairwise(segments))
    logs.close()

    again = LogManager(tmp_path, default_config=config, clock=lambda: now[0])
    reopened = again.get("busy", 0)
    assert reopened is not None and reopened.next_offset == 3 * BATCHES
    assert reopened.recovered_segments == 0
    again.close()
