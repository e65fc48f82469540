"""strom.streams apps end to end on a real broker (strom's and Apache Kafka): a windowed count, a stream-table
join with a tombstone, a stream-globaltable join. Outputs are read back with a plain consumer."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from strom.streams import Materialized, StreamsBuilder, TimeWindows, serdes
from strom.streams.app import Streams, StreamsState
from tests.support.streams import (
    BASE_TS,
    TopicReader,
    create_topics,
    produce,
    streams_config,
    unique,
)
from tests.support.waiting import wait_until

MINUTE = 60_000


def recent_minute() -> int:
    """An event-time origin 30 minutes ago, aligned to a minute: windowed changelogs keep data that recent."""
    return (int(time.time() * 1000) - 30 * MINUTE) // MINUTE * MINUTE


def test_windowed_count_counts_per_key_and_window_and_drops_late_records(
    any_broker: str, tmp_path: Path
) -> None:
    views, out, app_id = unique("views"), unique("counts-out"), unique("wcount")
    create_topics(any_broker, {views: 2, out: 2})
    builder = StreamsBuilder()
    t0 = recent_minute()
    (
        builder.stream(views, key_serde=serdes.string(), value_serde=serdes.string())
        .group_by_key()
        .windowed_by(TimeWindows.of_size_and_grace(MINUTE, 0))
        .count(Materialized.as_("counts"))
        .to_stream()
        .map(lambda wk, n: (f"{wk.key}@{(wk.window.start - t0) // MINUTE}", n))
        .to(out, key_serde=serdes.string(), value_serde=serdes.long())
    )
    records = [
        (b"alice", b"/a", t0 + 1_000),
        (b"bob", b"/b", t0 + 5_000),
        (b"alice", b"/a", t0 + 2_000),
        (b"alice", b"/a", t0 + MINUTE + 1_000),  # stream time of alice's partition passes window 0's end
        (b"alice", b"/late", t0 + 3_000),  # only in window 0, closed (grace 0): dropped
        (b"carol", b"/c", t0 + 2 * MINUTE),
        (b"carol", b"/c", t0 + 2 * MINUTE + 59_999),
    ]
    produce(any_broker, views, records)
    reader = TopicReader(any_broker, out)
    expected = {b"alice@0": 2, b"alice@1": 1, b"bob@0": 1, b"carol@2": 2}
    with Streams(builder.build(), streams_config(any_broker, app_id, tmp_path)) as app:
        assert app.wait_for_state(StreamsState.RUNNING, timeout=60) == StreamsState.RUNNING
        reader.wait_until(
            lambda _: (
                {k: int.from_bytes(v or b"", "big") for k, v in reader.latest_by_key().items()} == expected
            )
        )
    reader.close()
    assert app.state == StreamsState.NOT_RUNNING
    admin = AdminClient({"bootstrap.servers": any_broker})
    changelog = f"{app_id}-counts-changelog"
    resource = ConfigResource(ConfigResource.Type.TOPIC, changelog)
    configs = admin.describe_configs([resource])[resource].result(30)
    assert set(configs["cleanup.policy"].value.split(",")) == {"compact", "delete"}
    assert int(configs["retention.ms"].value) >= MINUTE
    assert len(admin.list_topics(changelog, timeout=30).topics[changelog].partitions) == 2


def test_stream_table_join_uses_current_table_value_and_tombstones(any_broker: str, tmp_path: Path) -> None:
    users, views, out, echo, app_id = (unique(n) for n in ("users", "views", "joined", "users-echo", "join"))
    create_topics(any_broker, {users: 2, views: 2, out: 1, echo: 2})  # one output partition: one order
    builder = StreamsBuilder()
    table = builder.table(users, key_serde=serdes.string(), value_serde=serdes.string(), materialized="users")
    table.to_stream().to(echo, key_serde=serdes.string(), value_serde=serdes.string())
    (
        builder.stream(views, key_serde=serdes.string(), value_serde=serdes.string())
        .join(table, lambda page, name: f"{page}|{name}")
        .to(out, key_serde=serdes.string(), value_serde=serdes.string())
    )
    echoed = TopicReader(any_broker, echo)
    joined = TopicReader(any_broker, out)
    t0 = recent_minute()
    # Everything on partition 0: one task, so the order of table updates and page views is the test's order.
    with Streams(builder.build(), streams_config(any_broker, app_id, tmp_path)) as app:
        produce(any_broker, users, [(b"alice", b"Alice", t0), (b"bob", b"Bob", t0)], partition=0)
        echoed.wait_until(lambda recs: {r[0] for r in recs} >= {b"alice", b"bob"})
        produce(
            any_broker,
            views,
            [(b"alice", b"/a", t0 + 10), (b"carol", b"/c", t0 + 11), (b"bob", b"/b", t0 + 12)],
            partition=0,
        )
        joined.wait_until(lambda recs: len(recs) >= 2)
        produce(any_broker, users, [(b"bob", None, t0 + 20)], partition=0)
        echoed.wait_until(lambda recs: (b"bob", None) in [(r[0], r[1]) for r in recs])
        produce(any_broker, views, [(b"bob", b"/b2", t0 + 30), (b"alice", b"/a2", t0 + 31)], partition=0)
        joined.wait_until(lambda recs: any(r[1] == b"/a2|Alice" for r in recs))
        assert app.state == StreamsState.RUNNING
    assert [(r[0], r[1], r[2]) for r in joined.records] == [
        (b"alice", b"/a|Alice", t0 + 10),  # a stream-table join result carries the stream record's timestamp
        (b"bob", b"/b|Bob", t0 + 12),
        (b"alice", b"/a2|Alice", t0 + 31),
    ]
    echoed.close()
    joined.close()


def test_global_table_join_reads_the_whole_table_before_processing(any_broker: str, tmp_path: Path) -> None:
    users, views, out, app_id = (unique(n) for n in ("g-users", "g-views", "g-joined", "gjoin"))
    create_topics(any_broker, {users: 3, views: 2, out: 1})
    t0 = recent_minute()
    produce(any_broker, users, [(f"u{i}".encode(), f"name-{i}".encode(), t0) for i in range(30)])
    produce(any_broker, views, [(f"/page{i}".encode(), f"u{i}".encode(), t0 + i) for i in range(0, 40, 3)])
    builder = StreamsBuilder()
    table = builder.global_table(users, key_serde=serdes.string(), value_serde=serdes.string())
    (
        builder.stream(views, key_serde=serdes.string(), value_serde=serdes.string())
        .join(table, lambda user, name: f"{user}:{name}", key_selector=lambda page, user: user)
        .to(out, key_serde=serdes.string(), value_serde=serdes.string())
    )
    reader = TopicReader(any_broker, out)
    expected = {f"/page{i}".encode(): f"u{i}:name-{i}".encode() for i in range(0, 30, 3)}  # no u30, u33, u36
    with Streams(builder.build(), streams_config(any_broker, app_id, tmp_path)):
        reader.wait_until(lambda recs: len(recs) >= len(expected))
        produce(any_broker, users, [(b"u33", b"late-joiner", t0 + 100)])
        # A global table is not time-synchronised with the streams (Kafka's rule), so a page view sent right
        # after the update may still miss it: send views until one joins, each wait bounded.
        for attempt in range(30):
            produce(any_broker, views, [(f"/late{attempt}".encode(), b"u33", t0 + 101 + attempt)])
            try:
                reader.wait_until(lambda recs: any(r[0].startswith(b"/late") for r in recs), timeout=1.0)
                break
            except AssertionError:
                continue
    reader.close()
    got = reader.latest_by_key()
    assert {k: got[k] for k in expected} == expected
    late = [value for key, value, _, _ in reader.records if key is not None and key.startswith(b"/late")]
    assert late and set(late) == {b"u33:late-joiner"}
    assert len(reader.records) == len(expected) + len(late)


def test_repartitioned_count_purges_consumed_repartition_records(any_broker: str, tmp_path: Path) -> None:
    views, out, app_id = unique("views"), unique("per-page"), unique("purge")
    create_topics(any_broker, {views: 2, out: 1})
    builder = StreamsBuilder()
    (
        builder.stream(views, key_serde=serdes.string(), value_serde=serdes.string())
        .group_by(lambda user, page: page, key_serde=serdes.string(), value_serde=serdes.string())
        .count(Materialized.as_("per-page"))
        .to_stream()
        .to(out, key_serde=serdes.string(), value_serde=serdes.long())
    )
    pages = [b"/", b"/docs", b"/pricing"]
    produce(any_broker, views, [(f"user-{i}".encode(), pages[i % 3], BASE_TS + i) for i in range(30)])
    reader = TopicReader(any_broker, out)
    config = streams_config(any_broker, app_id, tmp_path, **{"repartition.purge.interval.ms": 0})
    admin = AdminClient({"bootstrap.servers": any_broker})
    with Streams(builder.build(), config):
        reader.wait_until(
            lambda _: (
                {k: int.from_bytes(v or b"", "big") for k, v in reader.latest_by_key().items()}
                == dict.fromkeys(pages, 10)
            )
        )
        repartition = [
            t for t in admin.list_topics(timeout=30).topics if t.startswith(app_id) and "repartition" in t
        ]
        assert len(repartition) == 1
        consumer = Consumer({"bootstrap.servers": any_broker, "group.id": unique("wm")})
        partitions = range(
            len(admin.list_topics(repartition[0], timeout=30).topics[repartition[0]].partitions)
        )

        def purged() -> int:
            return sum(
                consumer.get_watermark_offsets(TopicPartition(repartition[0], p), timeout=30, cached=False)[0]
                for p in partitions
            )

        # The app commits every 100 ms and purges after each commit; nothing announces a purge.
        wait_until(
            lambda: purged() >= 30,
            lambda: f"the repartition records purged (log start offsets sum {purged()})",
            timeout=60,
        )
        consumer.close()
    reader.close()
