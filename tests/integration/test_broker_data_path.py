"""Produce, Fetch, ListOffsets, DeleteRecords: real clients for happy paths, exact frames for the rules."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiokafka
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition

from strom.broker import EmbeddedBroker
from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from strom.protocol.records import BatchBuilder, Compression, RecordBatch, iter_batches
from tests.support.brokers import running_strom
from tests.support.wire import WireClient, request_frame

TIMEOUT = 15
# Record timestamps near now: older ones would be removed by retention.ms (7 days) on the next pass.
NOW = int(time.time() * 1000)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    topics = [
        NewTopic("small", 1, 1, config={"max.message.bytes": "2000"}),
        NewTopic("compacted", 1, 1, config={"cleanup.policy": "compact"}),
    ]
    with running_strom(tmp_path_factory.mktemp("data"), {"num.partitions": 1}, topics=topics) as b:
        yield b


def _batch(n: int = 3, *, key: bytes | None = b"k", size: int = 10, ts: int = NOW, **kw: Any) -> bytes:
    builder = BatchBuilder(**kw)
    for i in range(n):
        builder.append(key=key, value=bytes([65 + i % 26]) * size, timestamp=ts + i)
    return builder.build()


def _ensure(client: WireClient, topic: str) -> None:
    """Auto-create `topic` through Metadata, as clients do (Produce itself never creates topics)."""
    client.call(
        ApiKey.METADATA,
        9,
        {
            "topics": [{"name": topic}],
            "allow_auto_topic_creation": True,
            "include_topic_authorized_operations": False,
            "include_cluster_authorized_operations": False,
        },
    )


def _produce(client: WireClient, topic: str, records: bytes, acks: int = -1, partition: int = 0) -> Any:
    return _produce_v(client, 9, topic, records, acks, partition)


def _produce_v(
    client: WireClient, version: int, topic: str, records: bytes, acks: int = -1, partition: int = 0
) -> Any:
    _ensure(client, topic)
    body = {
        "transactional_id": None,
        "acks": acks,
        "timeout": 5000,
        "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": records}]}],
    }
    return client.call(ApiKey.PRODUCE, version, body).responses[0].partition_responses[0]


def _fetch(
    client: WireClient,
    topic: str,
    offset: int,
    *,
    max_wait: int = 0,
    min_bytes: int = 0,
    partition_max: int = 1 << 20,
    max_bytes: int = 50 << 20,
    version: int = 12,
) -> Any:
    body = {
        "max_wait": max_wait,
        "min_bytes": min_bytes,
        "max_bytes": max_bytes,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [
            {
                "topic": topic,
                "partitions": [
                    {
                        "partition": 0,
                        "fetch_offset": offset,
                        "log_start_offset": -1,
                        "partition_max_bytes": partition_max,
                    }
                ],
            }
        ],
        "forgotten_topics_data": [],
        "rack_id": "",
    }
    return client.call(ApiKey.FETCH, version, body).responses[0].partitions[0]


def _list_offset(client: WireClient, topic: str, timestamp: int) -> Any:
    body = {
        "replica_id": -1,
        "isolation_level": 0,
        "topics": [{"name": topic, "partitions": [{"partition_index": 0, "timestamp": timestamp}]}],
    }
    return client.call(ApiKey.LIST_OFFSETS, 7, body).topics[0].partitions[0]


def test_confluent_round_trip_in_every_codec(broker: EmbeddedBroker) -> None:
    topic = "codecs"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic(topic, 3, 1)], operation_timeout=TIMEOUT)[topic].result(TIMEOUT)
    sent = {}
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        producer = Producer(
            {
                "bootstrap.servers": broker.bootstrap_servers,
                "enable.idempotence": True,
                "compression.type": codec,
                "linger.ms": 5,
            }
        )
        for i in range(500):
            key = f"{codec}-{i}".encode()
            producer.produce(topic, key=key, value=key * 5)
            sent[key] = key * 5
        assert producer.flush(TIMEOUT) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": "unused",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    got = {}
    deadline = time.monotonic() + TIMEOUT
    while len(got) < len(sent) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got[msg.key()] = msg.value()
    consumer.close()
    assert got == sent


def test_kafka_python_and_aiokafka_round_trip(broker: EmbeddedBroker) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, compression_type="gzip")
    for i in range(100):
        producer.send("py-clients", key=b"kp%d" % i, value=b"v")
    producer.flush(TIMEOUT)
    producer.close()

    async def aio() -> list[bytes]:
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=True)
        await p.start()
        try:
            for i in range(100):
                await p.send("py-clients", key=b"aio%d" % i, value=b"v")
            await p.flush()
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest")
        await c.start()
        try:
            c.assign([aiokafka.TopicPartition("py-clients", 0)])
            await c.seek_to_beginning()
            keys: list[bytes] = []
            batches = await c.getmany(timeout_ms=5000, max_records=1000)
            while batches and len(keys) < 200:
                keys += [m.key for msgs in batches.values() for m in msgs]
                batches = await c.getmany(timeout_ms=2000, max_records=1000)
            return keys
        finally:
            await c.stop()

    aio_keys = asyncio.run(aio())
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest")
    consumer.assign([KTopicPartition("py-clients", 0)])
    kp_keys: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    while len(kp_keys) < 200 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            kp_keys += [m.key for m in records]
    consumer.close()
    expected = [b"kp%d" % i for i in range(100)] + [b"aio%d" % i for i in range(100)]
    assert kp_keys == expected
    assert aio_keys == expected


def test_produce_error_codes(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        body = {
            "transactional_id": None,
            "acks": 1,
            "timeout": 5000,
            "topic_data": [{"name": "never-created", "partition_data": [{"index": 0, "records": _batch()}]}],
        }
        assert (
            client.call(ApiKey.PRODUCE, 9, body).responses[0].partition_responses[0].error_code
            == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        )
        assert _produce(client, "small", _batch(), acks=2).error_code == ErrorCode.INVALID_REQUIRED_ACKS
        corrupt = bytearray(_batch())
        corrupt[-1] ^= 0xFF
        assert _produce(client, "small", bytes(corrupt)).error_code == ErrorCode.CORRUPT_MESSAGE  # the CRC
        old_magic = bytearray(_batch())
        old_magic[16] = 1
        assert _produce(client, "small", bytes(old_magic)).error_code == ErrorCode.INVALID_RECORD  # as Kafka
        assert _produce(client, "small", _batch(1, size=3000)).error_code == ErrorCode.MESSAGE_TOO_LARGE
        assert _produce(client, "compacted", _batch(key=None)).error_code == ErrorCode.INVALID_RECORD
        truncated = _batch()[:-5]
        assert _produce(client, "small", truncated).error_code == ErrorCode.CORRUPT_MESSAGE
        assert _produce(client, "small", b"").error_code == ErrorCode.INVALID_RECORD
        txn = _batch(producer_id=1, producer_epoch=0, base_sequence=0, is_transactional=True)
        assert _produce(client, "small", txn).error_code == ErrorCode.INVALID_TXN_STATE
        # Produce v3+ carries exactly one batch per partition (Kafka's ProduceRequest.validateRecords).
        assert _produce(client, "small", _batch() + _batch()).error_code == ErrorCode.INVALID_RECORD
        zstd = _batch(compression=Compression.ZSTD)
        before_v7 = _produce_v(client, 6, "small", zstd)
        assert before_v7.error_code == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
        assert _produce_v(client, 7, "zstd-v7", zstd).error_code == ErrorCode.NONE
        # None of the refused batches landed.
        assert _list_offset(client, "small", -1).offset == 0
        assert _list_offset(client, "compacted", -1).offset == 0
        # A valid batch still lands at offset 0.
        assert _produce(client, "small", _batch()).base_offset == 0


def test_idempotent_retry_is_acknowledged_with_its_original_offset(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        pid = client.call(
            ApiKey.INIT_PRODUCER_ID, 4, {"transactional_id": None, "transaction_timeout": 60000}
        ).producer_id
        first = _batch(3, producer_id=pid, producer_epoch=0, base_sequence=0)
        second = _batch(2, producer_id=pid, producer_epoch=0, base_sequence=3)
        assert _produce(client, "idem", first).base_offset == 0
        assert _produce(client, "idem", second).base_offset == 3
        retry = _produce(client, "idem", first)
        assert (retry.error_code, retry.base_offset) == (0, 0)
        assert _list_offset(client, "idem", -1).offset == 5  # nothing appended twice
        gap = _batch(1, producer_id=pid, producer_epoch=0, base_sequence=9)
        assert _produce(client, "idem", gap).error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        other = client.call(
            ApiKey.INIT_PRODUCER_ID, 4, {"transactional_id": None, "transaction_timeout": 60000}
        ).producer_id
        assert other != pid


def test_acks_zero_gets_no_response_but_is_appended(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        body = {
            "transactional_id": None,
            "acks": 0,
            "timeout": 5000,
            "topic_data": [{"name": "fire", "partition_data": [{"index": 0, "records": _batch()}]}],
        }
        client.call(
            ApiKey.METADATA,
            9,
            {
                "topics": [{"name": "fire"}],
                "include_topic_authorized_operations": False,
                "include_cluster_authorized_operations": False,
            },
        )
        client.send(request_frame(ApiKey.PRODUCE, 9, 1000, body))
        # The next response on the connection answers the next request: no response was sent for acks=0.
        assert _list_offset(client, "fire", -1).offset == 3


def test_acks_zero_failure_closes_the_connection(broker: EmbeddedBroker) -> None:
    body = {
        "transactional_id": None,
        "acks": 0,
        "timeout": 5000,
        "topic_data": [{"name": "never-made", "partition_data": [{"index": 0, "records": _batch()}]}],
    }
    with WireClient(broker.bootstrap_servers) as client:
        client.send(request_frame(ApiKey.PRODUCE, 9, 1, body))
        assert client.is_closed_by_peer()


def test_fetch_returns_whole_batches_and_respects_byte_limits(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        for _ in range(4):
            _produce(client, "limits", _batch(5, size=200))  # ~1 KiB per batch, offsets 0..19
        whole = _fetch(client, "limits", 0)
        assert [b.base_offset for b in iter_batches(bytes(whole.records))] == [0, 5, 10, 15]
        # From the middle of a batch: the batch holding the offset comes back whole.
        mid = _fetch(client, "limits", 7)
        assert next(iter_batches(bytes(mid.records))).base_offset == 5
        # A partition limit smaller than one batch still returns that first batch (KIP-74).
        tiny = _fetch(client, "limits", 0, partition_max=10)
        batches = list(iter_batches(bytes(tiny.records)))
        assert len(batches) == 1 and batches[0].record_count == 5
        # Two batches' worth of limit gives two batches (the response may end in a partial batch).
        two = RecordBatch(bytes(whole.records)).size_in_bytes * 2
        limited = bytes(_fetch(client, "limits", 0, partition_max=two).records)
        assert len(limited) == two
        assert whole.high_watermark == 20 and whole.last_stable_offset == 20
        assert _fetch(client, "limits", 21).error_code == ErrorCode.OFFSET_OUT_OF_RANGE
        assert _fetch(client, "limits", 20).records == b""  # at the end: empty, not an error


def test_request_max_bytes_spans_partitions(broker: EmbeddedBroker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.create_topics([NewTopic("two-parts", 2, 1)], operation_timeout=TIMEOUT)["two-parts"].result(TIMEOUT)
    with WireClient(broker.bootstrap_servers) as client:
        for partition in (0, 1):
            for _ in range(3):
                _produce(client, "two-parts", _batch(5, size=200), partition=partition)
        body = {
            "max_wait": 0,
            "min_bytes": 0,
            "max_bytes": 10,  # less than one batch
            "isolation_level": 0,
            "session_id": 0,
            "session_epoch": -1,
            "topics": [
                {
                    "topic": "two-parts",
                    "partitions": [
                        {
                            "partition": p,
                            "fetch_offset": 0,
                            "log_start_offset": -1,
                            "partition_max_bytes": 1 << 20,
                        }
                        for p in (0, 1)
                    ],
                }
            ],
            "forgotten_topics_data": [],
            "rack_id": "",
        }
        first, second = client.call(ApiKey.FETCH, 12, body).responses[0].partitions
    # The response's first batch comes whole (KIP-74); nothing is left for the second partition.
    assert [b.record_count for b in iter_batches(bytes(first.records))] == [5]
    assert (second.error_code, second.records, second.high_watermark) == (0, b"", 15)


@pytest.mark.parametrize("version", [4, 7, 11, 12])
def test_fetch_versions_decode(broker: EmbeddedBroker, version: int) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        _produce(client, f"fv{version}", _batch(2))
        part = _fetch(client, f"fv{version}", 0, version=version)
    assert part.error_code == ErrorCode.NONE
    assert [b.base_offset for b in iter_batches(bytes(part.records))] == [0]


def test_long_poll_fetch_is_woken_by_an_append(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as setup:
        _produce(setup, "poll", _batch(1))
    result: dict[str, Any] = {}

    def fetcher() -> None:
        with WireClient(broker.bootstrap_servers, timeout=60) as client:
            started = time.monotonic()
            result["part"] = _fetch(client, "poll", 1, max_wait=30_000, min_bytes=1)
            result["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=fetcher)
    thread.start()
    with WireClient(broker.bootstrap_servers) as producer:
        _produce(producer, "poll", _batch(2))
    thread.join(60)
    assert [b.base_offset for b in iter_batches(bytes(result["part"].records))] == [1]
    assert result["elapsed"] < 20  # woken by the append, not by max_wait (30 s)


def test_fetch_max_wait_expires_without_data(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        _produce(client, "quiet", _batch(1))
        part = _fetch(client, "quiet", 1, max_wait=200, min_bytes=1)
    assert part.error_code == ErrorCode.NONE and part.records == b""


def test_list_offsets_earliest_latest_timestamp_and_max(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        _produce(client, "times", _batch(3, ts=NOW))  # offsets 0-2, timestamps NOW..NOW+2
        _produce(client, "times", _batch(3, ts=NOW + 5000))  # offsets 3-5
        _produce(client, "times", _batch(1, ts=NOW + 2000))  # offset 6
        assert _list_offset(client, "times", -2).offset == 0
        assert _list_offset(client, "times", -1).offset == 7
        assert _list_offset(client, "times", NOW + 1).offset == 1
        assert _list_offset(client, "times", NOW + 3000).offset == 3
        found = _list_offset(client, "times", NOW + 99_999)
        assert (found.offset, found.timestamp) == (-1, -1)
        top = _list_offset(client, "times", -3)
        assert (top.offset, top.timestamp) == (5, NOW + 5002)


def test_delete_records_moves_the_log_start(broker: EmbeddedBroker) -> None:
    with WireClient(broker.bootstrap_servers) as client:
        for _ in range(3):
            _produce(client, "purge", _batch(4))
        body = {
            "topics": [{"name": "purge", "partitions": [{"partition_index": 0, "offset": 6}]}],
            "timeout": 5000,
        }
        result = client.call(ApiKey.DELETE_RECORDS, 1, body).topics[0].partitions[0]
        assert (result.error_code, result.low_watermark) == (0, 6)
        assert _list_offset(client, "purge", -2).offset == 6
        assert _fetch(client, "purge", 2).error_code == ErrorCode.OFFSET_OUT_OF_RANGE
        body["topics"][0]["partitions"][0]["offset"] = 99  # type: ignore[index]
        assert (
            client.call(ApiKey.DELETE_RECORDS, 1, body).topics[0].partitions[0].error_code
            == ErrorCode.OFFSET_OUT_OF_RANGE
        )


def test_data_survives_a_restart(tmp_path: Path) -> None:
    with running_strom(tmp_path) as b:
        with WireClient(b.bootstrap_servers) as client:
            for i in range(5):
                _produce(client, "durable", _batch(10, ts=NOW + i, compression=Compression.ZSTD))
        b.stop()
        b.start()
        with WireClient(b.bootstrap_servers) as client:
            assert _list_offset(client, "durable", -1).offset == 50
            records = bytes(_fetch(client, "durable", 0).records)
    assert [batch.base_offset for batch in iter_batches(records)] == [0, 10, 20, 30, 40]
    assert struct.unpack_from(">q", records)[0] == 0
