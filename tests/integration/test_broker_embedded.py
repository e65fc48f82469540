"""EmbeddedBroker: configuration forms, restarts on the same port and data, and refusing unknown keys."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from strom.broker import EmbeddedBroker
from strom.broker.config import BrokerConfig, ConfigError
from strom.broker.server import Broker
from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from tests.support.wire import WireClient

NO_OPS = {"include_topic_authorized_operations": False, "include_cluster_authorized_operations": False}


def _partitions_of_new_topic(bootstrap: str, name: str) -> int:
    with WireClient(bootstrap) as client:
        resp = client.call(
            ApiKey.METADATA, 9, {"topics": [{"name": name}], "allow_auto_topic_creation": True, **NO_OPS}
        )
    return len(resp.topics[0].partitions)


def test_config_as_keywords_and_as_a_mapping() -> None:
    with EmbeddedBroker(num_partitions=3) as b:
        assert b.bootstrap_servers.startswith("127.0.0.1:")
        assert _partitions_of_new_topic(b.bootstrap_servers, "kw") == 3
    with EmbeddedBroker(config={"num.partitions": 5, "auto.create.topics.enable": True}) as b:
        assert _partitions_of_new_topic(b.bootstrap_servers, "mapping") == 5


def test_auto_create_can_be_disabled() -> None:
    with EmbeddedBroker(auto_create_topics_enable=False) as b, WireClient(b.bootstrap_servers) as client:
        resp = client.call(
            ApiKey.METADATA, 9, {"topics": [{"name": "absent"}], "allow_auto_topic_creation": True, **NO_OPS}
        )
    assert resp.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_unknown_or_invalid_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"num\.partition"):
        EmbeddedBroker(num_partition=3)
    with pytest.raises(ConfigError, match=r"socket\.request\.max\.bytes"):
        EmbeddedBroker(socket_request_max_bytes="lots")


def test_restart_keeps_port_and_data(tmp_path: Path) -> None:
    broker = EmbeddedBroker(data_dir=tmp_path)
    with broker:
        before = broker.bootstrap_servers
        _partitions_of_new_topic(before, "kept")
        broker.stop()
        with pytest.raises(RuntimeError, match="not running"):
            _ = broker.bootstrap_servers
        broker.start()
        assert broker.bootstrap_servers == before
        with WireClient(before) as client:
            resp = client.call(
                ApiKey.METADATA, 9, {"topics": None, "allow_auto_topic_creation": False, **NO_OPS}
            )
        assert "kept" in {t.name for t in resp.topics}
    assert (tmp_path / ".kafka_cleanshutdown").exists()


def test_temporary_data_directory_is_removed_on_exit() -> None:
    with EmbeddedBroker() as b:
        data_dir = b.data_dir
        assert data_dir.is_dir()
    assert not data_dir.exists()


def test_a_data_directory_serves_one_broker_at_a_time(tmp_path: Path) -> None:
    with EmbeddedBroker(data_dir=tmp_path), pytest.raises(Exception, match="in use"):
        EmbeddedBroker(data_dir=tmp_path).start()


def test_a_failed_start_releases_the_data_directory(tmp_path: Path) -> None:
    async def start_and_stop(port: int) -> None:
        broker = Broker(tmp_path, BrokerConfig(), "127.0.0.1", port)
        await broker.start()
        await broker.stop()

    # Another broker holds the port, so this one fails to listen after it opened its logs.
    with EmbeddedBroker() as other, pytest.raises(OSError):
        asyncio.run(start_and_stop(other.port))
    asyncio.run(start_and_stop(0))  # the failed start released the data directory's lock
