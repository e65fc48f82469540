"""Damage in `__consumer_offsets` neither stops the broker nor silently changes a committed offset.

As Kafka's coordinator loader, the broker skips a batch it cannot read with a logged error naming the file
and position, and starts. CRCs are checked on load, so a flipped byte drops its commit (the group falls
back to the commit before) instead of becoming another offset.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from crc32c import crc32c

from strom.broker import EmbeddedBroker
from strom.protocol.records import ATTRIBUTES_OFFSET, CRC_OFFSET, RECORDS_COUNT_OFFSET, iter_batches

TIMEOUT = 15
SEGMENT = Path("__consumer_offsets-0") / "00000000000000000000.log"


def _consumer(broker: EmbeddedBroker) -> Consumer:
    return Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "g"})


def _commit_each(data_dir: Path, offsets: list[int]) -> None:
    """One commit (one batch in `__consumer_offsets`) per offset, for partition orders-0."""
    with EmbeddedBroker(data_dir=data_dir) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        admin.create_topics([NewTopic("orders", 1, 1)])["orders"].result(TIMEOUT)
        consumer = _consumer(broker)
        try:
            for offset in offsets:
                consumer.commit(offsets=[TopicPartition("orders", 0, offset)], asynchronous=False)
        finally:
            consumer.close()


def _committed(broker: EmbeddedBroker) -> int:
    consumer = _consumer(broker)
    try:
        (tp,) = consumer.committed([TopicPartition("orders", 0)], timeout=TIMEOUT)
        offset: int = tp.offset
        return offset
    finally:
        consumer.close()


def _batch_positions(data: bytes) -> list[int]:
    positions, pos = [], 0
    for batch in iter_batches(data):
        positions.append(pos)
        pos += batch.size_in_bytes
    return positions


def test_a_batch_with_a_negative_record_count_is_skipped_and_the_broker_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _commit_each(tmp_path, [5, 7, 9])
    path = tmp_path / SEGMENT
    data = bytearray(path.read_bytes())
    second = _batch_positions(bytes(data))[1]
    # a batch whose header lies about its record count but whose CRC matches (written so by a bug)
    struct.pack_into(">i", data, second + RECORDS_COUNT_OFFSET, -1)
    crc = crc32c(memoryview(data)[second + ATTRIBUTES_OFFSET : _batch_positions(bytes(data))[2]])
    struct.pack_into(">I", data, second + CRC_OFFSET, crc)
    path.write_bytes(bytes(data))

    with caplog.at_level(logging.ERROR), EmbeddedBroker(data_dir=tmp_path) as broker:
        assert _committed(broker) == 9
    assert f"skipping a damaged batch in {path} at position {second}" in caplog.text


def test_a_flipped_byte_does_not_change_a_committed_offset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _commit_each(tmp_path, [5, 7])
    path = tmp_path / SEGMENT
    data = bytearray(path.read_bytes())
    last = _batch_positions(bytes(data))[-1]
    # the committed offset is the int64 right after the value's version field; flip its lowest byte
    value_at = bytes(data).rindex(struct.pack(">hq", 3, 7), last)
    data[value_at + 2 + 7] ^= 0x04  # 7 -> 3
    path.write_bytes(bytes(data))

    with caplog.at_level(logging.ERROR), EmbeddedBroker(data_dir=tmp_path) as broker:
        assert _committed(broker) == 5  # the damaged commit is dropped, never read as offset 3
    assert f"skipping a damaged batch in {path} at position {last}" in caplog.text
    assert "CRC" in caplog.text or "crc" in caplog.text
