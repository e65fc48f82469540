"""Validated Streams configuration: Kafka Streams' key names, defaults and limits, and the client configs
derived from it.

Keys follow Kafka Streams so users' knowledge carries over. Values may be given as Python values or as the
strings a properties file holds ("30000"). Keys prefixed `consumer.`, `producer.` or `admin.` are passed to
that client as-is (the prefix removed), like Kafka Streams' client prefixes. Keys the runtime does not know
are kept for the processing core (serdes, handlers, store backend) and passed to every task.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strom.streams.runtime.errors import StreamsConfigError

log = logging.getLogger(__name__)

AT_LEAST_ONCE = "at_least_once"
EXACTLY_ONCE_V2 = "exactly_once_v2"

_APP_ID_RE = re.compile(r"^[a-zA-Z0-9._-]+$")
_CLIENT_PREFIXES = ("consumer.", "producer.", "admin.")

# Keys read by the processing core (task, serdes, stores); accepted here so no warning is logged for them.
_CORE_KEYS = frozenset(
    {
        "default.deserialization.exception.handler",
        "errors.deadletterqueue.topic.name",
        "default.dsl.store",
        "statestore.cache.max.bytes",
        "default.key.serde",
        "default.value.serde",
        "windowstore.changelog.additional.retention.ms",
        "topology.optimization",
        "default.timestamp.extractor",
    }
)
_RUNTIME_KEYS = frozenset(
    {
        "application.id",
        "bootstrap.servers",
        "state.dir",
        "commit.interval.ms",
        "cache.max.bytes",
        "cache.max.bytes.buffering",
        "num.standby.replicas",
        "num.stream.threads",
        "processing.guarantee",
        "replication.factor",
        "poll.ms",
        "client.id",
        "restore.batch.records",
        "repartition.purge.interval.ms",
        "max.task.idle.ms",
        "buffered.records.per.partition",
        "metrics.listen",
    }
)


@dataclass(frozen=True)
class StreamsConfig:
    """The runtime's view of a Streams config; built only by `StreamsConfig.parse`, so every field is
    valid."""

    application_id: str
    bootstrap_servers: str
    state_dir: Path
    commit_interval_ms: int
    cache_max_bytes: int
    replication_factor: int
    poll_ms: int
    client_id: str
    restore_batch_records: int
    repartition_purge_interval_ms: int
    max_task_idle_ms: int
    buffered_records_per_partition: int
    metrics_listen: tuple[str, int] | None
    originals: dict[str, Any] = field(repr=False)
    consumer_overrides: dict[str, Any] = field(repr=False)
    producer_overrides: dict[str, Any] = field(repr=False)
    admin_overrides: dict[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> StreamsConfig:
        """Validate `config`; raise StreamsConfigError naming the key, the value and what is allowed."""
        if not isinstance(config, Mapping):
            raise StreamsConfigError(
                f"Streams config must be a mapping of Kafka Streams keys, got {type(config)!r}"
            )
        for key in config:
            if not isinstance(key, str):
                raise StreamsConfigError(f"config keys must be strings, got {key!r}")
        app_id = _required_str(config, "application.id")
        if not _APP_ID_RE.match(app_id) or len(app_id) > 200:
            raise StreamsConfigError(
                f"application.id {app_id!r} is invalid: it prefixes topic names and the consumer group, "
                "so it "
                "may use only ASCII letters, digits, '.', '_' and '-' (at most 200 characters)"
            )
        servers = _required_str(config, "bootstrap.servers")
        _check_guarantee(config.get("processing.guarantee", AT_LEAST_ONCE))
        standbys = _int(config, "num.standby.replicas", 0, minimum=0)
        if standbys != 0:
            raise StreamsConfigError(
                f"num.standby.replicas={standbys} is not supported yet: strom.streams has no standby tasks; "
                "a task taken over restores from its changelog. Set it to 0 (the default)."
            )
        threads = _int(config, "num.stream.threads", 1, minimum=1)
        if threads != 1:
            raise StreamsConfigError(
                f"num.stream.threads={threads} is not supported: each Streams instance "
                "runs one stream thread. "
                "Start more Streams instances with the same application.id to use more cores."
            )
        if "cache.max.bytes" in config and "statestore.cache.max.bytes" in config:
            raise StreamsConfigError(
                "set only one of cache.max.bytes and statestore.cache.max.bytes (same meaning)"
            )
        cache_key = (
            "statestore.cache.max.bytes" if "statestore.cache.max.bytes" in config else "cache.max.bytes"
        )
        state_dir = config.get("state.dir", Path(tempfile.gettempdir()) / "strom-streams")
        if not isinstance(state_dir, str | Path) or str(state_dir) == "":
            raise StreamsConfigError(f"state.dir must be a directory path, got {state_dir!r}")
        overrides: dict[str, dict[str, Any]] = {p: {} for p in _CLIENT_PREFIXES}
        for key, value in config.items():
            prefix = next((p for p in _CLIENT_PREFIXES if key.startswith(p)), None)
            if prefix is not None:
                overrides[prefix][key[len(prefix) :]] = value
            elif key not in _RUNTIME_KEYS and key not in _CORE_KEYS:
                log.warning(
                    "unknown Streams config key %r is ignored by the runtime (passed to tasks as-is)", key
                )
        return cls(
            application_id=app_id,
            bootstrap_servers=servers,
            state_dir=Path(state_dir),
            commit_interval_ms=_int(config, "commit.interval.ms", 30000, minimum=0),
            cache_max_bytes=_int(config, cache_key, 10 * 1024 * 1024, minimum=0),
            replication_factor=_replication_factor(config),
            poll_ms=_int(config, "poll.ms", 100, minimum=0),
            client_id=str(config.get("client.id", app_id)),
            restore_batch_records=_int(config, "restore.batch.records", 50000, minimum=1),
            repartition_purge_interval_ms=_int(config, "repartition.purge.interval.ms", 30000, minimum=0),
            max_task_idle_ms=_int(config, "max.task.idle.ms", 0, minimum=-1),
            buffered_records_per_partition=_int(config, "buffered.records.per.partition", 1000, minimum=1),
            metrics_listen=_listen_address(config.get("metrics.listen")),
            originals=dict(config),
            consumer_overrides=overrides["consumer."],
            producer_overrides=overrides["producer."],
            admin_overrides=overrides["admin."],
        )

    def main_consumer(self, client_suffix: str) -> dict[str, Any]:
        """The group consumer: one group per application.id, manual commits, eager `range` assignment.

        `range` puts partition i of every co-partitioned topic on the same member (librdkafka cannot plug in
        Kafka Streams' assignor; see streams-semantics.md section 11).
        """
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.application_id,
            "client.id": f"{self.client_id}-{client_suffix}-consumer",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            "fetch.wait.max.ms": 100,
            "queued.min.messages": 20000,
        }
        conf.update(self.consumer_overrides)
        return conf

    def restore_consumer(self, client_suffix: str) -> dict[str, Any]:
        """A group-less consumer (assign only) for changelog restore and global tables: reads to the end
        offset."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": f"{self.application_id}-{client_suffix}-unused",
            "client.id": f"{self.client_id}-{client_suffix}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
            "queued.min.messages": 200000,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
        }
        conf.update(self.consumer_overrides)
        return conf

    def producer(self, client_suffix: str) -> dict[str, Any]:
        """Producer for sinks, repartition and changelog topics.

        murmur2_random places keyed records on the partitions Java clients and Kafka Streams choose, so a Java
        app and a strom app co-partition. Delivery reports only for errors: success needs no per-record
        callback.
        """
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": f"{self.client_id}-{client_suffix}-producer",
            "partitioner": "murmur2_random",
            "acks": "all",
            "linger.ms": 20,
            "batch.num.messages": 100000,
            "queue.buffering.max.messages": 1000000,
            "queue.buffering.max.kbytes": 1024 * 1024,
            "delivery.report.only.error": True,
        }
        conf.update(self.producer_overrides)
        return conf

    def admin(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": f"{self.client_id}-admin",
        }
        conf.update(self.admin_overrides)
        return conf


