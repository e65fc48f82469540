"""Model-based test: a Partition behaves like a list of records through random appends, reads, rolls,
restarts (clean and recovering), timestamp lookups, DeleteRecords and time retention."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from strom.log.config import LogConfig
from strom.log.errors import OffsetOutOfRangeError
from strom.log.partition import Partition
from strom.protocol.records import BatchBuilder, Compression, iter_batches
from tests.support.clock import FakeClock

RETENTION_MS = 10_000
CONFIG = LogConfig(
    segment_bytes=1_500, index_interval_bytes=120, retention_ms=RETENTION_MS, file_delete_delay_ms=0
)


class PartitionModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="strom-model-"))
        self.clock = FakeClock(1_000_000)
        self.part = Partition.open(self.tmp / "model-0", CONFIG, clock=self.clock)
        self.records: list[tuple[bytes, int]] = []  # index = offset: (value, timestamp)
        self.log_start = 0

    def teardown(self) -> None:
        self.part.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(
        values=st.lists(st.binary(min_size=0, max_size=120), min_size=1, max_size=6),
        age=st.integers(min_value=0, max_value=20_000),
        spread=st.integers(min_value=-50, max_value=50),
        codec=st.sampled_from([Compression.NONE, Compression.GZIP, Compression.LZ4]),
    )
    def append(self, values: list[bytes], age: int, spread: int, codec: Compression) -> None:
        builder = BatchBuilder(compression=codec)
        stamped = []
        for i, value in enumerate(values):
            ts = self.clock.now - age + i * spread
            builder.append(b"k", value, ts)
            stamped.append((value, ts))
        result = self.part.append(builder.build())
        assert result.base_offset == len(self.records)
        assert result.last_offset == len(self.records) + len(values) - 1
        self.records.extend(stamped)

    @rule(data=st.data(), max_bytes=st.integers(min_value=1, max_value=3000))
    def read(self, data: st.DataObject, max_bytes: int) -> None:
        offset = data.draw(st.integers(min_value=self.log_start, max_value=len(self.records)))
        got = self.part.read_bytes(offset, max_bytes)
        if offset == len(self.records):
            assert got == b""
            return
        batches = list(iter_batches(got, allow_truncated_tail=True))
        assert batches, "min_one: at least the batch holding the offset"
        assert batches[0].base_offset <= offset <= batches[0].last_offset
        expect = offset
        for batch in batches:
            batch.validate()
            for record in batch.records():
                if record.offset < offset:
                    continue
                assert record.offset == expect
                assert (record.value, record.timestamp) == self.records[expect]
                expect += 1

    @rule(data=st.data())
    def read_out_of_range(self, data: st.DataObject) -> None:
        bad = data.draw(
            st.one_of(
                st.integers(min_value=len(self.records) + 1, max_value=len(self.records) + 100),
                st.integers(min_value=-5, max_value=self.log_start - 1)
                if self.log_start > -5
                else st.just(-1),
            )
        )
        try:
            self.part.read(bad, 100)
        except OffsetOutOfRangeError:
            return
        raise AssertionError(f"read at {bad} outside [{self.log_start}, {len(self.records)}] did not fail")

    @rule(target_delta=st.integers(min_value=-25_000, max_value=1_000))
    def offsets_for_timestamp(self, target_delta: int) -> None:
        target = self.clock.now + target_delta
        want = next(
            ((o, ts) for o, (_, ts) in enumerate(self.records) if o >= self.log_start and ts >= target), None
        )
        assert self.part.offsets_for_timestamp(target) == want

    @rule()
    def roll(self) -> None:
        self.part.roll()

    @rule(clean=st.booleans())
    def restart(self, clean: bool) -> None:
        self.part.close()
        self.part = Partition.open(
            self.tmp / "model-0",
            CONFIG,
            clock=self.clock,
            log_start_offset=self.log_start,
            clean_shutdown=clean,
        )
        assert self.part.truncated_bytes == 0

    @rule()
    def crash(self) -> None:
        """Like kill -9: written bytes stay (page cache), nothing else happens — no index write, no
        snapshot, no close. (A roll's background flush may have finished before the crash: let it.)"""
        self.part._wait_for_roll_flushes()
        for seg in self.part.segments_snapshot():
            seg._release_fd()
        self.part = Partition.open(
            self.tmp / "model-0",
            CONFIG,
            clock=self.clock,
            log_start_offset=self.log_start,
            clean_shutdown=False,
        )
        assert self.part.truncated_bytes == 0

    @precondition(lambda self: len(self.records) > 0)
    @rule(data=st.data())
    def delete_records(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(min_value=0, max_value=len(self.records)))
        low = self.part.delete_records_before(offset)
        self.log_start = max(self.log_start, offset)
        assert low == self.log_start

    @rule(advance=st.integers(min_value=0, max_value=15_000))
    def retention(self, advance: int) -> None:
        self.clock.now += advance
        before = self.log_start
        self.part.apply_retention(self.clock.now)
        after = self.part.log_start_offset
        assert after >= before
        for _, ts in self.records[before:after]:
            assert self.clock.now - ts > RETENTION_MS, "retention deleted a record younger than retention.ms"
        first = self.part.segments_snapshot()[0]
        if first is not self.part.active_segment:
            assert self.clock.now - first.max_timestamp <= RETENTION_MS, "an expired segment was kept"
        self.log_start = after

    @invariant()
    def offsets_match(self) -> None:
        assert self.part.next_offset == len(self.records)
        assert self.part.log_start_offset == self.log_start
        segments = self.part.segments_snapshot()
        assert all(a.next_offset <= b.base_offset for a, b in itertools.pairwise(segments))


PartitionModel.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestPartitionModel = PartitionModel.TestCase


COMPACT_CONFIG = LogConfig(
    cleanup_policy=frozenset({"compact"}),
    segment_bytes=800,
    index_interval_bytes=100,
    min_cleanable_dirty_ratio=0.0,
    delete_retention_ms=10**12,
    file_delete_delay_ms=0,
)


class CompactedPartitionModel(RuleBasedStateMachine):
    """A compacted partition against a model of everything appended: after any mix of appends, rolls,
    cleaner passes and restarts, the surviving records are a subset of the model at their original offsets,
    the latest record of every key (tombstones included, their horizon being far away) survives, and
    nothing in the active segment is removed."""

    def __init__(self) -> None:
        super().__init__()
        from strom.log.cleaner import Cleaner

        self.tmp = Path(tempfile.mkdtemp(prefix="strom-cmodel-"))
        self.clock = FakeClock(1_000_000)
        self.part = Partition.open(self.tmp / "table-0", COMPACT_CONFIG, clock=self.clock)
        self.cleaner = Cleaner(self.tmp, clock=self.clock)
        self.model: list[tuple[bytes, bytes | None]] = []

    def teardown(self) -> None:
        self.part.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule(
        rows=st.lists(
            st.tuples(st.sampled_from([b"a", b"b", b"c", b"d", b"e"]), st.none() | st.binary(max_size=60)),
            min_size=1,
            max_size=5,
        ),
        codec=st.sampled_from([Compression.NONE, Compression.ZSTD]),
    )
    def append(self, rows: list[tuple[bytes, bytes | None]], codec: Compression) -> None:
        builder = BatchBuilder(compression=codec)
        for key, value in rows:
            builder.append(key, value, self.clock.now)
        assert self.part.append(builder.build()).base_offset == len(self.model)
        self.model.extend(rows)

    @rule()
    def roll(self) -> None:
        self.part.roll()

    @rule()
    def clean(self) -> None:
        self.clock.now += 1
        self.cleaner.clean(("table", 0), self.part, self.clock.now)

    @rule(clean=st.booleans())
    def restart(self, clean: bool) -> None:
        self.part.close()
        self.part = Partition.open(
            self.tmp / "table-0", COMPACT_CONFIG, clock=self.clock, clean_shutdown=clean
        )
        assert self.part.truncated_bytes == 0

    @invariant()
    def survivors_match_the_model(self) -> None:
        assert self.part.next_offset == len(self.model)
        survivors: list[tuple[int, bytes | None, bytes | None]] = []
        offset = self.part.log_start_offset
        while offset < self.part.next_offset:
            batches = list(iter_batches(self.part.read_bytes(offset, 1 << 20), allow_truncated_tail=True))
            assert batches
            for batch in batches:
                batch.validate()
                survivors += [(r.offset, r.key, r.value) for r in batch.records() if r.offset >= offset]
            offset = batches[-1].next_offset
        offsets = [o for o, _, _ in survivors]
        assert offsets == sorted(set(offsets))
        for o, key, value in survivors:
            assert (key, value) == self.model[o]
        latest = {key: o for o, (key, _) in enumerate(self.model)}
        assert set(latest.values()) <= set(offsets), "the latest record of a key was removed"
        active_base = self.part.active_segment.base_offset
        assert [o for o in offsets if o >= active_base] == list(range(active_base, len(self.model)))


CompactedPartitionModel.TestCase.settings = settings(
    max_examples=15,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestCompactedPartitionModel = CompactedPartitionModel.TestCase
