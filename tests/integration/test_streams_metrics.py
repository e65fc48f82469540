"""strom.streams' Prometheus endpoint on a real broker: the counters move exactly as the records sent say
(process_total = records processed), commits are counted and timed, a restart reports the changelog restore,
store sizes are sampled, the page parses with prometheus_client's own parser, and an address in use fails
start() with a message naming it."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from strom.streams import Materialized, StreamsBuilder, serdes
from strom.streams.app import Streams, StreamsState
from strom.streams.runtime.errors import MetricsListenError
from strom.streams.topology import Topology
from tests.support.streams import BASE_TS, TopicReader, create_topics, produce, streams_config, unique
from tests.support.waiting import wait_until

STORE_KEYS = "kafka_streams_stream_state_metrics_estimate_num_keys"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def count_topology(views: str, out: str) -> Topology:
    builder = StreamsBuilder()
    (
        builder.stream(views, key_serde=serdes.string(), value_serde=serdes.string())
        .group_by_key()
        .count(Materialized.as_("counts").with_caching_disabled())
        .to_stream()
        .to(out, key_serde=serdes.string(), value_serde=serdes.long())
    )
    return builder.build()


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the samples carrying `labels` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def test_endpoint_counts_processed_records_commits_restore_and_store_size(
    strom_broker: str, tmp_path: Path
) -> None:
    views, out, app_id = unique("views"), unique("counts"), unique("metrics")
    create_topics(strom_broker, {views: 1, out: 1})
    keys = [f"user-{i}".encode() for i in range(7)]
    produce(strom_broker, views, [(k, b"/", BASE_TS + i) for i, k in enumerate(keys * 3)])
    extra = {"metrics.listen": "127.0.0.1:0", "default.dsl.store": "in_memory"}
    config = streams_config(strom_broker, app_id, tmp_path, **extra)
    reader = TopicReader(strom_broker, out)

    with Streams(count_topology(views, out), config) as app:
        assert app.wait_for_state(StreamsState.RUNNING, timeout=60) == StreamsState.RUNNING
        assert app.metrics_port is not None
        port = app.metrics_port
        reader.wait_until(lambda records: len(records) == 21)
        thread = "kafka_streams_stream_thread_metrics_"
        wait_until(
            lambda: (
                value(scrape(port), thread + "process_total") == 21
                and value(scrape(port), STORE_KEYS, store="counts") == 7
            ),
            "process_total to reach the 21 records sent and the store to hold 7 keys",
        )
        samples = scrape(port)
        assert value(samples, "kafka_streams_stream_task_metrics_process_total", task_id="0_0") == 21
        assert value(samples, "kafka_streams_stream_task_metrics_enforced_processing_total") == 0
        commits = value(samples, thread + "commit_total")
        assert commits >= 1
        assert value(samples, thread + "commit_latency_seconds_count") == commits
        wait_until(lambda: value(scrape(port), thread + "commit_total") > commits, "another commit")
        assert value(samples, thread + "poll_total") >= 1
    assert app.state == StreamsState.NOT_RUNNING and app.error is None

    # An in-memory store is rebuilt from its changelog on restart: 21 updates of 7 keys, no cache.
    with Streams(count_topology(views, out), config) as app:
        assert app.wait_for_state(StreamsState.RUNNING, timeout=60) == StreamsState.RUNNING
        assert app.metrics_port is not None
        samples = scrape(app.metrics_port)
        labels = {"task_id": "0_0", "store": "counts"}
        task = "kafka_streams_stream_task_metrics_"
        assert value(samples, task + "restore_total", **labels) == 21
        assert value(samples, task + "restore_remaining_records_total", **labels) == 0
        assert value(samples, "kafka_streams_stream_thread_metrics_process_total") == 0


def test_without_metrics_listen_nothing_is_served_but_the_registry_exists(
    strom_broker: str, tmp_path: Path
) -> None:
    views, out = unique("views"), unique("counts")
    create_topics(strom_broker, {views: 1, out: 1})
    app = Streams(count_topology(views, out), streams_config(strom_broker, unique("nometrics"), tmp_path))
    assert app.metrics_port is None
    names = {family.name for family in app.metrics_registry.collect()}
    assert "kafka_streams_stream_thread_metrics_process" in names
    app.close()


def test_a_metrics_address_in_use_fails_start_naming_it(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        config = streams_config(
            "127.0.0.1:1", unique("taken"), tmp_path, **{"metrics.listen": f"127.0.0.1:{port}"}
        )
        app = Streams(count_topology("in", "out"), config)
        with pytest.raises(MetricsListenError, match=f"metrics.listen 127.0.0.1:{port} cannot be served"):
            app.start()
        assert app.state == StreamsState.NOT_RUNNING
