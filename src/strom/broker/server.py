"""The broker: one asyncio Kafka-protocol listener over a data directory of partition logs.

Per connection, requests are read, handled and answered strictly one at a time in arrival order: Kafka's own
model, and what clients rely on (Java rejects a mismatched correlation id; an idempotent producer's pipelined
Produce requests must be appended in the order sent). Clients pipeline by sending ahead; `Connection`
queues what they send and writes the answers in order.

Failures of one connection (garbage, oversized or truncated frames, unknown api keys or versions, a handler
bug) close that connection only; the listener and every other connection carry on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from pathlib import Path

from strom.broker.config import BrokerConfig, ConfigError
from strom.broker.connection import Connection, ConnectionLimits
from strom.broker.coordinator.group import GroupConfig, GroupCoordinator
from strom.broker.coordinator.offsets import OffsetLog
from strom.broker.coordinator.offsets_topic import OffsetsTopic
from strom.broker.dispatch import RawResponse, RequestContext
from strom.broker.errors import StorageError
from strom.broker.handlers import ADVERTISED, HANDLERS
from strom.broker.logs import BrokerLogs
from strom.broker.memory_pool import RequestMemoryPool
from strom.broker.metrics import BrokerMetrics, MetricsEndpoint
from strom.broker.open_files import AcceptFailureLog, raise_open_file_limit, warn_if_low
from strom.broker.producer_ids import ProducerIdAllocator
from strom.broker.topics import REGISTRY_FILE, TopicExistsError, TopicInfo, TopicRegistry
from strom.broker.waiters import AppendWaiters
from strom.log.config import InvalidConfigError, LogConfig
from strom.log.errors import LogStorageError
from strom.log.partition import Partition
from strom.protocol.api_keys import ApiKey
from strom.protocol.codec import api_versions_fallback, decode_request, encode_response, response_header
from strom.protocol.errors import UnsupportedRequest
from strom.protocol.framing import Part, RequestHeader, part_size, size_prefix

log = logging.getLogger("strom.broker")

# How often the group coordinator's deadlines (sessions, rebalances, offset expiry) are checked.
GROUP_TICK_INTERVAL_S = 0.05


class Broker:
    """A single-node Kafka broker bound to one data directory.

    Invariants: the topic registry and the partition logs agree (a topic is registered only after its
    partition logs exist, and its logs are removed only after it is unregistered); every append happens on
    the event loop thread; retention and compaction run on one background thread through the LogManager;
    the group coordinator lives from `start()` (loaded from `__consumer_offsets`) to `stop()` (waiting members
    released), its deadlines checked on the event loop. Requests are routed by `handlers.HANDLERS` and
    counted in `metrics` (this broker's own registry), served at `metrics_listen` from `start()` to `stop()`.
    Survives: any bytes a client sends (its connection is closed), a handler exception (logged, connection
    closed), SIGTERM or `stop()` (logs flushed and closed with a clean-shutdown marker).
    """

    def __init__(
        self,
        data_dir: Path,
        config: BrokerConfig,
        host: str = "127.0.0.1",
        port: int = 9092,
        metrics_listen: tuple[str, int] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.config = config
        self.listen_host = host
        self.listen_port = port
        self.node_id = config.int("node.id")
        self.advertised_host = host
        self.advertised_port = port
        self.waiters = AppendWaiters()
        self.topics: TopicRegistry
        self.producer_ids: ProducerIdAllocator
        self.logs: BrokerLogs
        self.groups: GroupCoordinator
        self._server: asyncio.Server | None = None
        self.connections: set[Connection] = set()
        self.request_pool: RequestMemoryPool  # bytes of received requests, all connections together
        self._group_ticker: asyncio.Task[None] | None = None
        self._accept_failures: AcceptFailureLog | None = None
        self._busy_topics: set[str] = set()
        self.metrics = BrokerMetrics(self)
        self.metrics_endpoint = MetricsEndpoint(self.metrics, *metrics_listen) if metrics_listen else None

    # --- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the data directory, load the groups from `__consumer_offsets`, start accepting connections."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        open_file_limit = raise_open_file_limit()
        self.topics = TopicRegistry(self.data_dir, self.node_id)
        self.producer_ids = ProducerIdAllocator(self.data_dir)
        self._open_logs()
        warn_if_low(open_file_limit, len(self.logs.manager.partitions()))
        try:
            self.groups = GroupCoordinator(
                OffsetLog(OffsetsTopic(self)), GroupConfig.from_broker_config(self.config)
            )
            self.groups.load()
            loop = asyncio.get_running_loop()
            self.request_pool = RequestMemoryPool(self.config.int("queued.max.request.bytes"))
            limits = ConnectionLimits(
                max_request_bytes=self.config.int("socket.request.max.bytes"),
                idle_ms=self.config.int("connections.max.idle.ms"),
                pool=self.request_pool,
            )
            self._accept_failures = AcceptFailureLog(loop)
            self._accept_failures.install()
            if self.metrics_endpoint is not None:
                await self.metrics_endpoint.start()
            self._server = await loop.create_server(
                lambda: Connection(self.handle_frame, self.connections, limits),
                self.listen_host,
                self.listen_port,
                reuse_address=True,
            )
        except BaseException:
            if self._accept_failures is not None:
                self._accept_failures.uninstall()
            if self.metrics_endpoint is not None:
                await self.metrics_endpoint.stop()
            self._close_logs()  # release the data directory (its lock) for a later attempt
            raise
        sock = self._server.sockets[0]
        self.listen_port = sock.getsockname()[1]
        self._set_advertised()
        self._group_ticker = asyncio.create_task(self._tick_groups())
        self._start_maintenance()

    def _set_advertised(self) -> None:
        listeners = self.config.raw("advertised.listeners")
        host, port = self.listen_host, self.listen_port
        if listeners:
            first = listeners.split(",")[0].split("://")[-1]
            adv_host, _, adv_port = first.rpartition(":")
            host, port = adv_host or host, int(adv_port) if adv_port else port
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        self.advertised_host, self.advertised_port = host, port

    async def stop(self) -> None:
        """Stop accepting, end every connection, release waiting group members, then flush and close the
        logs."""
        if self._server is not None:
            self._server.close()
        if self.metrics_endpoint is not None:
            await self.metrics_endpoint.stop()
        connections = list(self.connections)
        for connection in connections:
            connection.close()
        tasks = [c.task for c in connections if c.task is not None]
        if self._group_ticker is not None:
            self._group_ticker.cancel()
            tasks.append(self._group_ticker)
            self._group_ticker = None
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            self.groups.shutdown()
        except Exception:
            log.exception("group coordinator shutdown failed")
        try:
            self._close_logs()
        except (OSError, LogStorageError) as exc:
            raise StorageError(
                f"stopped without a clean shutdown: could not finish writing to {self.data_dir} ({exc}); "
                "acknowledged records are in the logs, and the next start recovers them from the last "
                "checkpoint (free some space first)"
            ) from exc
        finally:
            if self._server is not None:
                await self._server.wait_closed()
                self._server = None
            if self._accept_failures is not None:
                self._accept_failures.uninstall()
                self._accept_failures = None

    async def _tick_groups(self) -> None:
        """Fire the group coordinator's deadlines; a failing tick is logged and the next one runs."""
        while True:
            await asyncio.sleep(GROUP_TICK_INTERVAL_S)
            try:
                self.groups.tick()
            except Exception:
                log.exception("group coordinator tick failed")

    # --- logs and topics --------------------------------------------------------------------------------

    def _open_logs(self) -> None:
        """Open every partition directory, then bring the registry and the directories into agreement
        without deleting anything the user did not ask to delete (see `strom.broker.topics`)."""
        self.logs = BrokerLogs(
            self.data_dir,
            self._log_config_for,
            retention_check_interval_ms=self.config.int("log.retention.check.interval.ms"),
            cleaner_backoff_ms=self.config.int("log.cleaner.backoff.ms"),
        )
        try:
            self._reconcile_topics()
        except BaseException:
            self._close_logs()
            raise

    def _reconcile_topics(self) -> None:
        on_disk = self.logs.on_disk()
        deleting = self.topics.deleting()
        for name in sorted(deleting & on_disk.keys()):
            log.warning("finishing the deletion of topic %s (interrupted by a crash)", name)
            self.logs.delete(name, range(on_disk.pop(name)))
        self.topics.deleted(deleting)
        if self.topics.missing and on_disk:
            log.warning(
                "%s is missing from %s: rebuilding it from %d topics' partition directories",
                REGISTRY_FILE,
                self.data_dir,
                len(on_disk),
            )
        for name, count in sorted(on_disk.items()):
            known = self.topics.get(name)
            if known is not None and known.partitions >= count:
                continue
            topic = self.topics.adopt(name, count)
            if known is None:
                log.warning(
                    "adopted topic %s (%d partitions) from its directories with broker default configs and "
                    "the new topic id %s; set its configs again if it had any",
                    name,
                    count,
                    topic.topic_id,
                )
            else:
                log.warning("topic %s has directories of %d partitions: adopted them", name, count)
        self.logs.ensure((t.name, i) for t in self.topics.all() for i in range(t.partitions))

    def _log_config_for(self, topic: str) -> LogConfig:
        info = self.topics.get(topic)
        return self.topic_log_config(info.configs if info is not None else {})

    def _close_logs(self) -> None:
        """Flush and close the logs."""
        self.logs.close()

    def _start_maintenance(self) -> None:
        """The thread wakes at the shorter of the two intervals; the LogManager runs retention and the
        cleaner each on its own schedule (flush.ms and delayed deletes are checked at every wake-up)."""
        interval_ms = min(
            self.config.int("log.retention.check.interval.ms"), self.config.int("log.cleaner.backoff.ms")
        )
        self.logs.start_maintenance(max(interval_ms, 10) / 1000)

    def validate_topic_configs(self, overrides: dict[str, str]) -> None:
        """Refuse overrides the log would reject (ConfigError naming the key), before anything changes."""
        self.topic_log_config(overrides)

    def topic_log_config(self, overrides: dict[str, str]) -> LogConfig:
        """The effective topic config (overrides over broker defaults), as the log's config object."""
        props = self.config.topic_config(overrides)
        props["producer.id.expiration.ms"] = self.config.raw("producer.id.expiration.ms") or ""
        try:
            return LogConfig.from_properties(props)
        except InvalidConfigError as exc:
            raise ConfigError(str(exc)) from None

    def topic_busy(self, name: str) -> bool:
        """Whether `name` is being created, grown or deleted (partition files being made or removed)."""
        return name in self._busy_topics

    def create_topic(
        self, name: str, partitions: int, configs: dict[str, str], internal: bool = False
    ) -> TopicInfo:
        """Create a topic's partition logs, then register it (the registry is the commit point).

        Synchronous, for small topics (Metadata auto-creation, internal topics at start-up); CreateTopics
        uses `create_topic_async`.
        """
        self._claim(name)
        try:
            self.logs.create(name, range(partitions), self.topic_log_config(configs))
            try:
                return self.topics.create(name, partitions, configs, internal)
            except BaseException:
                self.logs.discard(name, range(partitions))
                raise
        finally:
            self._busy_topics.discard(name)

    async def create_topic_async(self, name: str, partitions: int, configs: dict[str, str]) -> TopicInfo:
        """`create_topic` with the partition files made on a worker thread, so that creating hundreds of
        partitions does not stall every connection; the topic is invisible until it is registered."""
        log_config = self.topic_log_config(configs)
        self._claim(name)
        try:
            await asyncio.to_thread(self.logs.create, name, range(partitions), log_config)
            try:
                return self.topics.create(name, partitions, configs)
            except BaseException:
                await asyncio.to_thread(self.logs.discard, name, range(partitions))
                raise
        finally:
            self._busy_topics.discard(name)

    async def delete_topic_async(self, name: str) -> None:
        """Unregister a topic (it is gone for clients at once), then remove its partition logs on a worker
        thread; tell listeners (the group coordinator drops the topic's committed offsets).

        The unregistration is the commit point: if it cannot be written (StorageError) nothing changed.
        After it, a failure to remove the logs leaves the topic in the registry's `deleting` list, and the
        next start finishes the deletion."""
        self._claim(name)
        try:
            topic = self.topics.delete(name)
            self.groups.on_topic_deleted(name)
            self.metrics.forget_topic(name)
            try:
                await asyncio.to_thread(self.logs.delete, name, range(topic.partitions))
                self.topics.deleted({name})
            except StorageError as exc:
                log.error("topic %s is deleted; its files are removed at the next start: %s", name, exc)
        finally:
            self._busy_topics.discard(name)

    async def add_partitions_async(self, name: str, count: int) -> None:
        """Grow a topic to `count` partitions: new logs first (worker thread), then the registry."""
        topic = self.topics.require(name)
        new = range(topic.partitions, count)
        log_config = self.topic_log_config(topic.configs)
        self._claim(name)
        try:
            await asyncio.to_thread(self.logs.create, name, new, log_config)
            try:
                self.topics.set_partitions(name, count)
            except BaseException:
                await asyncio.to_thread(self.logs.discard, name, new)
                raise
        finally:
            self._busy_topics.discard(name)

    def _claim(self, name: str) -> None:
        if name in self._busy_topics:
            raise TopicExistsError(f"topic {name!r} is being created or deleted; retry shortly")
        self._busy_topics.add(name)

    def alter_topic_configs(self, name: str, overrides: dict[str, str]) -> None:
        """Persist a topic's new overrides and apply them to its open partition logs at once."""
        log_config = self.topic_log_config(overrides)
        topic = self.topics.require(name)
        self.topics.set_configs(name, overrides)
        self.logs.update_config(name, range(topic.partitions), log_config)

    def advertised_versions(self) -> Mapping[int, tuple[int, int]]:
        """api_key -> (min, max) as sent in ApiVersions: the handler table's versions."""
        return ADVERTISED

    def partition(self, topic: str, index: int) -> Partition | None:
        """The open partition log, or None unless the topic is registered (fully created) and has it."""
        info = self.topics.get(topic)
        if info is None or not 0 <= index < info.partitions:
            return None
        return self.logs.get(topic, index)

    def ensure_internal_topic(self, name: str, partitions: int, configs: dict[str, str]) -> TopicInfo:
        """An internal topic, created on first use with `partitions` partitions and the given configs.

        A plain topic of that name (left in a data directory by a client before internal names were
        refused) is adopted only after it is made internal with `configs` applied (e.g. compaction).
        """
        topic = self.topics.get(name)
        if topic is None:
            return self.create_topic(name, partitions, configs, internal=True)
        if not topic.internal or any(topic.configs.get(k) != v for k, v in configs.items()):
            merged = {**topic.configs, **configs}
            log.warning("topic %s was not set up as an internal topic; applying %s", name, configs)
            self.topics.set_internal(name, merged)
            self.logs.update_config(name, range(topic.partitions), self.topic_log_config(merged))
        return self.topics.require(name)

    # --- connections ----------------------------------------------------------------------------------

    async def handle_frame(self, header: RequestHeader, frame: bytes, client_host: str) -> list[Part] | None:
        """Decode a request, run its handler, and return the response frame's parts (None: no response).

        Raises UnsupportedRequest / MalformedRequest / CloseConnection when the connection must close.
        """
        api_key, api_version, correlation_id = header.api_key, header.api_version, header.correlation_id
        spec = HANDLERS.get(api_key)
        if api_key == ApiKey.API_VERSIONS and (spec is None or api_version > spec.max_version):
            return [api_versions_fallback(correlation_id, ADVERTISED)]
        if spec is None or not spec.min_version <= api_version <= spec.max_version:
            raise UnsupportedRequest(api_key, api_version)
        started = time.perf_counter()
        try:
            body = decode_request(header, frame)
            ctx = RequestContext(self, api_key, api_version, correlation_id, header.client_id, client_host)
            response = await spec.handler(ctx, body)
            if response is None:
                return None
            if isinstance(response, RawResponse):
                head = response_header(api_key, api_version, correlation_id)
                size = len(head) + sum(part_size(part) for part in response.parts)
                return [size_prefix(size), head, *response.parts]
            return [encode_response(api_key, api_version, correlation_id, response)]
        finally:
            self.metrics.request_done(api_key, started)
