"""Which configuration keys a strom broker accepts, warns about or refuses (issue 16's rules)."""

from __future__ import annotations

import pytest

from strom.broker.config import BrokerConfig, ConfigError, KeyPolicy

# The body of Apache Kafka 4's stock config/server.properties (comments dropped).
KAFKA_STOCK_SERVER_PROPERTIES = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.quorum.bootstrap.servers": "localhost:9093",
    "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093",
    "inter.broker.listener.name": "PLAINTEXT",
    "advertised.listeners": "PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
    "controller.listener.names": "CONTROLLER",
    "listener.security.protocol.map": (
        "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
    ),
    "num.network.threads": "3",
    "num.io.threads": "8",
    "socket.send.buffer.bytes": "102400",
    "socket.receive.buffer.bytes": "102400",
    "socket.request.max.bytes": "104857600",
    "log.dirs": "/tmp/kraft-combined-logs",
    "num.partitions": "1",
    "num.recovery.threads.per.data.dir": "1",
    "offsets.topic.replication.factor": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "log.retention.hours": "168",
    "log.segment.bytes": "1073741824",
    "log.retention.check.interval.ms": "300000",
}


def test_kafkas_stock_server_properties_start_with_its_tuning_keys_named_as_ignored() -> None:
    config = BrokerConfig(KAFKA_STOCK_SERVER_PROPERTIES)
    assert config.int("node.id") == 1
    assert "process.roles" in config.ignored and "num.io.threads" in config.ignored
    assert config.unknown == []


def test_a_listener_mapped_to_a_secure_protocol_is_refused() -> None:
    values = {"listeners": "EXTERNAL://:9092", "listener.security.protocol.map": "EXTERNAL:SASL_SSL"}
    with pytest.raises(ConfigError, match="SASL_SSL"):
        BrokerConfig(values, policy=KeyPolicy.LENIENT)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("num.partitions", "abc", "expected an integer (INT)"),
        ("log.retention.ms", "1.5", "expected an integer (LONG)"),
        ("log.cleaner.min.cleanable.ratio", "half", "expected a number (DOUBLE)"),
        ("auto.create.topics.enable", "yes", "expected true or false"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_key_and_the_type(key: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        BrokerConfig({key: value})
    assert str(caught.value) == f"invalid value {value!r} for configuration {key}: {expected}"


def test_unknown_keys_refused_by_default_kept_when_lenient_and_all_refused_when_strict() -> None:
    with pytest.raises(ConfigError, match=r"'bogus\.key'.*--lenient-config"):
        BrokerConfig({"bogus.key": "1"})
    assert BrokerConfig({"bogus.key": "1"}, policy=KeyPolicy.LENIENT).unknown == ["bogus.key"]
    with pytest.raises(ConfigError, match=r"unknown broker configuration 'num\.io\.threads'"):
        BrokerConfig({"num.io.threads": "8"}, strict=True)