def _required_str(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key)
    if value is None:
        raise StreamsConfigError(f"missing required config {key!r}")
    if not isinstance(value, str) or not value.strip():
        raise StreamsConfigError(f"config {key!r} must be a non-empty string, got {value!r}")
    return value


def _int(config: Mapping[str, Any], key: str, default: int, *, minimum: int) -> int:
    raw = config.get(key, default)
    if isinstance(raw, bool):
        raise StreamsConfigError(f"config {key!r} must be an integer, got {raw!r}")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise StreamsConfigError(f"config {key!r} must be an integer, got {raw!r}") from None
    if isinstance(raw, float) and raw != value:
        raise StreamsConfigError(f"config {key!r} must be an integer, got {raw!r}")
    if value < minimum:
        raise StreamsConfigError(f"config {key!r} must be >= {minimum}, got {value}")
    return value


def _listen_address(value: Any) -> tuple[str, int] | None:
    """`metrics.listen` is "HOST:PORT" (port 0 picks a free one); None or "" leaves metrics unserved."""
    if value is None or value == "":
        return None
    host, sep, port = str(value).rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise StreamsConfigError(
            f"config 'metrics.listen' must be HOST:PORT, e.g. 127.0.0.1:9464, got {value!r}"
        )
    return host.strip("[]"), int(port)


def _replication_factor(config: Mapping[str, Any]) -> int:
    value = _int(config, "replication.factor", -1, minimum=-1)
    if value == 0:
        raise StreamsConfigError("config 'replication.factor' must be -1 (broker default) or >= 1, got 0")
    return value


def _check_guarantee(value: Any) -> None:
    if value == AT_LEAST_ONCE:
        return
    if value == EXACTLY_ONCE_V2:
        raise StreamsConfigError(
            "processing.guarantee='exactly_once_v2' is not supported yet: strom.streams "
            "runs at-least-once only "
            "for now. Set processing.guarantee='at_least_once' (the default)."
        )
    if value in ("exactly_once", "exactly_once_beta"):
        raise StreamsConfigError(
            f"processing.guarantee={value!r} was removed in Kafka 4.0 and is not supported; "
            "use 'at_least_once' (exactly_once_v2 is planned)"
        )
    raise StreamsConfigError(
        f"processing.guarantee={value!r} is invalid; allowed: 'at_least_once' ('exactly_once_v2' is planned)"
    )
