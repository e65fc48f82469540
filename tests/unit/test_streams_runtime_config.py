"""Streams config validation: Kafka Streams keys and defaults, clear errors for bad or unsupported values."""

from __future__ import annotations

from pathlib import Path

import pytest

from strom.streams.runtime.config import StreamsConfig
from strom.streams.runtime.errors import StreamsConfigError

BASE = {"application.id": "orders-app", "bootstrap.servers": "127.0.0.1:9092"}


def test_defaults_follow_kafka_streams(tmp_path: Path) -> None:
    config = StreamsConfig.parse({**BASE, "state.dir": str(tmp_path)})
    assert config.commit_interval_ms == 30000
    assert config.cache_max_bytes == 10 * 1024 * 1024
    assert config.state_dir == tmp_path
    assert config.replication_factor == -1
    assert config.max_task_idle_ms == 0
    assert config.buffered_records_per_partition == 1000


def test_string_values_from_properties_files_are_accepted() -> None:
    config = StreamsConfig.parse({**BASE, "commit.interval.ms": "250", "statestore.cache.max.bytes": "0"})
    assert config.commit_interval_ms == 250
    assert config.cache_max_bytes == 0


@pytest.mark.parametrize("missing", ["application.id", "bootstrap.servers"])
def test_missing_required_key_is_named(missing: str) -> None:
    config = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(StreamsConfigError, match=f"missing required config '{missing}'"):
        StreamsConfig.parse(config)


def test_application_id_with_illegal_topic_characters_is_rejected() -> None:
    with pytest.raises(StreamsConfigError, match=r"application.id 'orders app' is invalid"):
        StreamsConfig.parse({**BASE, "application.id": "orders app"})


def test_exactly_once_v2_is_rejected_with_the_supported_alternative() -> None:
    with pytest.raises(StreamsConfigError, match=r"exactly_once_v2' is not supported yet.*at_least_once"):
        StreamsConfig.parse({**BASE, "processing.guarantee": "exactly_once_v2"})


def test_unknown_processing_guarantee_lists_allowed_values() -> None:
    with pytest.raises(StreamsConfigError, match="'at_most_once' is invalid; allowed: 'at_least_once'"):
        StreamsConfig.parse({**BASE, "processing.guarantee": "at_most_once"})


def test_standby_replicas_other_than_zero_are_rejected() -> None:
    with pytest.raises(StreamsConfigError, match=r"num.standby.replicas=1 is not supported yet"):
        StreamsConfig.parse({**BASE, "num.standby.replicas": 1})
    assert StreamsConfig.parse({**BASE, "num.standby.replicas": 0}).application_id == "orders-app"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("commit.interval.ms", -1, "must be >= 0, got -1"),
        ("commit.interval.ms", "soon", "must be an integer, got 'soon'"),
        ("cache.max.bytes", 1.5, "must be an integer, got 1.5"),
        ("commit.interval.ms", True, "must be an integer, got True"),
        ("replication.factor", 0, "must be -1 .* or >= 1, got 0"),
        ("max.task.idle.ms", -2, "must be >= -1, got -2"),
        ("buffered.records.per.partition", 0, "must be >= 1, got 0"),
    ],
)
def test_malformed_numbers_name_key_and_value(key: str, value: object, message: str) -> None:
    with pytest.raises(StreamsConfigError, match=f"{key}.*{message}"):
        StreamsConfig.parse({**BASE, key: value})


def test_both_cache_keys_at_once_is_ambiguous() -> None:
    with pytest.raises(StreamsConfigError, match=r"only one of cache.max.bytes and statestore"):
        StreamsConfig.parse({**BASE, "cache.max.bytes": 1, "statestore.cache.max.bytes": 2})


def test_client_prefixes_override_derived_client_configs() -> None:
    config = StreamsConfig.parse({**BASE, "consumer.session.timeout.ms": 6000, "producer.linger.ms": 1})
    consumer = config.main_consumer("t1")
    assert consumer["session.timeout.ms"] == 6000
    assert consumer["group.id"] == "orders-app"
    assert consumer["partition.assignment.strategy"] == "range"
    assert consumer["enable.auto.commit"] is False
    producer = config.producer("t1")
    assert producer["linger.ms"] == 1
    assert producer["partitioner"] == "murmur2_random"


def test_metrics_listen_is_host_and_port_and_off_by_default() -> None:
    assert StreamsConfig.parse(BASE).metrics_listen is None
    assert StreamsConfig.parse({**BASE, "metrics.listen": "0.0.0.0:9464"}).metrics_listen == ("0.0.0.0", 9464)
    assert StreamsConfig.parse({**BASE, "metrics.listen": "[::1]:0"}).metrics_listen == ("::1", 0)


@pytest.mark.parametrize("value", ["9464", "localhost:", ":9464", "localhost:http", "localhost:70000"])
def test_malformed_metrics_listen_names_the_key_and_the_form(value: str) -> None:
    with pytest.raises(StreamsConfigError, match=r"'metrics.listen' must be HOST:PORT"):
        StreamsConfig.parse({**BASE, "metrics.listen": value})
