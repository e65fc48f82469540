"""State restore on a real broker: a restart replays only the changelog delta after the local `.checkpoint`;
lost local state is restored in full; the restored state continues where it stopped (counts keep adding
up)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from strom.streams import Materialized, StreamsBuilder, serdes
from strom.streams.app import Streams, StreamsState
from strom.streams.errors import StreamsError
from strom.streams.runtime.checkpoint import read_checkpoint
from tests.support.streams import (
    BASE_TS,
    CountingRestoreListener,
    TopicReader,
    create_topics,
    produce,
    streams_config,
    unique,
)


def count_topology(views: str, out: str) -> object:
    builder = StreamsBuilder()
    (
        builder.stream(views, key_serde=serdes.string(), value_serde=serdes.string())
        .group_by_key()
        .count(Materialized.as_("counts"))
        .to_stream()
        .to(out, key_serde=serdes.string(), value_serde=serdes.long())
    )
    return builder.build()


def changelog_end(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("wm")})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30, cached=False)[1])
    finally:
        consumer.close()


def counts(reader: TopicReader) -> dict[bytes, int]:
    return {k: int.from_bytes(v, "big") for k, v in reader.latest_by_key().items() if k and v}


def run_until_counted(
    bootstrap: str,
    topology: object,
    config: dict[str, object],
    reader: TopicReader,
    expected: dict[bytes, int],
) -> CountingRestoreListener:
    """Start an instance, wait for its restore to end and for the output to show `expected`, close it."""
    listener = CountingRestoreListener()
    app = Streams(topology, config)
    app.set_global_state_restore_listener(listener)
    with app:
        assert app.wait_for_state(StreamsState.RUNNING, timeout=60) == StreamsState.RUNNING
        assert listener.ended.wait(60)
        reader.wait_until(lambda _: counts(reader) == expected)
    assert app.state == StreamsState.NOT_RUNNING and app.error is None
    return listener


def test_restart_replays_only_the_delta_after_the_checkpoint(any_broker: str, tmp_path: Path) -> None:
    views, out, app_id = unique("views"), unique("counts"), unique("restore")
    create_topics(any_broker, {views: 1, out: 1})
    changelog = f"{app_id}-counts-changelog"
    reader = TopicReader(any_broker, out)
    keys = [f"user-{i}".encode() for i in range(10)]
    dir_a, dir_b = tmp_path / "instance-a", tmp_path / "instance-b"
    config_a = streams_config(any_broker, app_id, dir_a, **{"statestore.cache.max.bytes": 0})
    config_b = streams_config(any_broker, app_id, dir_b, **{"statestore.cache.max.bytes": 0})

    produce(any_broker, views, [(k, b"/", BASE_TS + 1000 + i) for i, k in enumerate(keys * 3)])
    first = run_until_counted(
        any_broker, count_topology(views, out), config_a, reader, dict.fromkeys(keys, 3)
    )
    assert first.total == 0  # a new application: nothing to restore
    end_after_a = changelog_end(any_broker, changelog)
    assert end_after_a == 30  # cache off: one changelog record per update
    assert read_checkpoint(dir_a / app_id / "0_0") == {(changelog, 0): end_after_a - 1}

    # A restart with the state intact restores nothing.
    again = run_until_counted(
        any_broker, count_topology(views, out), config_a, reader, dict.fromkeys(keys, 3)
    )
    assert again.total == 0

    # Another instance (own state dir) processes more input: it restores the whole changelog and extends it.
    produce(any_broker, views, [(k, b"/", BASE_TS + 2000 + i) for i, k in enumerate(keys[:4] * 2)])
    expected = {k: 5 if k in keys[:4] else 3 for k in keys}
    other = run_until_counted(any_broker, count_topology(views, out), config_b, reader, expected)
    assert other.total == end_after_a
    end_after_b = changelog_end(any_broker, changelog)
    assert end_after_b == end_after_a + 8

    # Instance A comes back: its checkpoint is at end_after_a - 1, so only B's 8 records are replayed...
    produce(any_broker, views, [(keys[9], b"/", BASE_TS + 3000)])
    expected[keys[9]] = 4
    resumed = run_until_counted(any_broker, count_topology(views, out), config_a, reader, expected)
    assert resumed.total == end_after_b - end_after_a == 8
    # ...and the state it resumed from is complete: keys[0] continues from 5, not from A's old 3.
    produce(any_broker, views, [(keys[0], b"/", BASE_TS + 4000)])
    expected[keys[0]] = 6
    run_until_counted(any_broker, count_topology(views, out), config_a, reader, expected)
    reader.close()


def test_lost_local_state_is_restored_in_full_from_the_changelog(any_broker: str, tmp_path: Path) -> None:
    views, out, app_id = unique("views"), unique("counts"), unique("wiped")
    create_topics(any_broker, {views: 2, out: 1})
    reader = TopicReader(any_broker, out)
    keys = [f"k{i}".encode() for i in range(50)]
    produce(any_broker, views, [(k, b"/", BASE_TS + 1000 + i) for i, k in enumerate(keys * 2)])
    config = streams_config(any_broker, app_id, tmp_path / "state")
    run_until_counted(any_broker, count_topology(views, out), config, reader, dict.fromkeys(keys, 2))
    changelog = f"{app_id}-counts-changelog"
    consumer = Consumer({"bootstrap.servers": any_broker, "group.id": unique("wm")})
    changelog_records = sum(
        consumer.get_watermark_offsets(TopicPartition(changelog, p), timeout=30, cached=False)[1]
        for p in (0, 1)
    )
    consumer.close()
    assert changelog_records >= len(keys)

    fresh = streams_config(any_broker, app_id, tmp_path / "empty-state")
    produce(any_broker, views, [(k, b"/", BASE_TS + 5000) for k in keys[:5]])
    expected = {k: 3 if k in keys[:5] else 2 for k in keys}
    listener = run_until_counted(any_broker, count_topology(views, out), fresh, reader, expected)
    assert listener.total == changelog_records
    assert {started[2] for started in listener.started} == {"counts"}
    reader.close()


def test_checkpoint_below_the_changelog_start_wipes_the_store(any_broker: str, tmp_path: Path) -> None:
    """Retention or DeleteRecords removed changelog records the checkpoint still needs: the local store can no
    longer be brought up to date by a delta, so it is wiped and rebuilt from what the changelog still has."""
    views, out, app_id = unique("views"), unique("counts"), unique("trimmed")
    create_topics(any_broker, {views: 1, out: 1})
    changelog = f"{app_id}-counts-changelog"
    reader = TopicReader(any_broker, out)
    keys = [f"user-{i}".encode() for i in range(5)]
    config_a = streams_config(any_broker, app_id, tmp_path / "a", **{"statestore.cache.max.bytes": 0})
    config_b = streams_config(any_broker, app_id, tmp_path / "b", **{"statestore.cache.max.bytes": 0})
    produce(any_broker, views, [(k, b"/", BASE_TS + 1000 + i) for i, k in enumerate(keys * 2)])
    run_until_counted(any_broker, count_topology(views, out), config_a, reader, dict.fromkeys(keys, 2))
    assert read_checkpoint(tmp_path / "a" / app_id / "0_0") == {(changelog, 0): 9}
    # Another instance moves the changelog on, then everything before its last record is deleted.
    produce(any_broker, views, [(keys[0], b"/", BASE_TS + 2000), (keys[0], b"/", BASE_TS + 2001)])
    expected = {**dict.fromkeys(keys, 2), keys[0]: 4}
    run_until_counted(any_broker, count_topology(views, out), config_b, reader, expected)
    end = changelog_end(any_broker, changelog)
    assert end == 12
    admin = AdminClient({"bootstrap.servers": any_broker})
    # Kafka refuses DeleteRecords on a compact-only topic: an operator would first add the delete policy.
    policy = ConfigResource(
        ConfigResource.Type.TOPIC,
        changelog,
        incremental_configs=[
            ConfigEntry("cleanup.policy", "compact,delete", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in admin.incremental_alter_configs([policy]).values():
        future.result(30)
    for future in admin.delete_records([TopicPartition(changelog, 0, end - 1)]).values():
        future.result(30)
    # A's checkpoint (9) + 1 is below the changelog's new start (11): A wipes its store, restores the one
    # record left (keys[0] = 4), and the other keys start again from nothing (keys[1] counts 1, not 3).
    produce(any_broker, views, [(keys[1], b"/", BASE_TS + 3000)])
    expected = {**expected, keys[1]: 1}
    listener = run_until_counted(any_broker, count_topology(views, out), config_a, reader, expected)
    assert listener.total == 1
    assert listener.started[0][3] == end - 1
    reader.close()


def _copy_store_while_running_and_damage_its_wal(
    topology: object, config: dict[str, object], reader: TopicReader, expected: dict[bytes, int]
) -> Path:
    """Run an instance until `expected` shows, copy its ``counts`` store as a killed process would leave it
    (written batches only in the WAL), close the instance, put the copy back with two bytes flipped in the
    middle of the WAL; returns the store directory."""
    app = Streams(topology, config)
    with app:
        assert app.wait_for_state(StreamsState.RUNNING, timeout=60) == StreamsState.RUNNING
        reader.wait_until(lambda _: counts(reader) == expected)
        store = Path(str(config["state.dir"])) / str(config["application.id"]) / "0_0" / "lsm" / "counts"
        shutil.copytree(store, store.with_name("copy"))
    assert app.error is None
    shutil.rmtree(store)
    store.with_name("copy").rename(store)
    (wal,) = [p for p in store.iterdir() if p.suffix == ".log" and p.stat().st_size > 0]
    data = bytearray(wal.read_bytes())
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 1] ^= 0xFF
    wal.write_bytes(bytes(data))
    return store


def test_damaged_local_store_is_wiped_and_restored_from_the_changelog(
    any_broker: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """strom.lsm refuses a WAL damaged in the middle; local state is a cache of the changelog, so the store is
    wiped and restored in full (Kafka Streams' TaskCorruptedException handling) and counting goes on."""
    views, out, app_id = unique("views"), unique("counts"), unique("damaged")
    create_topics(any_broker, {views: 1, out: 1})
    changelog = f"{app_id}-counts-changelog"
    reader = TopicReader(any_broker, out)
    keys = [f"user-{i}".encode() for i in range(10)]
    config = streams_config(any_broker, app_id, tmp_path / "state", **{"statestore.cache.max.bytes": 0})
    produce(any_broker, views, [(k, b"/", BASE_TS + 1000 + i) for i, k in enumerate(keys * 20)])
    store = _copy_store_while_running_and_damage_its_wal(
        count_topology(views, out), config, reader, dict.fromkeys(keys, 20)
    )
    end = changelog_end(any_broker, changelog)
    assert end == 200

    produce(any_broker, views, [(keys[0], b"/", BASE_TS + 5000)])
    with caplog.at_level(logging.ERROR, logger="strom.streams"):
        listener = run_until_counted(
            any_broker, count_topology(views, out), config, reader, {**dict.fromkeys(keys, 20), keys[0]: 21}
        )
    assert listener.total == end  # restored from the beginning, not from the (stale) checkpoint
    (record,) = [r for r in caplog.records if "corrupt local state" in r.getMessage()]
    assert "0_0" in record.getMessage() and "'counts'" in record.getMessage()
    assert str(store) in record.getMessage()
    reader.close()


def test_damaged_store_without_changelog_fails_clearly_and_keeps_its_files(
    any_broker: str, tmp_path: Path
) -> None:
    """A store with logging disabled cannot be rebuilt: opening it fails naming the store and its directory,
    and its files are left for the operator."""
    views, out, app_id = unique("views"), unique("counts"), unique("unlogged")
    create_topics(any_broker, {views: 1, out: 1})
    reader = TopicReader(any_broker, out)
    keys = [f"user-{i}".encode() for i in range(10)]
    config = streams_config(any_broker, app_id, tmp_path / "state", **{"statestore.cache.max.bytes": 0})

    def topology() -> object:
        builder = StreamsBuilder()
        (
            builder.stream(views, key_serde=serdes.string(), value_serde=serdes.string())
            .group_by_key()
            .count(Materialized.as_("counts").with_logging_disabled())
            .to_stream()
            .to(out, key_serde=serdes.string(), value_serde=serdes.long())
        )
        return builder.build()

    produce(any_broker, views, [(k, b"/", BASE_TS + 1000 + i) for i, k in enumerate(keys * 20)])
    store = _copy_store_while_running_and_damage_its_wal(topology(), config, reader, dict.fromkeys(keys, 20))
    before = sorted((p.name, p.read_bytes()) for p in store.iterdir())
    app = Streams(topology(), config)
    with app:
        assert app.wait_for_state(StreamsState.ERROR, timeout=60) == StreamsState.ERROR
    assert isinstance(app.error, StreamsError)
    assert "'counts'" in str(app.error) and str(store) in str(app.error)
    assert sorted((p.name, p.read_bytes()) for p in store.iterdir()) == before
    reader.close()
