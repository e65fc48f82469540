"""The broker's Prometheus metrics: counters moved by the request path, gauges read at scrape time, and the
`/metrics` HTTP endpoint that serves them.

Names are Kafka's, in the form the Prometheus JMX exporter gives Kafka's MBeans (docs/metrics.md lists
them and says why), so dashboards written for Kafka work unchanged.

Cost: the request path adds to plain ints, once per request (count and latency bucket) and once per
produced or fetched partition (bytes, records), never anything per record (the record count of an append
is its offset span); the ints become Prometheus families only when scraped (`TrafficCollector`). What is
cheap to read from the broker's state (log sizes and offsets, consumer group lag, connections) is not
tracked at all but read when scraped, by `BrokerStateCollector`; what retention and the log cleaner did is
counted by strom.log itself (`MaintenanceStats`, on the maintenance thread) and read when scraped by
`LogMaintenanceCollector`.

Every metric lives in a registry owned by one `BrokerMetrics`, never in prometheus_client's global
default registry: two brokers in one process keep separate counts, and nothing is created at import.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Sized
from itertools import accumulate
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from strom.broker.coordinator.group import GroupCoordinator
from strom.broker.logs import BrokerLogs
from strom.broker.topics import TopicRegistry
from strom.log.partition import Partition
from strom.protocol.api_keys import ApiKey

METRICS_PATH = "/metrics"

# Request latencies in seconds: Kafka's own requests take from tens of microseconds (ApiVersions,
# Heartbeat) to the fetch max wait (500 ms by default) and the group rebalance timeouts (seconds).
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class BrokerState(Protocol):
    """What the scrape-time collector reads of the broker (`strom.broker.server.Broker` provides it)."""

    topics: TopicRegistry
    groups: GroupCoordinator
    logs: BrokerLogs

    @property
    def connections(self) -> Sized: ...

    def partition(self, topic: str, index: int) -> Partition | None: ...


class RequestStats:
    """One API's request count and latency histogram, as plain numbers (bucket `i` counts the requests
    that took at most `LATENCY_BUCKETS[i]` and more than the bucket before; the last one is +Inf)."""

    __slots__ = ("buckets", "seconds")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.seconds = 0.0


class TopicTraffic:
    """One topic's produced and fetched totals."""

    __slots__ = ("bytes_in", "bytes_out", "messages_in")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.messages_in = 0
        self.bytes_out = 0


class BrokerMetrics:
    """What the request path counts, and the registry that serves it with what is read from the broker.

    The request path adds to plain ints (`requests`, `topics`) and nothing else: prometheus_client's own
    Counter and Histogram take a lock per update, which cost about 5 us per Produce request, 4% of its
    throughput. `TrafficCollector` turns the ints into metric families when scraped. Not thread-safe by
    design: the counting and the scrape both run on the broker's event loop thread.
    """

    def __init__(self, broker: BrokerState) -> None:
        self.requests: dict[int, RequestStats] = {}
        self.topics: dict[str, TopicTraffic] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(TrafficCollector(self))
        self.registry.register(BrokerStateCollector(broker))
        self.registry.register(LogMaintenanceCollector(broker))

    def request_done(self, api_key: int, started: float) -> None:
        """Count one request of `api_key` that began at `started` (a `time.perf_counter()` reading)."""
        elapsed = time.perf_counter() - started
        stats = self.requests.get(api_key)
        if stats is None:
            stats = self.requests[api_key] = RequestStats()
        stats.buckets[bisect_left(LATENCY_BUCKETS, elapsed)] += 1
        stats.seconds += elapsed

    def produced(self, topic: str, size: int, records: int) -> None:
        """Count one partition's appended batch bytes and records."""
        traffic = self.topics.get(topic)
        if traffic is None:
            traffic = self.topics[topic] = TopicTraffic()
        traffic.bytes_in += size
        traffic.messages_in += records

    def fetched(self, topic: str, size: int) -> None:
        """Count the record bytes one partition's Fetch answer carries."""
        traffic = self.topics.get(topic)
        if traffic is None:
            traffic = self.topics[topic] = TopicTraffic()
        traffic.bytes_out += size

    def forget_topic(self, topic: str) -> None:
        """Drop a deleted topic's series, as Kafka removes its per-topic metrics on deletion."""
        self.topics.pop(topic, None)

    def exposition(self) -> bytes:
        """The registry in Prometheus's text format (runs the scrape-time collectors)."""
        return generate_latest(self.registry)


