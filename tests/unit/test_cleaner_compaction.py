"""Log compaction on real partition logs: what survives, what goes, and when (the clock is injected)."""

from __future__ import annotations

import itertools
from pathlib import Path

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
from tests.support.clock import FakeClock

T0 = 1_700_000_000_000
TP = ("compacted", 0)


def compact_config(**overrides: object) -> LogConfig:
    settings: dict[str, object] = {
        "cleanup_policy": frozenset({"compact"}),
        "file_delete_delay_ms": 0,
        "delete_retention_ms": 10_000,
    }
    settings.update(overrides)
    return LogConfig(**settings)  # type: ignore[arg-type]


def open_log(tmp_path: Path, clock: FakeClock, **overrides: object) -> Partition:
    return Partition.open(tmp_path / "compacted-0", compact_config(**overrides), clock=clock)


def put(
    part: Partition,
    pairs: list[tuple[bytes, bytes | None]],
    ts: int,
    *,
    pid: int = -1,
    epoch: int = -1,
    seq: int = -1,
    txn: bool = False,
) -> None:
    builder = BatchBuilder(producer_id=pid, producer_epoch=epoch, base_sequence=seq, is_transactional=txn)
    for key, value in pairs:
        builder.append(key, value, ts)
    part.append(builder.build())


def batches(part: Partition) -> list[RecordBatch]:
    return [b for seg in part.segments_snapshot() for _, b in seg.batches()]


def contents(part: Partition) -> list[tuple[int, bytes | None, bytes | None]]:
    return [(r.offset, r.key, r.value) for b in batches(part) if not b.is_control for r in b.records()]


def latest_per_key(
    rows: list[tuple[int, bytes | None, bytes | None]],
) -> dict[bytes | None, tuple[int, bytes | None]]:
    return {key: (offset, value) for offset, key, value in rows}


def test_compaction_keeps_latest_value_per_key_with_offsets_and_order(tmp_path: Path) -> None:
    clock = FakeClock()
    part = open_log(tmp_path, clock)
    for round_ in range(5):
        for batch_no in range(4):
            put(part, [(b"k%d" % i, b"v%d-%d" % (round_, i)) for i in range(batch_no, 10, 4)], T0)
        part.roll()
    put(part, [(b"k0", b"in-active-segment")], T0)
    before = contents(part)
    result = Cleaner(tmp_path, clock=clock).clean(TP, part, T0)
    assert result is not None and result.end_offset == part.active_segment.base_offset
    after = contents(part)
    cleaned = [row for row in after if row[0] < part.active_segment.base_offset]
    assert {key: value for _, key, value in cleaned} == {b"k%d" % i: b"v4-%d" % i for i in range(10)}
    assert len(cleaned) == 10  # exactly one record per key left in the cleaned part
    assert [row[0] for row in after] == sorted(row[0] for row in after)
    assert set(after) <= set(before)  # every survivor is an original record at its original offset
    assert after[-1] == (part.next_offset - 1, b"k0", b"in-active-segment")
    assert part.next_offset == before[-1][0] + 1
    for batch in batches(part):
        batch.validate()
    part.close()


def test_active_segment_is_never_cleaned(tmp_path: Path) -> None:
    clock = FakeClock()
    part = open_log(tmp_path, clock)
    for i in range(20):
        put(part, [(b"same", b"value-%d" % i)], T0)
    before = contents(part)
    assert Cleaner(tmp_path, clock=clock).clean(TP, part, T0) is None
    assert contents(part) == before
    part.close()


