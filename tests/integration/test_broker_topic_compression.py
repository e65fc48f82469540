"""Topic `compression.type`: batches are stored with the topic's codec whatever the producer sent (real
clients produce and consume; the stored batches are read back with a raw Fetch to see their codec)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

import strom.log.validator as validator
import strom.protocol.records as records
from strom.broker import EmbeddedBroker
from strom.protocol.api_keys import ApiKey
from strom.protocol.compression import Compression
from strom.protocol.records import BatchBuilder, iter_batches
from tests.support.brokers import running_strom
from tests.support.wire import WireClient

TIMEOUT = 15


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with running_strom(tmp_path_factory.mktemp("compression")) as b:
        yield b


def _create(bootstrap: str, topic: str, compression_type: str | None, partitions: int = 1) -> None:
    configs = {} if compression_type is None else {"compression.type": compression_type}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1, config=configs)])[topic].result(TIMEOUT)


def _produce(bootstrap: str, topic: str, codec: str, keys: list[bytes], idempotent: bool = False) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "linger.ms": 20,
            "enable.idempotence": idempotent,
        }
    )
    for key in keys:
        producer.produce(topic, key=key, value=key * 20, headers=[("h", key)])
    assert producer.flush(TIMEOUT) == 0


def _consume(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < count and time.monotonic() < deadline:
        for msg in consumer.consume(count, timeout=0.5):
            if msg.error() is None:
                got.append((msg.key(), msg.value(), msg.headers()))
    consumer.close()
    return got


def _stored_codecs(bootstrap: str, topic: str) -> list[Compression]:
    body = {
        "max_wait": 0,
        "min_bytes": 0,
        "max_bytes": 50 << 20,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [
            {
                "topic": topic,
                "partitions": [
                    {
                        "partition": 0,
                        "fetch_offset": 0,
                        "log_start_offset": -1,
                        "partition_max_bytes": 50 << 20,
                    }
                ],
            }
        ],
        "forgotten_topics_data": [],
        "rack_id": "",
    }
    with WireClient(bootstrap) as client:
        records = client.call(ApiKey.FETCH, 12, body).responses[0].partitions[0].records
    batches = list(iter_batches(records))
    for batch in batches:
        batch.validate()  # the rewritten batch carries a correct CRC
    return [batch.compression for batch in batches]


@pytest.mark.parametrize(
    ("topic_codec", "producer_codec", "stored"),
    [
        ("gzip", "none", Compression.GZIP),
        ("lz4", "gzip", Compression.LZ4),
        ("zstd", "snappy", Compression.ZSTD),
        ("snappy", "zstd", Compression.SNAPPY),
        ("uncompressed", "lz4", Compression.NONE),
        ("producer", "lz4", Compression.LZ4),
        ("gzip", "gzip", Compression.GZIP),
    ],
)
def test_batches_are_stored_with_the_topic_codec(
    broker: EmbeddedBroker, topic_codec: str, producer_codec: str, stored: Compression
) -> None:
    topic = f"{topic_codec}-from-{producer_codec}"
    bootstrap = broker.bootstrap_servers
    _create(bootstrap, topic, topic_codec)
    keys = [b"key-%d" % i for i in range(300)]
    _produce(bootstrap, topic, producer_codec, keys)
    got = _consume(bootstrap, topic, len(keys))
    assert got == [(k, k * 20, [("h", k)]) for k in keys]
    codecs = _stored_codecs(bootstrap, topic)
    assert codecs and set(codecs) == {stored}


def test_idempotent_producer_into_a_recompressing_topic(broker: EmbeddedBroker) -> None:
    bootstrap = broker.bootstrap_servers
    _create(bootstrap, "idempotent-zstd", "zstd")
    keys = [b"id-%d" % i for i in range(2000)]
    _produce(bootstrap, "idempotent-zstd", "gzip", keys, idempotent=True)
    assert [k for k, _, _ in _consume(bootstrap, "idempotent-zstd", len(keys))] == keys
    assert set(_stored_codecs(bootstrap, "idempotent-zstd")) == {Compression.ZSTD}


def test_compression_type_follows_the_broker_default_and_alter_configs(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with running_strom(tmp_path_factory.mktemp("lz4-broker"), {"compression.type": "lz4"}) as b:
        bootstrap = b.bootstrap_servers
        _create(bootstrap, "inherits", None)
        first, second = [b"a%d" % i for i in range(50)], [b"b%d" % i for i in range(50)]
        _produce(bootstrap, "inherits", "none", first)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        resource = ConfigResource(
            ConfigResource.Type.TOPIC,
            "inherits",
            incremental_configs=[
                ConfigEntry("compression.type", "producer", incremental_operation=AlterConfigOpType.SET)
            ],
        )
        admin.incremental_alter_configs([resource])[resource].result(TIMEOUT)
        _produce(bootstrap, "inherits", "gzip", second)  # stored as sent from now on
        assert _stored_codecs(bootstrap, "inherits") == [Compression.LZ4, Compression.GZIP]
        assert [k for k, _, _ in _consume(bootstrap, "inherits", 100)] == first + second


def test_unknown_compression_type_is_refused(broker: EmbeddedBroker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    future = admin.create_topics([NewTopic("brotli", 1, 1, config={"compression.type": "brotli"})])["brotli"]
    with pytest.raises(KafkaException) as info:
        future.result(TIMEOUT)
    assert info.value.args[0].name() == "INVALID_CONFIG"


def _counted(calls: Counter[tuple[str, int]], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, counting its calls per thread (the broker's maintenance thread may check CRCs meanwhile)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[name, threading.get_ident()] += 1
        return fn(*args, **kwargs)

    return wrapper


def test_a_produce_into_a_recompressing_topic_walks_each_batch_once_with_one_crc_check(
    broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(broker.bootstrap_servers, "counted-gzip", "gzip", partitions=3)
    payloads = []
    for index in range(3):
        builder = BatchBuilder()
        for i in range(20):
            builder.append(b"key-%d" % i, b"value-%d" % i * 10, int(time.time() * 1000))
        payloads.append({"index": index, "records": builder.build()})
    body = {
        "transactional_id": None,
        "acks": -1,
        "timeout": 5000,
        "topic_data": [{"name": "counted-gzip", "partition_data": payloads}],
    }
    calls: Counter[tuple[str, int]] = Counter()
    monkeypatch.setattr(validator, "walk_batches", _counted(calls, "walk", validator.walk_batches))
    monkeypatch.setattr(records, "iter_batches", _counted(calls, "iter", records.iter_batches))
    monkeypatch.setattr(records, "crc32c", _counted(calls, "crc", records.crc32c))
    with WireClient(broker.bootstrap_servers) as client:
        response = client.call(0, 9, body).responses[0].partition_responses
    monkeypatch.undo()
    assert [p.error_code for p in response] == [0, 0, 0]
    (loop,) = {thread for name, thread in calls if name == "walk"}
    # Per partition: one walk over its batch headers, one CRC check of the batch as received and one CRC
    # written for the batch rebuilt with gzip.
    assert (calls["walk", loop], calls["iter", loop], calls["crc", loop]) == (3, 0, 6)
    assert set(_stored_codecs(broker.bootstrap_servers, "counted-gzip")) == {Compression.GZIP}
