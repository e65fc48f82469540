"""State stores: every backend behaves like a dict under the cache and change-logging layers (hypothesis
model check), window stores expire by retention, and the cache evicts without losing writes."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strom.streams import StoreError, Stores, serdes
from strom.streams.state.cache import Changelogger, RecordCacheBudget
from strom.streams.state.kv_store import KeyValueStore
from strom.streams.state.stores import open_store
from strom.streams.state.window_store import WindowStore

BACKENDS = ["in_memory", "lsm", "rocksdict"]


class Log:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None, int]] = []

    def send(self, topic: str, key: bytes, value: bytes | None, ts: int, partition: int | None = None,
             headers: Any = None) -> None:  # fmt: skip
        assert topic == "app-s-changelog" and partition == 4
        self.records.append((key, value, ts))


def _kv(tmp: Path, backend: str, cache_bytes: int, log: Log) -> KeyValueStore:
    if backend == "rocksdict":
        pytest.importorskip("rocksdict")
    spec = Stores.key_value_store("s", serdes.string(), serdes.integer(), backend=backend, caching=True)
    changelog = Changelogger(log.send, "app-s-changelog", 4)
    store = open_store(spec, {}, tmp, changelog, RecordCacheBudget(cache_bytes), lambda: 7)
    assert isinstance(store, KeyValueStore)
    return store


ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "delete", "flush", "get"]), st.sampled_from("abcdefgh"), st.integers(0, 99)
    ),
    max_size=60,
)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cache_bytes", [0, 400, 1 << 20], ids=["no-cache", "tiny-cache", "cache"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=ops)
def test_store_matches_a_dict_and_its_changelog_replays_to_the_same_state(
    tmp_path_factory: pytest.TempPathFactory,
    backend: str,
    cache_bytes: int,
    operations: list[tuple[str, str, int]],
) -> None:
    tmp = tmp_path_factory.mktemp("kv")
    log = Log()
    store = _kv(tmp / "a", backend, cache_bytes, log)
    model: dict[str, int] = {}
    for op, key, value in operations:
        if op == "put":
            store.put(key, value, timestamp=value)
            model[key] = value
        elif op == "delete":
            assert store.delete(key) == model.pop(key, None)
        elif op == "flush":
            store.flush()
        else:
            assert store.get(key) == model.get(key)
        assert dict(store.all()) == model
    store.flush()
    assert dict(store.all()) == model
    assert list(store.range("b", "e")) == sorted((k, v) for k, v in model.items() if "b" <= k <= "e")
    replica = _kv(tmp / "b", backend, cache_bytes, Log())
    replica.restore(log.records)
    assert dict(replica.all()) == model
    for key, value in model.items():
        assert replica.get_with_timestamp(key) == (value, value)
    store.close()
    replica.close()


def test_changelog_records_use_plain_serialised_values_and_value_timestamps(tmp_path: Path) -> None:
    log = Log()
    store = _kv(tmp_path, "in_memory", 0, log)
    store.put("k", 5)  # timestamp from the context: 7
    store.put("k", None, 9)
    assert log.records == [(b"k", struct.pack(">i", 5), 7), (b"k", None, 9)]


def test_cache_collapses_repeated_updates_into_one_changelog_record(tmp_path: Path) -> None:
    log = Log()
    store = _kv(tmp_path, "in_memory", 1 << 20, log)
    for i in range(100):
        store.put("k", i, i)
    assert log.records == []
    store.flush()
    assert log.records == [(b"k", struct.pack(">i", 99), 99)]


def test_flush_listener_sees_new_and_previously_flushed_value(tmp_path: Path) -> None:
    store = _kv(tmp_path, "in_memory", 1 << 20, Log())
    seen: list[tuple[str, Any, Any, int]] = []
    store.set_flush_listener(lambda k, new, old, ts: seen.append((k, new, old, ts)))
    store.put("k", 1, 1)
    store.put("k", 2, 2)
    store.flush()
    store.put("k", 3, 3)
    store.flush()
    assert seen == [("k", 2, None, 2), ("k", 3, 2, 3)]


def test_null_keys_and_closed_stores_are_refused(tmp_path: Path) -> None:
    store = _kv(tmp_path, "in_memory", 0, Log())
    with pytest.raises(StoreError, match="null keys"):
        store.put(None, 1)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.put("k", 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_window_store_fetches_by_key_and_time_and_drops_expired_windows(tmp_path: Path, backend: str) -> None:
    if backend == "rocksdict":
        pytest.importorskip("rocksdict")
    spec = Stores.window_store("w", 10, 100, serdes.string(), serdes.long(), backend=backend)
    store = open_store(spec, {}, tmp_path, None, None, lambda: 0)
    assert isinstance(store, WindowStore)
    for start in (0, 10, 20):
        store.put("a", start + 1, start, start + 5)
        store.put("ab", start + 100, start, start + 5)
    assert list(store.fetch("a", 0, 15)) == [(0, 1), (10, 11)]
    assert list(store.fetch("ab", 10, 20)) == [(10, 110), (20, 120)]
    assert store.get_with_timestamp("a", 20) == (21, 25)
    store.put("a", 9, 150, 150)  # observed time 150, retention 100: windows starting at or before 50 expire
    assert store.get("a", 0) is None
    assert list(store.fetch("a", 0, 200)) == [(150, 9)]
    store.put("a", 1, 40, 40)  # too old to be written again
    assert store.get("a", 40) is None
    store.close()


def test_eviction_drops_clean_entries_before_it_forces_a_flush(tmp_path: Path) -> None:
    log = Log()
    budget = RecordCacheBudget(10 * 160)  # room for about ten entries
    spec = Stores.key_value_store("s", serdes.string(), serdes.integer(), backend="in_memory", caching=True)
    store = open_store(spec, {}, tmp_path, Changelogger(log.send, "app-s-changelog", 4), budget, lambda: 7)
    assert isinstance(store, KeyValueStore)
    store.put("dirty", 1, 1)
    for i in range(50):
        assert store.get(f"absent-{i}") is None  # clean cache entries, evicted without a flush
    assert log.records == []
    assert budget.entries <= budget.max_entries + 1
    for i in range(50):
        store.put(f"k{i}", i, i)  # only dirty entries left: eviction has to flush
    assert (b"dirty", struct.pack(">i", 1), 1) in log.records
    store.flush()
    assert dict(store.all()) == {"dirty": 1, **{f"k{i}": i for i in range(50)}}


def test_window_restore_skips_windows_expired_by_the_end_of_the_restore(tmp_path: Path) -> None:
    from strom.streams.state.window_store import changelog_key

    spec = Stores.window_store("w", 60_000, 60_000, serdes.string(), serdes.long(), backend="lsm")
    store = open_store(spec, {}, tmp_path, None, None, lambda: 0)
    assert isinstance(store, WindowStore)
    minute = 60_000
    for batch_start in range(0, 10, 2):  # ten minutes of windows, restored in five batches
        store.restore(
            [
                (changelog_key(b"k", m * minute), struct.pack(">q", m), m * minute)
                for m in (batch_start, batch_start + 1)
            ]
        )
    assert store.get("k", 9 * minute) == 9  # reading settles the held-back batches
    segment_dirs = sorted(p.name for p in (tmp_path / "lsm" / "w").iterdir() if p.is_dir())
    assert segment_dirs == ["9"]  # no segment was created for the windows that had expired meanwhile
    assert store.get("k", 3 * minute) is None
    store.close()


def test_a_segment_marked_dropped_is_deleted_when_the_store_reopens(tmp_path: Path) -> None:
    spec = Stores.window_store("w", 10, 100, serdes.string(), serdes.long(), backend="rocksdict")
    pytest.importorskip("rocksdict")
    store = open_store(spec, {}, tmp_path, None, None, lambda: 0)
    assert isinstance(store, WindowStore)
    store.put("k", 1, 0, 0)
    store.close()
    base = tmp_path / "rocksdict" / "w"
    (base / "0.dropped").touch()  # as if the process died while the segment was being dropped
    again = open_store(spec, {}, tmp_path, None, None, lambda: 0)
    assert again.get("k", 0) is None
    assert not (base / "0").exists() and not (base / "0.dropped").exists()
    again.close()