class TrafficCollector(Collector):
    """`BrokerMetrics`'s counts as Prometheus counters and histograms, built when scraped."""

    def __init__(self, metrics: BrokerMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        bytes_in, messages_in, bytes_out, requests, latency = families
        for topic, traffic in self._metrics.topics.items():
            bytes_in.add_metric([topic], traffic.bytes_in)
            messages_in.add_metric([topic], traffic.messages_in)
            bytes_out.add_metric([topic], traffic.bytes_out)
        bounds = [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]
        for api_key, stats in self._metrics.requests.items():
            name = ApiKey(api_key).name
            cumulative = list(accumulate(stats.buckets))
            requests.add_metric([name], cumulative[-1])
            latency.add_metric([name], list(zip(bounds, cumulative, strict=True)), stats.seconds)
        return families

    @staticmethod
    def _families() -> tuple[
        CounterMetricFamily,
        CounterMetricFamily,
        CounterMetricFamily,
        CounterMetricFamily,
        HistogramMetricFamily,
    ]:
        topic = ["topic"]
        return (
            CounterMetricFamily(
                "kafka_server_brokertopicmetrics_bytesin",
                "Record batch bytes appended by Produce requests, per topic (Kafka's BytesInPerSec).",
                labels=topic,
            ),
            CounterMetricFamily(
                "kafka_server_brokertopicmetrics_messagesin",
                "Records appended by Produce requests, per topic (Kafka's MessagesInPerSec).",
                labels=topic,
            ),
            CounterMetricFamily(
                "kafka_server_brokertopicmetrics_bytesout",
                "Record batch bytes sent in Fetch responses, per topic (Kafka's BytesOutPerSec).",
                labels=topic,
            ),
            CounterMetricFamily(
                "kafka_network_requestmetrics_requests",
                "Requests handled, per API (Kafka's RequestsPerSec).",
                labels=["request"],
            ),
            HistogramMetricFamily(
                "kafka_network_requestmetrics_totaltime_seconds",
                "Time from a request's decoding to its encoded response, per API (Kafka's TotalTimeMs).",
                labels=["request"],
            ),
        )


class BrokerStateCollector(Collector):
    """Gauges read from the broker's state when scraped: per-partition log sizes and offsets, consumer
    group committed offsets and lag, open connections.

    Lag is Kafka's consumer lag: the partition's log end offset (its high watermark: strom has no
    replicas) less the group's committed offset, never below 0. A scrape runs on the broker's event loop
    (see `MetricsEndpoint`), where the topics, groups and connections change, so it sees them consistent.
    """

    def __init__(self, broker: BrokerState) -> None:
        self._broker = broker

    def describe(self) -> Iterable[Metric]:
        # Names only, without reading state: registering must not touch a broker that is not started.
        return self._families()

    def collect(self) -> Iterable[Metric]:
        broker = self._broker
        size, end, start, committed, lag, connections = self._families()
        connections.add_metric([], len(broker.connections))
        for topic in broker.topics.all():
            for index in range(topic.partitions):
                partition = broker.partition(topic.name, index)
                if partition is None:
                    continue
                labels = [topic.name, str(index)]
                size.add_metric(labels, partition.size_in_bytes)
                end.add_metric(labels, partition.next_offset)
                start.add_metric(labels, partition.log_start_offset)
        for overview in broker.groups.list_groups():
            for topic_name, index, value in broker.groups.fetch_offsets(overview.group_id, None):
                partition = broker.partition(topic_name, index)
                if value is None or partition is None:
                    continue
                labels = [overview.group_id, topic_name, str(index)]
                committed.add_metric(labels, value.offset)
                lag.add_metric(labels, max(0, partition.next_offset - value.offset))
        return [size, end, start, committed, lag, connections]

    @staticmethod
    def _families() -> tuple[
        GaugeMetricFamily,
        GaugeMetricFamily,
        GaugeMetricFamily,
        GaugeMetricFamily,
        GaugeMetricFamily,
        GaugeMetricFamily,
    ]:
        partition = ["topic", "partition"]
        group = ["consumergroup", "topic", "partition"]
        return (
            GaugeMetricFamily("kafka_log_log_size", "Bytes of a partition's segments.", labels=partition),
            GaugeMetricFamily(
                "kafka_log_log_logendoffset", "A partition's log end offset.", labels=partition
            ),
            GaugeMetricFamily(
                "kafka_log_log_logstartoffset", "A partition's log start offset.", labels=partition
            ),
            GaugeMetricFamily(
                "kafka_consumergroup_current_offset",
                "A group's committed offset per partition.",
                labels=group,
            ),
            GaugeMetricFamily(
                "kafka_consumergroup_lag", "Log end offset less the group's committed offset.", labels=group
            ),
            GaugeMetricFamily(
                "kafka_server_socketservermetrics_connection_count", "Open client connections.", labels=[]
            ),
        )


class LogMaintenanceCollector(Collector):
    """Retention's and the log cleaner's progress, read when scraped from the LogManager's
    `MaintenanceStats`: Kafka's LogCleaner and LogCleanerManager gauges, and strom-named totals where Kafka
    has no metric (docs/metrics.md).

    The stats are written by the maintenance thread and read here on the event loop without a lock; each
    value is one int or float, read whole.
    """

    def __init__(self, broker: BrokerState) -> None:
        self._broker = broker

    def describe(self) -> Iterable[Metric]:
        # Names only: the broker's logs do not exist before it starts.
        return self._families()

    def collect(self) -> Iterable[Metric]:
        stats = self._broker.logs.manager.maintenance_stats
        families = self._families()
        values = (
            100 * stats.last_recopy_ratio,
            stats.last_clean_seconds,
            100 * stats.last_buffer_utilization,
            100 * stats.max_dirty_ratio,
            stats.uncleanable_partitions,
            stats.cleaner_passes,
            stats.cleaner_bytes_read,
            stats.cleaner_bytes_written,
            stats.retention_segments_deleted,
            stats.retention_bytes_deleted,
        )
        for family, value in zip(families, values, strict=True):
            family.add_metric([], value)
        return families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily | CounterMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "kafka_log_logcleaner_cleaner_recopy_percent",
                "Bytes written as a percentage of bytes read by the last cleaner cycle that cleaned.",
            ),
            GaugeMetricFamily(
                "kafka_log_logcleaner_max_clean_time_secs",
                "The longest partition pass of the last cleaner cycle that cleaned, in seconds.",
            ),
            GaugeMetricFamily(
                "kafka_log_logcleaner_max_buffer_utilization_percent",
                "The fullest key -> offset map of the last cleaner cycle that cleaned, as a percentage.",
            ),
            GaugeMetricFamily(
                "kafka_log_logcleanermanager_max_dirty_percent",
                "The highest dirty ratio among compacted partitions at the last cleaner cycle, in percent.",
            ),
            GaugeMetricFamily(
                "kafka_log_logcleanermanager_uncleanable_partitions_count",
                "Compacted partitions the cleaner skips because their segments are corrupt.",
            ),
            CounterMetricFamily(
                "strom_log_cleaner_passes", "Partition passes in which the cleaner compacted."
            ),
            CounterMetricFamily("strom_log_cleaner_read_bytes", "Segment bytes the cleaner read to recopy."),
            CounterMetricFamily("strom_log_cleaner_written_bytes", "Segment bytes the cleaner wrote."),
            CounterMetricFamily(
                "strom_log_retention_deleted_segments",
                "Segments deleted by retention (retention.ms, retention.bytes, the log start offset).",
            ),
            CounterMetricFamily(
                "strom_log_retention_deleted_bytes", "Bytes of the segments deleted by retention."
            ),
        )


class MetricsListenError(OSError):
    """The metrics address could not be bound: the errno, and the address to name to the user."""

    def __init__(self, host: str, port: int, exc: OSError) -> None:
        super().__init__(exc.errno, exc.strerror or str(exc))
        self.host, self.port = host, port


class MetricsEndpoint:
    """`GET /metrics` on HOST:PORT, served by aiohttp on the broker's own event loop.

    On the loop rather than on prometheus_client's HTTP thread so that the scrape-time collector reads the
    broker's state from the one thread that changes it. Port 0 binds a free port (`port` tells which).
    Started by `Broker.start()` and stopped by `Broker.stop()`.
    """

    def __init__(self, metrics: BrokerMetrics, host: str, port: int) -> None:
        self._metrics = metrics
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(METRICS_PATH, self._serve)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise MetricsListenError(self.host, self.port, exc) from exc
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
        )
