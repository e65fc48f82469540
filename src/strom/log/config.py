"""Per-partition log configuration, named and defaulted exactly as Kafka's topic configs.

A `LogConfig` is immutable; a live config change builds a new one and hands it to `Partition.update_config`.
`LogConfig.from_properties` parses the string form used by CreateTopics / AlterConfigs / `kafka-configs`
(`{"segment.bytes": "1048576"}`) and raises `InvalidConfigError` naming the key, the value and the rule
broken, so the broker can answer INVALID_CONFIG with a message a user can act on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from strom.log.errors import LogError
from strom.protocol.compression import Compression
from strom.protocol.error_codes import ErrorCode

_LONG_MAX = 2**63 - 1
_INT_MAX = 2**31 - 1

PRODUCER_COMPRESSION = "producer"
# Kafka's compression.type values besides `producer`: the codec every batch is stored with. `uncompressed` is
# the codec called `none` on the wire.
STORED_COMPRESSION: dict[str, Compression] = {
    "uncompressed": Compression.NONE,
    "gzip": Compression.GZIP,
    "snappy": Compression.SNAPPY,
    "lz4": Compression.LZ4,
    "zstd": Compression.ZSTD,
}


class InvalidConfigError(LogError, ValueError):
    """A topic config value is unknown, malformed or out of range (INVALID_CONFIG)."""

    error_code = ErrorCode.INVALID_CONFIG


@dataclasses.dataclass(frozen=True)
class LogConfig:
    """The topic configs the log acts on. Field names are Kafka's with `.` replaced by `_`.

    Invariants (checked in `__post_init__`): sizes and intervals are within Kafka's documented ranges,
    `cleanup_policy` is a subset of {"delete", "compact"}, `message_timestamp_type` is CreateTime or
    LogAppendTime, `compression_type` is `producer` or a key of STORED_COMPRESSION. A broker builds it from
    the topic's overrides over its own defaults, so `compression_type` here is already the resolved value
    (the topic's, else the broker's `compression.type`).
    """

    cleanup_policy: frozenset[str] = frozenset({"delete"})
    compression_type: str = PRODUCER_COMPRESSION
    segment_bytes: int = 1073741824
    segment_ms: int = 604800000
    segment_jitter_ms: int = 0
    segment_index_bytes: int = 10485760
    index_interval_bytes: int = 4096
    retention_ms: int = 604800000
    retention_bytes: int = -1
    delete_retention_ms: int = 86400000
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = _LONG_MAX
    file_delete_delay_ms: int = 60000
    flush_messages: int = _LONG_MAX
    flush_ms: int = _LONG_MAX
    max_message_bytes: int = 1048588
    message_timestamp_type: str = "CreateTime"
    message_timestamp_before_max_ms: int = _LONG_MAX
    message_timestamp_after_max_ms: int = 3600000
    producer_id_expiration_ms: int = 86400000

    def __post_init__(self) -> None:
        _at_least("segment.bytes", self.segment_bytes, 14, _INT_MAX)
        _at_least("segment.ms", self.segment_ms, 1, _LONG_MAX)
        _at_least("segment.jitter.ms", self.segment_jitter_ms, 0, _LONG_MAX)
        _at_least("segment.index.bytes", self.segment_index_bytes, 8, _INT_MAX)
        _at_least("index.interval.bytes", self.index_interval_bytes, 0, _INT_MAX)
        _at_least("retention.ms", self.retention_ms, -1, _LONG_MAX)
        _at_least("retention.bytes", self.retention_bytes, -1, _LONG_MAX)
        _at_least("delete.retention.ms", self.delete_retention_ms, 0, _LONG_MAX)
        _at_least("min.compaction.lag.ms", self.min_compaction_lag_ms, 0, _LONG_MAX)
        _at_least("max.compaction.lag.ms", self.max_compaction_lag_ms, 1, _LONG_MAX)
        _at_least("file.delete.delay.ms", self.file_delete_delay_ms, 0, _LONG_MAX)
        _at_least("flush.messages", self.flush_messages, 1, _LONG_MAX)
        _at_least("flush.ms", self.flush_ms, 0, _LONG_MAX)
        _at_least("max.message.bytes", self.max_message_bytes, 0, _INT_MAX)
        _at_least("message.timestamp.before.max.ms", self.message_timestamp_before_max_ms, 0, _LONG_MAX)
        _at_least("message.timestamp.after.max.ms", self.message_timestamp_after_max_ms, 0, _LONG_MAX)
        _at_least("producer.id.expiration.ms", self.producer_id_expiration_ms, 1, _INT_MAX)
        if not 0.0 <= self.min_cleanable_dirty_ratio <= 1.0:
            raise InvalidConfigError(
                f"min.cleanable.dirty.ratio={self.min_cleanable_dirty_ratio} must be between 0 and 1"
            )
        if not self.cleanup_policy or not self.cleanup_policy <= {"delete", "compact"}:
            raise InvalidConfigError(
                f"cleanup.policy={','.join(sorted(self.cleanup_policy))!r} must be delete, compact "
                "or compact,delete"
            )
        if self.message_timestamp_type not in ("CreateTime", "LogAppendTime"):
            raise InvalidConfigError(
                f"message.timestamp.type={self.message_timestamp_type!r} must be CreateTime or LogAppendTime"
            )
        if self.compression_type != PRODUCER_COMPRESSION and self.compression_type not in STORED_COMPRESSION:
            raise InvalidConfigError(
                f"compression.type={self.compression_type!r} must be one of "
                f"{', '.join([PRODUCER_COMPRESSION, *STORED_COMPRESSION])}"
            )

    @property
    def compact(self) -> bool:
        """True when the cleaner compacts this log (`cleanup.policy` contains `compact`)."""
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        """True when retention deletes old segments (`cleanup.policy` contains `delete`)."""
        return "delete" in self.cleanup_policy

    @property
    def max_segment_ms(self) -> int:
        """How long a segment may stay active: `segment.ms`, or `max.compaction.lag.ms` if smaller on a
        compacted log, since the cleaner never touches the active segment (Kafka's `maxSegmentMs`)."""
        if self.compact:
            return min(self.segment_ms, self.max_compaction_lag_ms)
        return self.segment_ms

    @property
    def target_compression(self) -> Compression | None:
        """The codec produced batches are stored with, or None when the producer's codec is kept."""
        return STORED_COMPRESSION.get(self.compression_type)

    @property
    def log_append_time(self) -> bool:
        """True when the broker stamps batches with its own clock (`message.timestamp.type=LogAppendTime`)."""
        return self.message_timestamp_type == "LogAppendTime"

    @classmethod
    def from_properties(cls, props: Mapping[str, str], base: LogConfig | None = None) -> LogConfig:
        """Parse Kafka-style string properties on top of `base` (defaults when None).

        Unknown keys that are log configs of Kafka we do not act on (`compression.gzip.level`,
        `min.insync.replicas`, ...) are accepted and ignored by the log; anything else raises
        InvalidConfigError.
        """
        changes: dict[str, Any] = {}
        for key, raw in props.items():
            if key in _IGNORED:
                continue
            field = _FIELDS.get(key)
            if field is None:
                raise InvalidConfigError(f"unknown topic config {key!r}")
            changes[field.name] = _parse(key, raw, field)
        try:
            return dataclasses.replace(base or cls(), **changes)
        except InvalidConfigError:
            raise
        except (TypeError, ValueError) as exc:  # pragma: no cover - _parse already typed every value
            raise InvalidConfigError(str(exc)) from exc

    def to_properties(self) -> dict[str, str]:
        """The inverse of `from_properties`: every config as Kafka's name and string value."""
        out: dict[str, str] = {}
        for key, field in _FIELDS.items():
            value = getattr(self, field.name)
            if isinstance(value, frozenset):
                out[key] = ",".join(sorted(value, key=lambda p: p != "compact"))
            else:
                out[key] = str(value)
        return out


def _at_least(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InvalidConfigError(f"{name}={value} is out of range; it must be between {low} and {high}")


def _parse(key: str, raw: str, field: dataclasses.Field[Any]) -> Any:
    text = str(raw).strip()
    if field.name == "cleanup_policy":
        parts = frozenset(p.strip() for p in text.split(",") if p.strip())
        return parts
    if field.name in ("message_timestamp_type", "compression_type"):
        return text
    try:
        if field.name == "min_cleanable_dirty_ratio":
            return float(text)
        return int(text)
    except ValueError:
        raise InvalidConfigError(f"{key}={raw!r} is not a number") from None


_FIELDS: dict[str, dataclasses.Field[Any]] = {
    f.name.replace("_", "."): f for f in dataclasses.fields(LogConfig)
}

# Kafka topic configs that strom accepts but that the log itself does not act on.
_IGNORED = frozenset(
    {
        "compression.gzip.level",
        "compression.lz4.level",
        "compression.zstd.level",
        "message.timestamp.difference.max.ms",
        "message.downconversion.enable",
        "min.insync.replicas",
        "unclean.leader.election.enable",
        "preallocate",
        "local.retention.ms",
        "local.retention.bytes",
        "remote.storage.enable",
        "follower.replication.throttled.replicas",
        "leader.replication.throttled.replicas",
        "message.format.version",
    }
)
