"""The broker's Prometheus endpoint: counters move as the traffic a test sends says they must, the scrape-time
gauges agree with the logs and the committed offsets, and every broker counts only its own traffic."""

from __future__ import annotations

import signal
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from strom.broker import EmbeddedBroker
from tests.support.cli import start_strom
from tests.support.waiting import wait_until

RECORDS = 200
VALUE = b"v" * 100


def scrape(broker: EmbeddedBroker) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the endpoint, by (sample name, labels)."""
    with urllib.request.urlopen(broker.metrics_url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "none"})
    for i in range(count):
        producer.produce(topic, key=str(i).encode(), value=VALUE)
    assert producer.flush(30) == 0
    del producer  # closes its connections


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(metrics_port=0, num_partitions=1) as b:
        yield b


def test_bytes_and_messages_in_match_what_was_produced(broker: EmbeddedBroker) -> None:
    produce(broker.bootstrap_servers, "orders", RECORDS)
    samples = scrape(broker)
    stored = sample(samples, "kafka_log_log_size", topic="orders", partition="0")
    assert stored > RECORDS * len(VALUE)  # the batches as produced: the log stores them unchanged
    assert sample(samples, "kafka_server_brokertopicmetrics_bytesin_total", topic="orders") == stored
    assert sample(samples, "kafka_server_brokertopicmetrics_messagesin_total", topic="orders") == RECORDS
    assert sample(samples, "kafka_log_log_logendoffset", topic="orders", partition="0") == RECORDS
    assert sample(samples, "kafka_log_log_logstartoffset", topic="orders", partition="0") == 0
    assert sample(samples, "kafka_network_requestmetrics_requests_total", request="PRODUCE") >= 1
    assert sample(samples, "kafka_network_requestmetrics_totaltime_seconds_count", request="PRODUCE") >= 1
    wait_until(  # the producer is gone: the broker notices its connections close
        lambda: sample(scrape(broker), "kafka_server_socketservermetrics_connection_count") == 0,
        "the producer's connections to close",
    )


def test_bytes_out_and_group_lag_follow_fetches_and_commits(broker: EmbeddedBroker) -> None:
    produce(broker.bootstrap_servers, "orders", RECORDS)
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap_servers,
            "group.id": "billing",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition("orders", 0, 0)])
        seen = 0
        while seen < RECORDS:
            message = consumer.poll(10)
            assert message is not None and message.error() is None
            seen += 1
        committed = RECORDS - 3
        consumer.commit(offsets=[TopicPartition("orders", 0, committed)], asynchronous=False)
        samples = scrape(broker)
        assert sample(samples, "kafka_server_socketservermetrics_connection_count") >= 1
    finally:
        consumer.close()
    stored = sample(samples, "kafka_log_log_size", topic="orders", partition="0")
    assert sample(samples, "kafka_server_brokertopicmetrics_bytesout_total", topic="orders") == stored
    group = {"consumergroup": "billing", "topic": "orders", "partition": "0"}
    assert sample(samples, "kafka_consumergroup_current_offset", **group) == committed
    assert sample(samples, "kafka_consumergroup_lag", **group) == RECORDS - committed
    assert sample(samples, "kafka_network_requestmetrics_requests_total", request="OFFSET_COMMIT") == 1


def test_two_brokers_in_one_process_count_separately(broker: EmbeddedBroker) -> None:
    with EmbeddedBroker(metrics_port=0, num_partitions=1) as other:
        produce(broker.bootstrap_servers, "orders", 10)
        produce(other.bootstrap_servers, "orders", 4)
        assert broker.metrics_url != other.metrics_url
        messages_in = "kafka_server_brokertopicmetrics_messagesin_total"
        assert sample(scrape(broker), messages_in, topic="orders") == 10
        assert sample(scrape(other), messages_in, topic="orders") == 4


def test_a_deleted_topic_leaves_the_endpoint(broker: EmbeddedBroker) -> None:
    produce(broker.bootstrap_servers, "orders", 5)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    admin.delete_topics(["orders"])["orders"].result(30)
    names = {(name, dict(labels).get("topic")) for name, labels in scrape(broker)}
    assert ("kafka_server_brokertopicmetrics_messagesin_total", "orders") not in names
    assert ("kafka_log_log_size", "orders") not in names


def test_cleaner_and_retention_counters_account_for_the_bytes_they_removed(tmp_path: Path) -> None:
    config = {"log.retention.check.interval.ms": 50, "log.cleaner.backoff.ms": 50}
    small = {"segment.bytes": "1024", "file.delete.delay.ms": "0"}
    compacted = {**small, "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"}
    with EmbeddedBroker(data_dir=tmp_path, config=config, metrics_port=0) as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        topics = [NewTopic("table", 1, config=compacted), NewTopic("expiring", 1, config=small)]
        for future in admin.create_topics(topics, operation_timeout=10).values():
            future.result(30)
        producer = Producer({"bootstrap.servers": b.bootstrap_servers, "linger.ms": 0, "acks": "all"})
        for i in range(60):  # one batch per record: many segments; ten keys, each rewritten six times
            producer.produce("table", key=b"key-%d" % (i % 10), value=VALUE)
            producer.produce("expiring", key=b"k", value=VALUE)
            producer.flush(10)
        del producer
        expire = ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)
        alter = admin.incremental_alter_configs(
            [ConfigResource("topic", "expiring", incremental_configs=[expire])]
        )
        for future in alter.values():
            future.result(30)

        def removed(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], topic: str) -> float:
            written = sample(samples, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic)
            return written - sample(samples, "kafka_log_log_size", topic=topic, partition="0")

        def accounted() -> bool:
            # Maintenance runs on its own thread, so a scrape can fall between a pass and its count: poll
            # until one scrape shows the work done and counted.
            samples = scrape(b)
            cleaned = sample(samples, "strom_log_cleaner_read_bytes_total") - sample(
                samples, "strom_log_cleaner_written_bytes_total"
            )
            deleted = sample(samples, "strom_log_retention_deleted_bytes_total")
            return (
                sample(samples, "strom_log_retention_deleted_segments_total") >= 1
                and sample(samples, "strom_log_cleaner_passes_total") >= 1
                and cleaned > 0
                and removed(samples, "table") == cleaned
                and removed(samples, "expiring") == deleted
            )

        wait_until(accounted, "the cleaner and retention to run and be counted", timeout=20)
        samples = scrape(b)
        assert 0 < sample(samples, "kafka_log_logcleaner_cleaner_recopy_percent") < 100
        assert sample(samples, "kafka_log_logcleaner_max_clean_time_secs") > 0
        assert sample(samples, "kafka_log_logcleaner_max_buffer_utilization_percent") > 0
        assert sample(samples, "kafka_log_logcleanermanager_uncleanable_partitions_count") == 0
        assert 0 <= sample(samples, "kafka_log_logcleanermanager_max_dirty_percent") <= 100


def test_metrics_are_not_served_unless_asked() -> None:
    with EmbeddedBroker() as b, pytest.raises(RuntimeError, match="metrics_port"):
        _ = b.metrics_url



def test_strom_broker_metrics_listen_serves_the_endpoint(tmp_path: Path) -> None:
    proc = start_strom(
        "broker",
        "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("strom broker ready on ")
        line = proc.stdout.readline().strip()
        prefix = "strom broker metrics on "
        assert line.startswith(prefix) and line.endswith("/metrics"), line
        with urllib.request.urlopen(line[len(prefix) :], timeout=10) as response:
            names = {family.name for family in text_string_to_metric_families(response.read().decode())}
        assert "kafka_server_socketservermetrics_connection_count" in names
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_metrics_address_in_use_is_refused_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = tmp_path / "data"
        proc = start_strom(
            "broker",
            "--data-dir", str(data), "--listen", "127.0.0.1:0", "--metrics-listen", f"127.0.0.1:{port}"
        )
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"127.0.0.1:{port}" in err and "--metrics-listen" in err and "Traceback" not in err
    assert "ready on" not in out
    assert not data.exists()  # nothing left behind by a start that failed


def test_a_restarted_embedded_broker_serves_metrics_on_the_same_port(tmp_path: Path) -> None:
    with EmbeddedBroker(data_dir=tmp_path, metrics_port=0) as b:
        url = b.metrics_url
        b.stop()
        b.start()
        assert b.metrics_url == url
        assert "kafka_server_socketservermetrics_connection_count" in {name for name, _ in scrape(b)}
