"""Session windows, as Kafka's KStreamSessionWindowAggregateProcessorTest: sessions per key within the
inactivity gap, merging with tombstones for the replaced sessions, session-end timestamps, late drops."""

from __future__ import annotations

import struct

import pytest

from strom.streams import Materialized, SessionWindows, StreamsBuilder, Window, Windowed, serdes
from strom.streams.testing import TopologyTestDriver

S = serdes.string()
SESSION_KEYS = serdes.session_windowed(S)


def _session_count(cache_max_bytes: int, gap: int = 50, grace: int = 0) -> TopologyTestDriver:
    builder = StreamsBuilder()
    builder.stream("in", S, S).group_by_key().windowed_by(
        SessionWindows.of_inactivity_gap_and_grace(gap, grace)
    ).count(Materialized("sessions")).to_stream().to("out", SESSION_KEYS, serdes.long())
    return TopologyTestDriver(builder.build(), {"cache.max.bytes": cache_max_bytes})


def _pipe_and_read(
    driver: TopologyTestDriver, key: str, ts: int
) -> list[tuple[str, int, int, int | None, int]]:
    driver.create_input_topic("in", S, S).pipe_input(key, "v", ts)
    out = driver.create_output_topic("out", SESSION_KEYS, serdes.long())
    return [
        (r.key.key, r.key.window.start, r.key.window.end, r.value, r.timestamp)
        for r in out.read_records_to_list()
    ]


@pytest.mark.parametrize("cache", [0, 1 << 20], ids=["cache-off", "cache-on"])
def test_sessions_merge_and_replaced_sessions_are_forwarded_as_tombstones(cache: int) -> None:
    with _session_count(cache, gap=50, grace=20) as driver:
        assert _pipe_and_read(driver, "a", 0) == [("a", 0, 0, 1, 0)]
        assert _pipe_and_read(driver, "a", 40) == [("a", 0, 0, None, 0), ("a", 0, 40, 2, 40)]
        assert _pipe_and_read(driver, "a", 100) == [("a", 100, 100, 1, 100)]
        assert _pipe_and_read(driver, "b", 90) == [("b", 90, 90, 1, 90)]  # own sessions; 90 >= 100 - 20
        # 70 is within the gap of both [0,40] and [100,100]: the three become one session
        assert _pipe_and_read(driver, "a", 70) == [
            ("a", 0, 40, None, 40),
            ("a", 100, 100, None, 100),
            ("a", 0, 100, 4, 100),
        ]
        store = driver.get_session_store("sessions")
        assert list(store.fetch("a")) == [(Windowed("a", Window(0, 100)), 4)]
        assert list(store.find_sessions("b", 0, 1000)) == [(Windowed("b", Window(90, 90)), 1)]


def test_record_inside_an_existing_session_updates_it_and_the_cache_hides_the_intermediate_tombstone() -> (
    None
):
    with _session_count(0) as driver:
        _pipe_and_read(driver, "a", 0)
        _pipe_and_read(driver, "a", 40)
        assert _pipe_and_read(driver, "a", 20) == [("a", 0, 40, None, 40), ("a", 0, 40, 3, 40)]
    with _session_count(1 << 20) as driver:
        _pipe_and_read(driver, "a", 0)
        _pipe_and_read(driver, "a", 40)
        assert _pipe_and_read(driver, "a", 20) == [("a", 0, 40, 3, 40)]


def test_record_for_a_closed_session_is_dropped_and_counted() -> None:
    with _session_count(0, gap=50, grace=10) as driver:
        _pipe_and_read(driver, "a", 0)
        _pipe_and_read(driver, "b", 70)  # stream time 70: [0,0] closes at 0 + 10 < 70
        assert _pipe_and_read(driver, "a", 30) == []  # would extend [0,0], whose end 0 < 70 - 10
        assert driver.metrics()["dropped-records-total"] == 1
        assert _pipe_and_read(driver, "a", 65) == [("a", 65, 65, 1, 65)]  # new session, end 65 >= 60: kept


def test_session_aggregate_with_merger_like_the_fraud_service() -> None:
    builder = StreamsBuilder()
    totals = (
        builder.stream("orders", S, serdes.json())
        .group_by(lambda order_id, o: o["customer"], key_serde=S, value_serde=serdes.json())
        .windowed_by(SessionWindows.of_inactivity_gap_without_grace(3_600_000))
        .aggregate(lambda: 0, lambda c, o, total: total + o["qty"] * o["price"], lambda c, a, b: a + b,
                   Materialized("totals", value_serde=serdes.long()))
    )  # fmt: skip
    totals.to_stream().filter(lambda wk, total: total is not None and total >= 2000).map(
        lambda wk, total: (wk.key, total)
    ).to("fraud", S, serdes.long())
    with TopologyTestDriver(builder.build()) as driver:
        orders = driver.create_input_topic("orders", S, serdes.json())
        orders.pipe_input("o1", {"customer": "c1", "qty": 2, "price": 500}, 0)
        orders.pipe_input("o2", {"customer": "c1", "qty": 1, "price": 900}, 1_800_000)
        orders.pipe_input("o3", {"customer": "c1", "qty": 1, "price": 200}, 3_000_000)
        orders.pipe_input("o4", {"customer": "c2", "qty": 1, "price": 5000}, 9_000_000)
        assert driver.create_output_topic("fraud", S, serdes.long()).read_records_to_list() == [
            ("c1", 2100, 3_000_000),
            ("c2", 5000, 9_000_000),
        ]


def test_session_keys_use_kafkas_session_key_layout_on_the_wire_and_in_the_changelog() -> None:
    wire = SESSION_KEYS.serialize("t", Windowed("k", Window(5, 9)))
    assert wire == b"k" + struct.pack(">q", 9) + struct.pack(">q", 5)
    assert SESSION_KEYS.deserialize("t", wire) == Windowed("k", Window(5, 9))
    with _session_count(0) as driver:
        _pipe_and_read(driver, "k", 5)
        changelog = driver.create_output_topic(
            "topology-test-driver-sessions-changelog", serdes.bytes_(), serdes.long()
        )
        assert changelog.read_records_to_list() == [(b"k" + struct.pack(">q", 5) * 2, 1, 5)]


def test_sessions_beyond_the_retention_are_dropped_locally_without_tombstones() -> None:
    with _session_count(0, gap=1_000) as driver:
        _pipe_and_read(driver, "old", 0)
        assert _pipe_and_read(driver, "new", 200_000) == [("new", 200_000, 200_000, 1, 200_000)]
        store = driver.get_session_store("sessions")
        assert list(store.fetch("old")) == []
        assert list(store.fetch("new")) == [(Windowed("new", Window(200_000, 200_000)), 1)]
