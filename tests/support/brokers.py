"""The brokers tests run against: strom started one way, and both strom and Apache Kafka behind one small
interface that can restart them.

`running_strom` is how every test starts a strom broker of its own: an EmbeddedBroker on a data directory
the test owns (under tmp_path), on a free port of 127.0.0.1, with the Kafka-named config overrides the test
needs and, optionally, its topics created before the test gets the broker. The shared fixtures in
tests/conftest.py (`strom_broker`, `any_broker`, `broker_under_test`) are built on it.

A compatibility scenario only needs the bootstrap address (which may change when strom restarts on a new
free port), a way to restart the broker on the same data, and where a partition's log files live (for
kafka-dump-log): `BrokerUnderTest`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Protocol

from confluent_kafka.admin import AdminClient, NewTopic
from tools.kafka import ApacheKafka

from strom.broker import EmbeddedBroker

# Generous: a loaded CI machine may take long to answer the first admin request.
_CREATE_TIMEOUT_S = 30.0


@contextmanager
def running_strom(
    data_dir: Path, config: Mapping[str, object] | None = None, *, topics: Sequence[NewTopic] = ()
) -> Iterator[EmbeddedBroker]:
    """A strom broker on `data_dir` with `config` (Kafka's dotted names), stopped cleanly on exit.

    `topics` are created through the admin API, as a client would, before the broker is handed over.
    """
    with EmbeddedBroker(data_dir=data_dir, config=dict(config or {})) as broker:
        if topics:
            admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
            futures = admin.create_topics(list(topics), operation_timeout=_CREATE_TIMEOUT_S)
            for future in futures.values():
                future.result(_CREATE_TIMEOUT_S)
        yield broker


class BrokerUnderTest(Protocol):
    name: str

    @property
    def bootstrap_servers(self) -> str: ...

    def restart(self) -> None: ...

    def partition_dir(self, topic: str, partition: int) -> Path: ...


class StromUnderTest:
    """A strom broker on its own data directory; restart() closes it cleanly and reopens that directory."""

    name = "strom"

    def __init__(self, data_dir: Path, config: Mapping[str, object] | None = None) -> None:
        self.data_dir = data_dir
        self.config = dict(config or {})
        self._running = ExitStack()
        self._broker = self._running.enter_context(running_strom(self.data_dir, self.config))

    @property
    def bootstrap_servers(self) -> str:
        return self._broker.bootstrap_servers

    def restart(self) -> None:
        self.close()
        self._broker = self._running.enter_context(running_strom(self.data_dir, self.config))

    def close(self) -> None:
        self._running.close()

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
