"""Shared fixtures, and the rule for missing peers.

Tests that need a real peer (Java, Go, kcat) skip locally when it is missing, but fail under CI=true: the
compatibility suite must never pass by skipping. tools/ raises PeerUnavailable; this file applies the rule.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from tools.kafka import ApacheKafka, require_kafka, start_apache_kafka
from tools.peers import PeerUnavailable

from tests.support.brokers import BrokerUnderTest, KafkaUnderTest, StromUnderTest, running_strom


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test stopped by PeerUnavailable is reported as skipped, except under CI=true where it fails."""
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(PeerUnavailable) and not in_ci():
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {call.excinfo.value}")
    return report


@pytest.fixture(scope="session")
def apache_kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    """One Apache Kafka (KRaft, one node) for the whole session; started on first use, stopped at the end."""
    require_kafka()
    kafka = start_apache_kafka(tmp_path_factory.mktemp("apache-kafka"))
    yield kafka
    kafka.stop()


@pytest.fixture(scope="session")
def apache_kafka(apache_kafka_server: ApacheKafka) -> str:
    """Bootstrap address of the session's Apache Kafka."""
    return apache_kafka_server.bootstrap_servers


@pytest.fixture(scope="session")
def strom_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of one strom EmbeddedBroker shared by the session."""
    with running_strom(tmp_path_factory.mktemp("strom-broker")) as broker:
        yield broker.bootstrap_servers


@pytest.fixture(params=["strom", pytest.param("kafka", marks=pytest.mark.kafka)])
def any_broker(request: pytest.FixtureRequest) -> str:
    """Bootstrap address of strom, then of Apache Kafka: a test using it runs against both."""
    fixture = "strom_broker" if request.param == "strom" else "apache_kafka"
    address: str = request.getfixturevalue(fixture)
    return address


@pytest.fixture
def strom_under_test(tmp_path: Path) -> Iterator[StromUnderTest]:
    """A strom broker of this test's own, on tmp_path, that the test may restart."""
    broker = StromUnderTest(tmp_path / "strom-data")
    yield broker
    broker.close()


@pytest.fixture
def kafka_under_test(apache_kafka_server: ApacheKafka) -> KafkaUnderTest:
    """The session's Apache Kafka behind the restartable interface (a restart keeps its address)."""
    return KafkaUnderTest(apache_kafka_server)


@pytest.fixture(params=["strom", pytest.param("kafka", marks=pytest.mark.kafka)])
def broker_under_test(request: pytest.FixtureRequest) -> BrokerUnderTest:
    """strom, then Apache Kafka, each restartable: for scenarios that restart the broker mid-way."""
    fixture = "strom_under_test" if request.param == "strom" else "kafka_under_test"
    broker: BrokerUnderTest = request.getfixturevalue(fixture)
    return broker