def test_small_segments_are_merged_into_groups(tmp_path: Path) -> None:
    clock = FakeClock()
    part = open_log(tmp_path, clock, segment_bytes=4096)
    for i in range(60):
        put(part, [(b"k%d" % (i % 7), b"x" * 100)], T0)
        part.roll()
    segments_before = len(part.segments_snapshot())
    result = Cleaner(tmp_path, clock=clock).clean(TP, part, T0)
    assert result is not None
    segments = part.segments_snapshot()
    assert len(segments) < segments_before / 4
    assert all(s.size <= 4096 for s in segments)
    assert {key for _, key, _ in contents(part)} == {b"k%d" % i for i in range(7)}
    bases = [s.base_offset for s in segments]
    assert bases == sorted(bases) and bases[0] == 0
    for earlier, later in itertools.pairwise(segments):
        assert earlier.next_offset == later.base_offset  # offsets stay contiguous across segments
    part.close()


def test_tombstone_lifecycle_follows_the_delete_horizon(tmp_path: Path) -> None:
    clock = FakeClock()
    part = open_log(tmp_path, clock, delete_retention_ms=10_000)
    put(part, [(b"gone", b"old value"), (b"kept", b"kept value")], T0)
    put(part, [(b"gone", None)], T0)
    part.roll()
    put(part, [(b"other", b"x")], T0)
    cleaner = Cleaner(tmp_path, clock=clock)

    cleaner.clean(TP, part, T0 + 5)
    rows = contents(part)
    assert (2, b"gone", None) in rows  # the tombstone survives its first clean...
    assert b"old value" not in [v for _, _, v in rows]  # ...the value it deletes does not
    stamped = [b for b in batches(part) if any(r.value is None for r in b.records())]
    assert [b.delete_horizon_ms for b in stamped] == [T0 + 5 + 10_000]
    assert [r.timestamp for b in stamped for r in b.records()] == [T0]  # record timestamps unchanged

    cleaner.clean(TP, part, T0 + 5 + 9_999)
    assert (2, b"gone", None) in contents(part)  # horizon not reached yet

    results = cleaner.maintain({TP: part}, T0 + 5 + 10_000)  # the passed horizon forces a pass
    assert len(results) == 1
    rows = contents(part)
    assert all(key != b"gone" for _, key, _ in rows)
    assert (1, b"kept", b"kept value") in rows
    part.close()


def test_deleted_value_bytes_are_gone_from_disk_after_the_horizon(tmp_path: Path) -> None:
    clock = FakeClock()
    part = open_log(tmp_path, clock, delete_retention_ms=1_000)
    secret_key = b"user-4711-email"
    secret = b"alice.secret@example.org-PII-0123456789"
    put(part, [(b"a", b"public"), (secret_key, secret), (b"b", b"public")], T0)
    for i in range(5):
        put(part, [(b"filler-%d" % i, b"y" * 50)], T0)
    put(part, [(secret_key, None)], T0 + 1)
    part.roll()
    put(part, [(b"c", b"active")], T0 + 2)
    cleaner = Cleaner(tmp_path, clock=clock)

    clock.now = T0 + 10
    cleaner.clean(TP, part, clock.now)
    part.maintain(clock.now)
    clock.now = T0 + 10 + 1_001
    cleaner.maintain({TP: part}, clock.now)
    part.maintain(clock.now)
    part.close()

    for path in (tmp_path / "compacted-0").rglob("*"):
        data = path.read_bytes()
        assert secret not in data, f"deleted value still in {path.name}"
        assert secret_key not in data, f"deleted key still in {path.name}"
    reopened = open_log(tmp_path, clock, delete_retention_ms=1_000)
    assert {key for _, key, _ in contents(reopened)} == {b"a", b"b", b"c"} | {
        b"filler-%d" % i for i in range(5)
    }
    reopened.close()


