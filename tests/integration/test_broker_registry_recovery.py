"""The topic registry and the partition directories disagree: the broker never deletes data on a guess.

A missing `topics.json` is rebuilt from the partition directories; a directory whose topic is not registered
is adopted; only a deletion the registry remembers is finished; a damaged registry stops the start with a
message naming the file and what to do. Each case keeps the records and the committed offsets.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from strom.broker import EmbeddedBroker
from strom.broker.topics import RegistryCorruptError
from strom.protocol.records import BatchBuilder

TIMEOUT = 15
NOW = int(time.time() * 1000)


def _fill(broker: EmbeddedBroker, topic: str, partitions: int, records: int) -> None:
    """Create `topic`, append `records` records to each partition and commit offset 3 for group "g"."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    new = NewTopic(topic, partitions, 1, config={"retention.ms": "-1"})
    admin.create_topics([new])[topic].result(TIMEOUT)
    builder = BatchBuilder()
    for i in range(records):
        builder.append(key=b"k%d" % i, value=b"v", timestamp=NOW)
    batch = builder.build()
    for index in range(partitions):
        broker.call(lambda b, i=index: b.partition(topic, i).append(batch))
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "g"})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    finally:
        consumer.close()


def _committed(broker: EmbeddedBroker, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "g"})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=TIMEOUT)
        offset: int = tp.offset
        return offset
    finally:
        consumer.close()


def _end_offsets(broker: EmbeddedBroker, topic: str) -> list[int]:
    info = broker.call(lambda b: b.topics.get(topic))
    assert info is not None, f"topic {topic} is not registered"
    return [broker.call(lambda b, i=i: b.partition(topic, i).next_offset) for i in range(info.partitions)]


def _edit_registry(data_dir: Path, edit: object) -> None:
    path = data_dir / "topics.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    edit(doc)  # type: ignore[operator]
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_a_missing_registry_is_rebuilt_from_the_partition_directories(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with EmbeddedBroker(data_dir=tmp_path) as broker:
        _fill(broker, "c", 2, 10)
    (tmp_path / "topics.json").unlink()

    with caplog.at_level(logging.WARNING, logger="strom.broker"), EmbeddedBroker(data_dir=tmp_path) as broker:
        assert _end_offsets(broker, "c") == [10, 10]
        assert _committed(broker, "c") == 3
        assert broker.call(lambda b: b.topics.get("__consumer_offsets").internal)
    assert "topics.json is missing" in caplog.text
    assert "adopted topic c (2 partitions)" in caplog.text
    assert "deleting" not in caplog.text

    with EmbeddedBroker(data_dir=tmp_path) as broker:  # the rebuilt registry was written
        assert _end_offsets(broker, "c") == [10, 10]


def test_partition_directories_of_an_unregistered_topic_are_adopted(tmp_path: Path) -> None:
    with EmbeddedBroker(data_dir=tmp_path) as broker:
        _fill(broker, "c", 1, 5)
        _fill(broker, "kept", 1, 2)
        kept_id = broker.call(lambda b: b.topics.get("kept").topic_id)
    _edit_registry(tmp_path, lambda doc: doc["topics"].pop("c"))

    with EmbeddedBroker(data_dir=tmp_path) as broker:
        assert _end_offsets(broker, "c") == [5]
        assert _committed(broker, "c") == 3
        assert broker.call(lambda b: b.topics.get("kept").topic_id) == kept_id


def test_partition_directories_beyond_the_registered_count_are_adopted(tmp_path: Path) -> None:
    # a crash in CreatePartitions between creating the new logs and registering the new count
    with EmbeddedBroker(data_dir=tmp_path) as broker:
        _fill(broker, "c", 3, 4)

    def shrink(doc: dict[str, dict[str, dict[str, int]]]) -> None:
        doc["topics"]["c"]["partitions"] = 1

    _edit_registry(tmp_path, shrink)
    with EmbeddedBroker(data_dir=tmp_path) as broker:
        assert _end_offsets(broker, "c") == [4, 4, 4]


def test_a_deletion_interrupted_by_a_crash_is_finished_and_the_topic_stays_deleted(tmp_path: Path) -> None:
    with EmbeddedBroker(data_dir=tmp_path) as broker:
        _fill(broker, "gone", 2, 3)
        _fill(broker, "kept", 1, 3)

    def interrupted_delete(doc: dict[str, object]) -> None:
        # what DeleteTopics has written when the broker dies before removing the directories
        topics = doc["topics"]
        assert isinstance(topics, dict)
        topics.pop("gone")
        doc["deleting"] = ["gone"]

    _edit_registry(tmp_path, interrupted_delete)
    with EmbeddedBroker(data_dir=tmp_path) as broker:
        assert broker.call(lambda b: b.topics.get("gone")) is None
        assert broker.call(lambda b: b.topics.deleting()) == set()
        assert _end_offsets(broker, "kept") == [3]
    assert not list(tmp_path.glob("gone-*"))
    assert json.loads((tmp_path / "topics.json").read_text(encoding="utf-8"))["deleting"] == []


def test_a_deleted_topic_is_gone_after_a_restart(tmp_path: Path) -> None:
    with EmbeddedBroker(data_dir=tmp_path) as broker:
        _fill(broker, "gone", 1, 3)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        admin.delete_topics(["gone"], operation_timeout=TIMEOUT)["gone"].result(TIMEOUT)
    with EmbeddedBroker(data_dir=tmp_path) as broker:
        assert broker.call(lambda b: b.topics.get("gone")) is None
    assert not list(tmp_path.glob("gone-*"))


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b'{"version": 1, "topics": {', "is not valid JSON"),
        (b"\xff\xfe\x00garbage", "is not UTF-8 text"),
        (b'{"version": 1, "topics": {"c": {"partitions": 1}}}', "KeyError"),
    ],
)
def test_a_damaged_registry_stops_the_start_naming_the_file_and_what_to_do(
    tmp_path: Path, content: bytes, detail: str
) -> None:
    with EmbeddedBroker(data_dir=tmp_path) as broker:
        _fill(broker, "c", 1, 5)
    (tmp_path / "topics.json").write_bytes(content)

    broker = EmbeddedBroker(data_dir=tmp_path)
    with pytest.raises(RegistryCorruptError) as caught:
        broker.start()
    message = str(caught.value)
    assert str(tmp_path / "topics.json") in message
    assert detail in message
    assert "move it out of the data directory to rebuild the registry" in message
    assert list(tmp_path.glob("c-0/*.log"))  # nothing was deleted
    assert (tmp_path / "topics.json").read_bytes() == content
