"""The two brokers a compatibility scenario runs against, behind one small interface that can restart them.

A scenario only needs the bootstrap address (which may change when strom restarts on a new free port), a way
to restart the broker on the same data, and where a partition's log files live (for kafka-dump-log).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pytest
from tools.kafka import ApacheKafka


class BrokerUnderTest(Protocol):
    name: str

    @property
    def bootstrap_servers(self) -> str: ...

    def restart(self) -> None: ...

    def partition_dir(self, topic: str, partition: int) -> Path: ...


def embedded_broker_class() -> Any:
    """strom.broker.EmbeddedBroker, failing the test clearly while the broker package does not provide it."""
    try:
        from strom.broker import EmbeddedBroker
    except ImportError as error:
        pytest.fail(f"strom.broker.EmbeddedBroker is not importable yet: {error}", pytrace=False)
    return EmbeddedBroker


class StromUnderTest:
    """An EmbeddedBroker on its own data directory; restart() closes it cleanly and reopens that directory."""

    name = "strom"

    def __init__(self, data_dir: Path, **config: Any) -> None:
        self.data_dir = data_dir
        self.config = config
        self._broker: Any = None
        self._open()

    def _open(self) -> None:
        broker = embedded_broker_class()(data_dir=self.data_dir, **self.config)
        broker.__enter__()
        self._broker = broker

    @property
    def bootstrap_servers(self) -> str:
        address: str = self._broker.bootstrap_servers
        return address

    def restart(self) -> None:
        self.close()
        self._open()

    def close(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            broker.__exit__(None, None, None)

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"


class KafkaUnderTest:
    """The session's Apache Kafka; restart() stops it and starts the same configuration on the same dirs."""

    name = "kafka"

    def __init__(self, kafka: ApacheKafka) -> None:
        self.kafka = kafka

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers

    def restart(self) -> None:
        self.kafka.restart()

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.kafka.data_dir / f"{topic}-{partition}"