def test_min_compaction_lag_protects_young_segments(tmp_path: Path) -> None:
    clock = FakeClock()
    part = open_log(tmp_path, clock, min_compaction_lag_ms=60_000)
    put(part, [(b"k", b"old")], T0)
    part.roll()
    put(part, [(b"k", b"young")], T0 + 50_000)
    part.roll()
    put(part, [(b"k", b"active")], T0 + 50_000)
    cleaner = Cleaner(tmp_path, clock=clock)
    result = cleaner.clean(TP, part, T0 + 70_000)  # first segment is 70 s old, second only 20 s
    assert result is not None and result.end_offset == 1
    assert [v for _, _, v in contents(part)] == [b"old", b"young", b"active"]
    result = cleaner.clean(TP, part, T0 + 111_000)
    assert result is not None and result.end_offset == 2
    assert [v for _, _, v in contents(part)] == [b"young", b"active"]
    part.close()


def test_dirty_ratio_gates_cleaning_and_the_checkpoint_advances(tmp_path: Path) -> None:
    clock = FakeClock()
    part = open_log(tmp_path, clock, min_cleanable_dirty_ratio=0.5)
    for i in range(10):
        put(part, [(b"k%d" % i, b"v" * 100)], T0)
    part.roll()
    put(part, [(b"z", b"active")], T0)
    cleaner = Cleaner(tmp_path, clock=clock)
    assert cleaner.dirty_ratio(TP, part, T0) == 1.0
    assert len(cleaner.maintain({TP: part}, T0)) == 1
    assert cleaner.first_dirty_offset(TP, part) == 10
    assert cleaner.dirty_ratio(TP, part, T0) == 0.0
    # A little new dirty data (below the ratio) does not trigger a pass...
    put(part, [(b"k0", b"v" * 100)], T0)
    part.roll()
    assert 0 < cleaner.dirty_ratio(TP, part, T0) < 0.5
    assert cleaner.maintain({TP: part}, T0) == []
    # ...and the checkpoint survives a new Cleaner (it is a file in the data dir).
    assert Cleaner(tmp_path, clock=clock).first_dirty_offset(TP, part) == 10
    part.close()


def test_max_compaction_lag_forces_cleaning_below_the_ratio(tmp_path: Path) -> None:
    clock = FakeClock()
    part = open_log(tmp_path, clock, min_cleanable_dirty_ratio=0.9, max_compaction_lag_ms=60_000)
    for i in range(10):
        put(part, [(b"k%d" % i, b"v" * 100)], T0)
    part.roll()
    cleaner = Cleaner(tmp_path, clock=clock)
    cleaner.clean(TP, part, T0)
    put(part, [(b"k0", None)], T0 + 1_000)
    part.roll()
    put(part, [(b"z", b"active")], T0 + 1_000)
    assert cleaner.dirty_ratio(TP, part, T0 + 2_000) < 0.9
    assert cleaner.maintain({TP: part}, T0 + 2_000) == []
    assert len(cleaner.maintain({TP: part}, T0 + 1_000 + 60_001)) == 1
    assert (0, b"k0", b"v" * 100) not in contents(part)
    part.close()


def test_last_batch_of_each_producer_is_kept_as_an_empty_batch(tmp_path: Path) -> None:
    clock = FakeClock()
    part = open_log(tmp_path, clock)
    put(part, [(b"k", b"from-producer-9")], T0, pid=9, epoch=2, seq=0)
    put(part, [(b"k", b"from-producer-9-again")], T0, pid=9, epoch=2, seq=1)
    put(part, [(b"k", b"plain-later")], T0)
    put(part, [(b"other", b"x")], T0)
    part.roll()
    Cleaner(tmp_path, clock=clock).clean(TP, part, T0)
    remaining = batches(part)
    producer_batches = [b for b in remaining if b.producer_id == 9]
    assert len(producer_batches) == 1  # the first of its batches went, the last one stayed
    (last,) = producer_batches
    assert (last.record_count, last.base_offset, last.base_sequence, last.producer_epoch) == (0, 1, 1, 2)
    assert [v for _, _, v in contents(part)] == [b"plain-later", b"x"]
    part.close()
    reopened = open_log(tmp_path, clock)
    assert reopened.producer_last_offsets().get(9) == 1  # idempotence state survives the compaction
    reopened.close()


