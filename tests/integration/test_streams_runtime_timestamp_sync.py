"""Timestamp synchronization on a real broker (strom's and Apache Kafka): a task reading a table topic and a
stream topic processes the lowest timestamp first and, with max.task.idle.ms=0, does not run ahead while the
table partition has data on the broker it has not fetched yet. The input is preloaded, as in the benchmark
that found the bug: table rows (earlier timestamps) and page views produced at the same time."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from strom.streams import StreamsBuilder, serdes
from strom.streams.app import Streams, StreamsState
from tests.support.streams import (
    BASE_TS,
    TopicReader,
    create_topics,
    produce,
    streams_config,
    unique,
)

USERS = 200
VIEWS = 4_000
PARTITIONS = 2


def _preload(bootstrap: str, users: str, views: str, first_user: int = 0) -> None:
    """Page views (later timestamps) of users ``first_user...`` and those users' rows (earlier timestamps)
    produced concurrently; the views go in first and are more, so a task that does not synchronise sees page
    views before their users."""
    base = BASE_TS + first_user * VIEWS
    view_records = [
        (f"u{first_user + i % USERS}".encode(), f"/page/{i}".encode(), base + 1_000 + i) for i in range(VIEWS)
    ]
    user_records = [
        (f"u{first_user + i}".encode(), f"name-{first_user + i}".encode(), base) for i in range(USERS)
    ]
    writer = threading.Thread(target=produce, args=(bootstrap, views, view_records))
    writer.start()
    produce(bootstrap, users, user_records)
    writer.join()


class _JoinApp:
    """A left join of page views with a users table, its topics and a reader of its output."""

    def __init__(self, bootstrap: str, tmp_path: Path) -> None:
        self.bootstrap = bootstrap
        self.users, self.views, out, self.app_id = (
            unique(n) for n in ("sync-users", "sync-views", "sync-joined", "sync")
        )
        self.state_dir = tmp_path / self.app_id
        create_topics(bootstrap, {self.users: PARTITIONS, self.views: PARTITIONS, out: PARTITIONS})
        builder = StreamsBuilder()
        table = builder.table(self.users, key_serde=serdes.string(), value_serde=serdes.string())
        (
            builder.stream(self.views, key_serde=serdes.string(), value_serde=serdes.string())
            .left_join(table, lambda page, name: f"{page}|{name}")
            .to(out, key_serde=serdes.string(), value_serde=serdes.string())
        )
        self.topology = builder.build()
        self.reader = TopicReader(bootstrap, out)

    def run_until(self, results: int, **config: Any) -> None:
        """Start the app, wait for ``results`` output records in all, close it cleanly."""
        app_config = streams_config(self.bootstrap, self.app_id, self.state_dir, **config)
        with Streams(self.topology, app_config) as app:
            assert app.wait_for_state(StreamsState.RUNNING, timeout=60) == StreamsState.RUNNING
            self.reader.wait_until(lambda records: len(records) >= results)
        assert app.state == StreamsState.NOT_RUNNING

    def assert_every_view_joined_its_user(self, views: int) -> None:
        records = self.reader.records
        unjoined = [(key, value) for key, value, _ts, _p in records if value.endswith(b"|None")]
        assert unjoined == [], f"{len(unjoined)} page views were processed before their user row"
        assert len(records) == views
        for key, value, _ts, _p in records:
            assert value.split(b"|")[1] == b"name-" + key[1:]


def _run_join(bootstrap: str, tmp_path: Path, **config: Any) -> None:
    app = _JoinApp(bootstrap, tmp_path)
    _preload(bootstrap, app.users, app.views)
    app.run_until(VIEWS, **config)
    app.reader.close()
    app.assert_every_view_joined_its_user(VIEWS)


@pytest.mark.parametrize("run", range(3))
def test_preloaded_stream_table_join_joins_every_stream_row_with_its_earlier_table_row(
    any_broker: str, tmp_path: Path, run: int
) -> None:
    _run_join(any_broker, tmp_path)


@pytest.mark.parametrize("buffered", [1000, 10])
def test_a_task_waits_for_a_table_partition_that_is_empty_locally_but_lagging_on_the_broker(
    any_broker: str, tmp_path: Path, buffered: int
) -> None:
    # Fetches of at most 2 KB per partition and almost no prefetching: the table partition's buffer runs dry
    # again and again while the broker still holds its rows, and the page views wait for them instead of
    # joining with nothing. With 10 buffered records per partition, the waiting page-view partition is also
    # paused and resumed over and over (back-pressure), losing and repeating nothing.
    small_fetches = {
        "consumer.max.partition.fetch.bytes": 2048,
        "consumer.queued.min.messages": 1,
        "buffered.records.per.partition": buffered,
    }
    _run_join(any_broker, tmp_path, **small_fetches)


def test_after_a_restart_the_task_waits_for_table_rows_beyond_its_committed_offsets(
    any_broker: str, tmp_path: Path
) -> None:
    # The second run starts from committed offsets; until it fetches from the table partitions their
    # position is unknown, so the lag is measured from the committed offset.
    app = _JoinApp(any_broker, tmp_path)
    _preload(any_broker, app.users, app.views)
    app.run_until(VIEWS)
    _preload(any_broker, app.users, app.views, first_user=USERS)
    app.run_until(2 * VIEWS)
    app.reader.close()
    app.assert_every_view_joined_its_user(2 * VIEWS)
