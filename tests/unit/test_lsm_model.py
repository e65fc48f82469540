"""strom.lsm against a dict model: puts, deletes, batches, scans, snapshots, reopens, flushes, compactions.

Tiny memtables and level sizes make every few operations flush or compact; ``paranoid_checks`` runs the level
invariant checker at every version change (each flush and compaction), and the state machine checks it too.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from strom.lsm import DB, Snapshot, WriteBatch

KEYS = st.binary(min_size=0, max_size=3).map(lambda b: b"k" + b)
VALUES = st.binary(max_size=40)
BOUND = st.none() | KEYS


class LSMModel(RuleBasedStateMachine):
    """Every read of the DB must equal the same read of a dict; snapshots must equal the dict when taken."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="lsm-model-")
        self.model: dict[bytes, bytes] = {}
        self.snapshots: list[tuple[Snapshot, dict[bytes, bytes]]] = []
        self.options: dict[str, object] = {}
        self.db: DB | None = None

    @initialize(
        style=st.sampled_from(["levelled", "tiered"]), wal=st.sampled_from(["off", "buffered", "sync"])
    )
    def open_db(self, style: str, wal: str) -> None:
        self.options = {
            "memtable_size": 300,
            "block_size": 64,
            "level0_file_trigger": 2,
            "level0_stop_trigger": 6,
            "level1_size": 1500,
            "level_size_ratio": 3,
            "target_file_size": 600,
            "num_levels": 4,
            "compaction_style": style,
            "wal": wal,
            "paranoid_checks": True,
            "block_cache_size": 4096,
        }
        self.db = DB.open(self.dir + "/db", **self.options)

    @property
    def live(self) -> DB:
        assert self.db is not None
        return self.db

    @rule(key=KEYS, value=VALUES)
    def put(self, key: bytes, value: bytes) -> None:
        self.live.put(key, value)
        self.model[key] = value

    @rule(key=KEYS)
    def delete(self, key: bytes) -> None:
        self.live.delete(key)
        self.model.pop(key, None)

    @rule(ops=st.lists(st.tuples(KEYS, st.none() | VALUES), max_size=8))
    def batch(self, ops: list[tuple[bytes, bytes | None]]) -> None:
        b = WriteBatch()
        for k, v in ops:
            if v is None:
                b.delete(k)
            else:
                b.put(k, v)
        self.live.write(b)
        for k, v in ops:
            if v is None:
                self.model.pop(k, None)
            else:
                self.model[k] = v

    @rule(key=KEYS)
    def get(self, key: bytes) -> None:
        assert self.live.get(key) == self.model.get(key)

    @rule(start=BOUND, end=BOUND, reverse=st.booleans())
    def scan(self, start: bytes | None, end: bytes | None, reverse: bool) -> None:
        expected = sorted(
            (
                kv
                for kv in self.model.items()
                if (start is None or kv[0] >= start) and (end is None or kv[0] < end)
            ),
            reverse=reverse,
        )
        assert list(self.live.scan(start, end, reverse)) == expected

    @precondition(lambda self: len(self.snapshots) < 3)
    @rule()
    def take_snapshot(self) -> None:
        self.snapshots.append((self.live.snapshot(), dict(self.model)))

    @precondition(lambda self: bool(self.snapshots))
    @rule(reverse=st.booleans(), key=KEYS)
    def check_snapshot(self, reverse: bool, key: bytes) -> None:
        snap, frozen = self.snapshots[-1]
        assert list(snap.scan(reverse=reverse)) == sorted(frozen.items(), reverse=reverse)
        assert snap.get(key) == frozen.get(key)

    @precondition(lambda self: bool(self.snapshots))
    @rule()
    def release_snapshot(self) -> None:
        snap, _ = self.snapshots.pop(0)
        snap.release()

    @rule()
    def flush(self) -> None:
        self.live.flush()

    @rule(start=BOUND, end=BOUND)
    def compact(self, start: bytes | None, end: bytes | None) -> None:
        self.live.compact_range(start, end)
        self.live.check_invariants()

    @rule()
    def reopen(self) -> None:
        for snap, _ in self.snapshots:
            snap.release()
        self.snapshots.clear()
        self.live.close()
        self.db = DB.open(self.dir + "/db", **self.options)
        assert list(self.db.scan()) == sorted(self.model.items())

    @invariant()
    def levels_hold(self) -> None:
        if self.db is not None:
            self.db.check_invariants()

    def teardown(self) -> None:
        try:
            if self.db is not None:
                self.db.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


LSMModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("LSM_MODEL_EXAMPLES", "50")),
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_lsm_matches_dict_model = LSMModel.TestCase