def test_aborted_transaction_data_is_removed_and_markers_stay_while_their_batches_remain(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    part = open_log(tmp_path, clock, delete_retention_ms=1_000)
    put(part, [(b"k", b"committed-before")], T0)
    put(part, [(b"k", b"aborted-value"), (b"t", b"aborted-too")], T0, pid=5, epoch=0, seq=0, txn=True)
    part.append(build_control_batch(ControlRecordType.ABORT, producer_id=5, producer_epoch=0, timestamp=T0))
    put(part, [(b"u", b"committed-in-txn")], T0, pid=6, epoch=0, seq=0, txn=True)
    part.append(build_control_batch(ControlRecordType.COMMIT, producer_id=6, producer_epoch=0, timestamp=T0))
    put(part, [(b"u", b"overwritten")], T0)
    part.roll()
    put(part, [(b"z", b"active")], T0)
    cleaner = Cleaner(tmp_path, clock=clock)
    cleaner.clean(TP, part, T0)
    rows = contents(part)
    assert (0, b"k", b"committed-before") in rows  # the aborted write does not shadow it
    assert all(v not in (b"aborted-value", b"aborted-too", b"committed-in-txn") for _, _, v in rows)
    markers = [b for b in batches(part) if b.is_control]
    assert [b.producer_id for b in markers] == [5, 6]  # this pass read their transactions: kept
    assert all(b.delete_horizon_ms is None for b in markers)  # as Kafka: not yet discardable
    part.close()


def test_corrupt_segment_marks_partition_uncleanable_without_touching_it(tmp_path: Path) -> None:
    clock = FakeClock()
    part = open_log(tmp_path, clock)
    for i in range(5):
        put(part, [(b"k", b"value-%d" % i)], T0)
    part.roll()
    segment = part.segments_snapshot()[0]
    with open(segment.log_path, "r+b") as f:
        f.seek(segment.size - 3)
        f.write(b"\xff\xff\xff")  # a record body damaged after it was written (bit rot)
    before = segment.log_path.read_bytes()
    cleaner = Cleaner(tmp_path, clock=clock)
    assert cleaner.maintain({TP: part}, T0) == []
    assert TP in cleaner.uncleanable
    assert segment.log_path.read_bytes() == before
    part.close()


class DeleteRecordsDuringSwap:
    """A partition on which DeleteRecords lands between the cleaner's copy and its swap."""

    def __init__(self, part: Partition, offset: int) -> None:
        self.part = part
        self.offset = offset

    def __getattr__(self, name: str) -> object:
        return getattr(self.part, name)

    def replace_segments(self, new: list, old: list) -> bool:
        self.part.delete_records_before(self.offset)
        return self.part.replace_segments(new, old)


def test_pass_aborts_cleanly_when_segments_change_under_it(tmp_path: Path) -> None:
    clock = FakeClock()
    part = open_log(tmp_path, clock)
    for i in range(3):
        put(part, [(b"k", b"v%d" % i)], T0)
        part.roll()
    put(part, [(b"k", b"active")], T0)
    cleaner = Cleaner(tmp_path, clock=clock)
    racing = DeleteRecordsDuringSwap(part, 2)
    assert cleaner.clean(TP, racing, T0) is None  # type: ignore[arg-type]
    assert cleaner.first_dirty_offset(TP, part) == part.log_start_offset == 2  # nothing checkpointed
    assert not [p for p in part.dir.iterdir() if ".cleaned" in p.name or ".swap" in p.name]
    assert [v for o, _, v in contents(part) if o >= 2] == [b"v2", b"active"]
    result = cleaner.clean(TP, part, T0)  # the next pass succeeds
    assert result is not None and cleaner.first_dirty_offset(TP, part) == 3
    part.close()


def test_a_partition_closed_under_the_cleaner_does_not_stop_the_others(tmp_path: Path) -> None:
    clock = FakeClock()
    logs = {}
    for n in range(2):
        part = Partition.open(
            tmp_path / f"compacted-{n}", compact_config(max_compaction_lag_ms=1_000), clock=clock
        )
        for i in range(4):
            put(part, [(b"k", b"v%d" % i)], T0)
        part.roll()
        logs[("compacted", n)] = part
    logs[("compacted", 0)].close()
    cleaner = Cleaner(tmp_path, clock=clock)
    results = cleaner.maintain(logs, T0 + 5_000)  # both are overdue: both are tried
    assert [r.records_kept for r in results] == [1]
    assert [v for _, _, v in contents(logs[("compacted", 1)])] == [b"v3"]
    assert ("compacted", 0) not in cleaner.uncleanable
    logs[("compacted", 1)].close()


def test_a_marker_whose_transaction_is_gone_expires_after_its_horizon(tmp_path: Path) -> None:
    clock = FakeClock()
    part = open_log(tmp_path, clock, delete_retention_ms=1_000)
    put(part, [(b"a", b"in txn A")], T0, pid=5, epoch=0, seq=0, txn=True)
    part.append(build_control_batch(ControlRecordType.COMMIT, producer_id=5, producer_epoch=0, timestamp=T0))
    put(part, [(b"b", b"in txn B")], T0, pid=5, epoch=0, seq=1, txn=True)
    part.append(build_control_batch(ControlRecordType.COMMIT, producer_id=5, producer_epoch=0, timestamp=T0))
    put(part, [(b"a", b"overwrites txn A")], T0)
    part.roll()
    cleaner = Cleaner(tmp_path, clock=clock)

    def markers() -> list[tuple[int, int | None]]:
        return [(b.base_offset, b.delete_horizon_ms) for b in batches(part) if b.is_control]

    cleaner.clean(TP, part, T0)  # txn A's batch goes, but this pass read it: its marker stays as is
    assert markers() == [(1, None), (3, None)]
    cleaner.clean(TP, part, T0 + 10)  # nothing of txn A is left: its marker gets a horizon
    assert markers() == [(1, T0 + 10 + 1_000), (3, None)]
    cleaner.clean(TP, part, T0 + 10 + 999)
    assert markers() == [(1, T0 + 10 + 1_000), (3, None)]
    assert len(cleaner.maintain({TP: part}, T0 + 10 + 1_000)) == 1  # the passed horizon forces a pass
    assert markers() == [(3, None)]  # txn B still has its record, so its marker stays
    part.close()


def test_a_compacted_log_with_gaps_between_batches_reads_whole_after_a_clean_restart(tmp_path: Path) -> None:
    # Reads check a trusted segment's batch headers for offsets out of order (damage outside the CRC);
    # the gaps compaction leaves between batches must not look like damage.
    clock = FakeClock()
    part = open_log(tmp_path, clock)
    for round_ in range(3):
        for batch_no in range(4):
            put(part, [(b"k%d" % batch_no, b"v%d" % round_)], T0)
        put(part, [(b"only-once-%d" % round_, b"v")], T0)
        part.roll()
    put(part, [(b"k0", b"active")], T0)
    assert Cleaner(tmp_path, clock=clock).clean(TP, part, T0) is not None
    expected = contents(part)
    assert [offset for offset, _, _ in expected] != list(range(len(expected)))  # there are gaps
    part.close()
    again = Partition.open(tmp_path / "compacted-0", compact_config(), clock=clock, clean_shutdown=True)
    served, offset = [], 0
    while offset < again.next_offset:
        got = [
            (r.offset, r.key, r.value)
            for b in iter_batches(again.read_bytes(offset, 100), allow_truncated_tail=True)
            for r in b.records()
        ]
        served.extend(row for row in got if row[0] >= offset)
        offset = max(offset + 1, served[-1][0] + 1)
    assert served == expected
