"""`OffsetsTopic`: the coordinator's records on the broker's real `__consumer_offsets` partition logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from strom.broker.coordinator.offsets import (
    OFFSETS_TOPIC,
    OffsetsRecordTooLargeError,
    OffsetsStorageError,
)
from strom.broker.coordinator.offsets_topic import OffsetsTopic
from strom.broker.server import Broker
from strom.protocol.records import MAGIC_OFFSET
from tests.support.brokers import running_strom


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    # The test appends from its own thread while the broker's loop is idle; partitions lock their appends.
    with running_strom(tmp_path, {"offsets.topic.num.partitions": "2"}) as embedded:
        assert embedded.broker is not None
        yield embedded.broker


def test_topic_is_created_on_first_write_compacted_and_internal(broker: Broker) -> None:
    topic = OffsetsTopic(broker)
    assert broker.topics.get(OFFSETS_TOPIC) is None and list(topic.replay()) == []
    topic.append(1, [(b"k1", b"v1"), (b"k2", None)], 1_000)
    info = broker.topics.get(OFFSETS_TOPIC)
    assert info is not None and info.internal and info.partitions == 2
    assert info.configs["cleanup.policy"] == "compact"
    assert list(topic.replay()) == [(b"k1", b"v1"), (b"k2", None)]


def test_replay_is_partition_by_partition_in_offset_order(broker: Broker) -> None:
    topic = OffsetsTopic(broker)
    topic.append(1, [(b"p1-a", b"1")], 1)
    topic.append(0, [(b"p0-a", b"1")], 2)
    topic.append(1, [(b"p1-b", b"2")], 3)
    assert [k for k, _ in topic.replay()] == [b"p0-a", b"p1-a", b"p1-b"]


def test_replay_starts_at_the_log_start_offset(broker: Broker) -> None:
    topic = OffsetsTopic(broker)
    topic.append(0, [(b"old", b"1"), (b"older", b"2")], 1)
    topic.append(0, [(b"new", b"3")], 2)
    partition = broker.partition(OFFSETS_TOPIC, 0)
    assert partition is not None
    partition.delete_records_before(1)
    assert [k for k, _ in topic.replay()] == [b"older", b"new"]


def test_partition_count_stays_the_topics_when_the_setting_changes(tmp_path: Path) -> None:
    with running_strom(tmp_path, {"offsets.topic.num.partitions": "2"}) as first:
        assert first.broker is not None
        OffsetsTopic(first.broker).append(1, [(b"k", b"v")], 1)
    with running_strom(tmp_path, {"offsets.topic.num.partitions": "7"}) as second:
        assert second.broker is not None
        topic = OffsetsTopic(second.broker)
        assert topic.num_partitions == 2  # groups keep their partition: hash(group) % 2
        assert list(topic.replay()) == [(b"k", b"v")]


def test_write_failures_become_storage_errors(broker: Broker) -> None:
    topic = OffsetsTopic(broker)
    topic.append(0, [(b"k", b"v")], 1)
    with pytest.raises(OffsetsRecordTooLargeError):
        topic.append(0, [(b"k", b"x" * 2_000_000)], 2)
    partition = broker.partition(OFFSETS_TOPIC, 0)
    assert partition is not None
    partition.close()
    with pytest.raises(OffsetsStorageError):
        topic.append(0, [(b"k", b"v")], 3)


def test_replay_skips_the_rest_of_a_segment_after_a_damaged_batch_header(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    topic = OffsetsTopic(broker)
    for key in (b"a", b"b", b"c"):
        topic.append(0, [(key, b"1")], 1)
    partition = broker.partition(OFFSETS_TOPIC, 0)
    assert partition is not None
    segment = partition.active_segment
    second = next(position for position, batch in segment.batches() if batch.base_offset == 1)
    with open(segment.log_path, "r+b") as f:  # the magic byte: where the next batch starts is unknown
        f.seek(second + MAGIC_OFFSET)
        f.write(b"\x7f")
    with caplog.at_level(logging.ERROR):
        assert list(topic.replay()) == [(b"a", b"1")]
    assert topic.skipped_batches == 1
    assert f"skipping the rest of {segment.log_path} from position {second}" in caplog.text
