"""Model-based check of compaction: random writes, deletes, rolls, clock jumps, cleans and reopenings.

Invariants after every step: every record in the log is one that was written, at its original offset and in
order; the log end offset never moves back; every key reads its latest write (a tombstone may disappear,
but only after a pass that ran past its delete horizon); the active segment is untouched.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from strom.log.cleaner import Cleaner
from strom.log.config import LogConfig
from strom.log.partition import Partition
from strom.protocol.records import BatchBuilder, Compression

T0 = 1_700_000_000_000
TP = ("model", 0)
KEYS = [b"k%d" % i for i in range(6)]

op = st.one_of(
    st.tuples(
        st.just("put"),
        st.lists(st.tuples(st.sampled_from(KEYS), st.booleans()), min_size=1, max_size=4),
        st.sampled_from([Compression.NONE, Compression.LZ4, Compression.SNAPPY]),
    ),
    st.tuples(st.just("roll")),
    st.tuples(st.just("tick"), st.integers(0, 1_500)),
    st.tuples(st.just("clean")),
    st.tuples(st.just("reopen")),
)


@settings(max_examples=25, deadline=None)
@given(ops=st.lists(op, min_size=1, max_size=40))
def test_compaction_matches_a_model_of_latest_writes(ops: list[tuple]) -> None:
    config = LogConfig(
        cleanup_policy=frozenset({"compact"}),
        segment_bytes=2048,
        file_delete_delay_ms=0,
        delete_retention_ms=1_000,
        min_cleanable_dirty_ratio=0.0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        now = [T0]
        part = Partition.open(data_dir / "model-0", config, clock=lambda: now[0])
        cleaner = Cleaner(data_dir, clock=lambda: now[0])
        written: dict[int, tuple[bytes, bytes | None]] = {}
        latest: dict[bytes, int] = {}
        serial = 0
        try:
            for step in ops:
                kind = step[0]
                if kind == "put":
                    builder = BatchBuilder(compression=step[2])
                    for key, delete in step[1]:
                        serial += 1
                        builder.append(key, None if delete else b"value-%d" % serial, now[0])
                    base = part.append(builder.build()).base_offset
                    for i, (key, delete) in enumerate(step[1]):
                        value = None if delete else b"value-%d" % (serial - len(step[1]) + 1 + i)
                        written[base + i] = (key, value)
                        latest[key] = base + i
                elif kind == "roll":
                    part.roll()
                elif kind == "tick":
                    now[0] += step[1]
                elif kind == "clean":
                    cleaner.maintain({TP: part}, now[0])
                    part.maintain(now[0])
                    check_compacted_head(part, cleaner.first_dirty_offset(TP, part))
                else:
                    part.close()
                    part = Partition.open(data_dir / "model-0", config, clock=lambda: now[0])
                check(part, written, latest)
        finally:
            part.close()


def check(part: Partition, written: dict[int, tuple[bytes, bytes | None]], latest: dict[bytes, int]) -> None:
    rows = []
    segments = part.segments_snapshot()
    for segment in segments:
        for _, batch in segment.batches():
            batch.validate()
            rows.extend((r.offset, r.key, r.value) for r in batch.records())
    offsets = [r[0] for r in rows]
    assert offsets == sorted(set(offsets))
    for offset, key, value in rows:
        assert written[offset] == (key, value)  # only original records, at their original offsets
    assert part.next_offset == (max(written) + 1 if written else 0)
    present = {key: offset for offset, key, _ in rows}
    for key, offset in latest.items():
        if written[offset][1] is not None:
            assert present.get(key) == offset, key  # a live key always reads its latest value
        else:
            assert present.get(key) in (offset, None), key  # a deleted key reads its tombstone or nothing
    active_base = segments[-1].base_offset
    assert [r for r in rows if r[0] >= active_base] == [
        (o, *written[o]) for o in sorted(written) if o >= active_base
    ]  # the active segment is never cleaned


def check_compacted_head(part: Partition, first_dirty: int) -> None:
    """Below the first dirty offset each key has at most one record: the pass removed every older one."""
    keys = [
        r.key
        for segment in part.segments_snapshot()[:-1]
        for _, batch in segment.batches()
        for r in batch.records()
        if r.offset < first_dirty
    ]
    assert len(keys) == len(set(keys))
