"""Bad input and bad set-ups stop with errors that name the problem: co-partitioning, missing topics, records
that cannot be deserialised (default: stop, naming topic/partition/offset, nothing committed past it; or dead
letters)."""

from __future__ import annotations

from pathlib import Path

import pytest

from strom.streams import DeserializationError, StreamsBuilder, TopologyError, serdes
from strom.streams.app import Streams, StreamsState
from strom.streams.runtime.errors import IllegalStateError, MissingSourceTopicError
from tests.support.streams import (
    BASE_TS,
    TopicReader,
    committed_offsets,
    create_topics,
    produce,
    streams_config,
    unique,
)


def test_co_partitioning_mismatch_fails_start_naming_topics_and_counts(
    any_broker: str, tmp_path: Path
) -> None:
    users, views = unique("users"), unique("views")
    create_topics(any_broker, {users: 3, views: 2})
    builder = StreamsBuilder()
    table = builder.table(users, key_serde=serdes.string(), value_serde=serdes.string())
    builder.stream(views, key_serde=serdes.string(), value_serde=serdes.string()).join(
        table, lambda v, u: f"{v}|{u}"
    ).to(unique("out"))
    app = Streams(builder.build(), streams_config(any_broker, unique("copart"), tmp_path))
    with pytest.raises(TopologyError) as failure:
        app.start()
    message = str(failure.value)
    assert users in message and views in message
    assert "3" in message and "2" in message
    assert app.state == StreamsState.NOT_RUNNING
    with pytest.raises(IllegalStateError):
        app.start()


def test_missing_source_topic_fails_start_naming_it(any_broker: str, tmp_path: Path) -> None:
    missing = unique("never-created")
    builder = StreamsBuilder()
    builder.stream(missing).to(unique("out"))
    app = Streams(builder.build(), streams_config(any_broker, unique("missing"), tmp_path))
    with pytest.raises(MissingSourceTopicError, match=missing):
        app.start()
    app.close()


def long_sum_topology(views: str, out: str) -> object:
    builder = StreamsBuilder()
    builder.stream(views, key_serde=serdes.string(), value_serde=serdes.long()).map_values(
        lambda v: v * 10
    ).to(out, key_serde=serdes.string(), value_serde=serdes.long())
    return builder.build()


def test_undeserialisable_record_stops_the_app_naming_topic_partition_offset(
    any_broker: str, tmp_path: Path
) -> None:
    views, out, app_id = unique("numbers"), unique("out"), unique("deser")
    create_topics(any_broker, {views: 1, out: 1})
    good = (7).to_bytes(8, "big")
    produce(
        any_broker,
        views,
        [
            (b"a", good, BASE_TS),
            (b"b", good, BASE_TS),
            (b"c", b"\x01\x02\x03", BASE_TS),
            (b"d", good, BASE_TS),
        ],
    )
    reader = TopicReader(any_broker, out)
    app = Streams(long_sum_topology(views, out), streams_config(any_broker, app_id, tmp_path))
    app.start()
    assert app.wait_for_state(StreamsState.ERROR, timeout=60) == StreamsState.ERROR
    app.close()
    assert isinstance(app.error, DeserializationError)
    message = str(app.error)
    assert views in message and "partition 0" in message and "offset 2" in message
    # At-least-once: the records before the bad one may be committed, never the bad one or anything after it.
    assert committed_offsets(any_broker, app_id, views, 1)[0] <= 2
    reader.wait_until(lambda recs: len(recs) >= 2)
    assert [r[0] for r in reader.records] == [b"a", b"b"]
    reader.close()


def test_dead_letter_topic_receives_the_bad_record_and_processing_continues(
    any_broker: str, tmp_path: Path
) -> None:
    views, out, dlq, app_id = unique("numbers"), unique("out"), unique("dead-letters"), unique("dlq")
    create_topics(any_broker, {views: 1, out: 1, dlq: 1})
    good = (7).to_bytes(8, "big")
    produce(any_broker, views, [(b"a", good, BASE_TS), (b"bad", b"\xff", BASE_TS), (b"c", good, BASE_TS)])
    reader = TopicReader(any_broker, out)
    dead = TopicReader(any_broker, dlq)
    config = streams_config(any_broker, app_id, tmp_path, **{"errors.deadletterqueue.topic.name": dlq})
    with Streams(long_sum_topology(views, out), config) as app:
        reader.wait_until(lambda recs: len(recs) >= 2)
        dead.wait_until(lambda recs: len(recs) >= 1)
        assert app.state == StreamsState.RUNNING
    assert [(r[0], int.from_bytes(r[1], "big")) for r in reader.records] == [(b"a", 70), (b"c", 70)]
    assert [(r[0], r[1]) for r in dead.records] == [(b"bad", b"\xff")]
    reader.close()
    dead.close()


def test_a_record_that_cannot_be_sent_stops_the_app_without_committing_past_it(
    any_broker: str, tmp_path: Path
) -> None:
    views, out, app_id = unique("numbers"), unique("out"), unique("toolarge")
    create_topics(any_broker, {views: 1, out: 1})
    good = (7).to_bytes(8, "big")
    produce(any_broker, views, [(b"a", good, BASE_TS), (b"huge", good, BASE_TS), (b"c", good, BASE_TS)])
    builder = StreamsBuilder()
    (
        builder.stream(views, key_serde=serdes.string(), value_serde=serdes.long())
        .map(lambda k, v: (k, b"x" * 2_000_000 if k == "huge" else b"ok"))
        .to(out, key_serde=serdes.string(), value_serde=serdes.bytes_())
    )
    app = Streams(builder.build(), streams_config(any_broker, app_id, tmp_path))
    app.start()
    assert app.wait_for_state(StreamsState.ERROR, timeout=60) == StreamsState.ERROR
    app.close()
    assert "too large" in str(app.error).lower()  # 2 MB is over the producer's message.max.bytes (1 MB)
    assert committed_offsets(any_broker, app_id, views, 1)[0] <= 1
