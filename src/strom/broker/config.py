"""Broker and topic configuration, with Kafka's key names, types and defaults.

Why Kafka's names: users arrive with `server.properties` files and `kafka-configs` habits, so
`num.partitions`, `log.retention.ms` or a topic's `retention.ms` mean here what they mean there. Topic-level
keys fall back to a broker-level synonym (`retention.ms` <- `log.retention.ms`), exactly as in Kafka, and
DescribeConfigs reports where each value came from.

Values are kept as Kafka keeps them: strings, parsed and validated on the way in so a bad value is refused
with a message naming the key, never discovered later by the log.
"""

from __future__ import annotations

import builtins
import enum
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from strom.broker.errors import BrokerError
from strom.log.config import PRODUCER_COMPRESSION, STORED_COMPRESSION
from strom.protocol.error_codes import ErrorCode
from strom.protocol.field_values import AlterConfigOp


class ConfigError(BrokerError):
    """A configuration key is unknown or its value does not parse or is out of range."""

    error_code = ErrorCode.INVALID_CONFIG


class UnknownConfigOperation(ConfigError):
    """An IncrementalAlterConfigs operation outside SET, DELETE, APPEND and SUBTRACT."""

    error_code = ErrorCode.INVALID_REQUEST


class ConfigType(enum.IntEnum):
    """DescribeConfigs `config_type` values (KIP-569)."""

    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7


class ConfigSource(enum.IntEnum):
    """DescribeConfigs `config_source` values."""

    TOPIC_CONFIG = 1
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5


LONG_MAX = 2**63 - 1
# Kafka's compression.type values: keep the producer's codec, or store every batch with the named one.
COMPRESSION_TYPES = (PRODUCER_COMPRESSION, *STORED_COMPRESSION)
_RANGES = {
    ConfigType.INT: (-(2**31), 2**31 - 1),
    ConfigType.SHORT: (-(2**15), 2**15 - 1),
    ConfigType.LONG: (-(2**63), LONG_MAX),
}


@dataclass(frozen=True)
class ConfigKey:
    """One configuration key: its type, Kafka default (as a string) and allowed values or lower bound."""

    name: str
    type: ConfigType
    default: str | None
    minimum: float | None = None
    choices: tuple[str, ...] = ()
    # For topic keys: the broker key whose value is the default for topics that do not set this one.
    broker_synonym: str | None = None
    sensitive: bool = False


def _k(name: str, type_: ConfigType, default: str | None, **kw: object) -> ConfigKey:
    return ConfigKey(name, type_, default, **kw)  # type: ignore[arg-type]


T = ConfigType
TOPIC_KEYS: dict[str, ConfigKey] = {
    k.name: k
    for k in [
        _k(
            "cleanup.policy",
            T.LIST,
            "delete",
            choices=("delete", "compact"),
            broker_synonym="log.cleanup.policy",
        ),
        _k(
            "compression.type",
            T.STRING,
            "producer",
            choices=COMPRESSION_TYPES,
            broker_synonym="compression.type",
        ),
        _k(
            "delete.retention.ms",
            T.LONG,
            "86400000",
            minimum=0,
            broker_synonym="log.cleaner.delete.retention.ms",
        ),
        _k("file.delete.delay.ms", T.LONG, "60000", minimum=0, broker_synonym="log.segment.delete.delay.ms"),
        _k("flush.messages", T.LONG, str(LONG_MAX), minimum=1, broker_synonym="log.flush.interval.messages"),
        _k("flush.ms", T.LONG, str(LONG_MAX), minimum=0, broker_synonym="log.flush.interval.ms"),
        _k("index.interval.bytes", T.INT, "4096", minimum=0, broker_synonym="log.index.interval.bytes"),
        _k(
            "max.compaction.lag.ms",
            T.LONG,
            str(LONG_MAX),
            minimum=1,
            broker_synonym="log.cleaner.max.compaction.lag.ms",
        ),
        _k("max.message.bytes", T.INT, "1048588", minimum=0, broker_synonym="message.max.bytes"),
        _k(
            "message.timestamp.type",
            T.STRING,
            "CreateTime",
            choices=("CreateTime", "LogAppendTime"),
            broker_synonym="log.message.timestamp.type",
        ),
        _k(
            "min.cleanable.dirty.ratio",
            T.DOUBLE,
            "0.5",
            minimum=0,
            broker_synonym="log.cleaner.min.cleanable.ratio",
        ),
        _k(
            "min.compaction.lag.ms",
            T.LONG,
            "0",
            minimum=0,
            broker_synonym="log.cleaner.min.compaction.lag.ms",
        ),
        _k("min.insync.replicas", T.INT, "1", minimum=1, broker_synonym="min.insync.replicas"),
        _k("retention.bytes", T.LONG, "-1", broker_synonym="log.retention.bytes"),
        _k("retention.ms", T.LONG, "604800000", minimum=-1, broker_synonym="log.retention.ms"),
        _k("segment.bytes", T.INT, "1073741824", minimum=14, broker_synonym="log.segment.bytes"),
        _k("segment.index.bytes", T.INT, "10485760", minimum=8, broker_synonym="log.index.size.max.bytes"),
        _k("segment.jitter.ms", T.LONG, "0", minimum=0, broker_synonym="log.roll.jitter.ms"),
        _k("segment.ms", T.LONG, "604800000", minimum=1, broker_synonym="log.roll.ms"),
    ]
}

BROKER_KEYS: dict[str, ConfigKey] = {
    k.name: k
    for k in [
        _k("node.id", T.INT, "0", minimum=0),
        _k("listeners", T.STRING, None),
        _k("advertised.listeners", T.STRING, None),
        _k("log.dirs", T.STRING, None),
        _k("log.dir", T.STRING, None),
        _k("num.partitions", T.INT, "1", minimum=1),
        # strom's own: every partition is files and work on one node; a typo must not create a million.
        _k("max.partitions.per.topic", T.INT, "1000", minimum=1),
        _k("default.replication.factor", T.SHORT, "1", minimum=1),
        _k("auto.create.topics.enable", T.BOOLEAN, "true"),
        _k("delete.topic.enable", T.BOOLEAN, "true"),
        _k("socket.request.max.bytes", T.INT, "104857600", minimum=1),
        _k("queued.max.request.bytes", T.LONG, str(256 << 20), minimum=-1),
        _k("connections.max.idle.ms", T.LONG, "600000", minimum=-1),
        _k("fetch.max.bytes", T.INT, "57671680", minimum=1024),
        _k("message.max.bytes", T.INT, "1048588", minimum=0),
        _k("compression.type", T.STRING, "producer", choices=COMPRESSION_TYPES),
        _k("min.insync.replicas", T.INT, "1", minimum=1),
        _k("log.cleanup.policy", T.LIST, "delete", choices=("delete", "compact")),
        _k("log.retention.hours", T.INT, "168", minimum=-1),
        _k("log.retention.minutes", T.INT, None, minimum=-1),
        _k("log.retention.ms", T.LONG, None, minimum=-1),
        _k("log.retention.bytes", T.LONG, "-1"),
        _k("log.retention.check.interval.ms", T.LONG, "300000", minimum=1),
        _k("log.segment.bytes", T.INT, "1073741824", minimum=14),
        _k("log.segment.delete.delay.ms", T.LONG, "60000", minimum=0),
        _k("log.roll.hours", T.INT, "168", minimum=1),
        _k("log.roll.ms", T.LONG, None, minimum=1),
        _k("log.roll.jitter.ms", T.LONG, "0", minimum=0),
        _k("log.index.size.max.bytes", T.INT, "10485760", minimum=8),
        _k("log.index.interval.bytes", T.INT, "4096", minimum=0),
        _k("log.flush.interval.messages", T.LONG, str(LONG_MAX), minimum=1),
        _k("log.flush.interval.ms", T.LONG, str(LONG_MAX), minimum=0),
        _k("log.flush.on.ack", T.BOOLEAN, "true"),
        _k("log.message.timestamp.type", T.STRING, "CreateTime", choices=("CreateTime", "LogAppendTime")),
        _k("log.cleaner.enable", T.BOOLEAN, "true"),
        _k("log.cleaner.backoff.ms", T.LONG, "15000", minimum=0),
        _k("log.cleaner.min.cleanable.ratio", T.DOUBLE, "0.5", minimum=0),
        _k("log.cleaner.delete.retention.ms", T.LONG, "86400000", minimum=0),
        _k("log.cleaner.min.compaction.lag.ms", T.LONG, "0", minimum=0),
        _k("log.cleaner.max.compaction.lag.ms", T.LONG, str(LONG_MAX), minimum=1),
        _k("offsets.topic.num.partitions", T.INT, "1", minimum=1),
        _k("offsets.topic.segment.bytes", T.INT, "104857600", minimum=14),
        _k("offsets.retention.minutes", T.INT, "10080", minimum=1),
        _k("offset.metadata.max.bytes", T.INT, "4096", minimum=0),
        _k("offsets.retention.check.interval.ms", T.LONG, "600000", minimum=1),
        _k("group.initial.rebalance.delay.ms", T.INT, "3000", minimum=0),
        _k("group.min.session.timeout.ms", T.INT, "6000", minimum=0),
        _k("group.max.session.timeout.ms", T.INT, "1800000", minimum=0),
        _k("group.max.size", T.INT, str(2**31 - 1), minimum=1),
        _k("producer.id.expiration.ms", T.INT, "86400000", minimum=1),
    ]
}


# Kafka broker keys that tune what a single strom node does not have (KRaft quorums, replication, thread
# pools, socket buffers, quotas). A Kafka `server.properties` carries many of them; they are accepted and
# named in one warning, as ignoring them changes neither what is stored nor who may read it.
KAFKA_KEYS_WITHOUT_EFFECT = frozenset(
    {
        "process.roles",
        "controller.quorum.voters",
        "controller.quorum.bootstrap.servers",
        "controller.listener.names",
        "inter.broker.listener.name",
        "listener.security.protocol.map",
        "security.inter.broker.protocol",
        "num.network.threads",
        "num.io.threads",
        "num.replica.fetchers",
        "num.recovery.threads.per.data.dir",
        "background.threads",
        "queued.max.requests",
        "socket.send.buffer.bytes",
        "socket.receive.buffer.bytes",
        "socket.listen.backlog.size",
        "connections.max.idle.ms",
        "max.connections",
        "max.connections.per.ip",
        "offsets.topic.replication.factor",
        "offsets.commit.timeout.ms",
        "offsets.load.buffer.size",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "transaction.state.log.num.partitions",
        "transaction.state.log.segment.bytes",
        "transaction.max.timeout.ms",
        "transactional.id.expiration.ms",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
        "replica.lag.time.max.ms",
        "replica.fetch.max.bytes",
        "replica.socket.timeout.ms",
        "unclean.leader.election.enable",
        "auto.leader.rebalance.enable",
        "leader.imbalance.check.interval.seconds",
        "log.cleaner.threads",
        "log.cleaner.dedupe.buffer.size",
        "log.cleaner.io.buffer.size",
        "log.cleaner.io.max.bytes.per.second",
        "log.flush.scheduler.interval.ms",
        "log.flush.offset.checkpoint.interval.ms",
        "log.preallocate",
        "metadata.log.dir",
        "metadata.log.segment.bytes",
        "metadata.max.retention.ms",
        "metric.reporters",
        "metrics.num.samples",
        "metrics.sample.window.ms",
        "quota.window.num",
        "quota.window.size.seconds",
        "request.timeout.ms",
        "group.coordinator.rebalance.protocols",
        "group.consumer.heartbeat.interval.ms",
        "group.consumer.session.timeout.ms",
        "zookeeper.connect",
        "zookeeper.connection.timeout.ms",
    }
)
# Security settings: a broker that ignored them would serve unencrypted, unauthenticated, unauthorised
# traffic to someone who asked for the opposite, so strom refuses to start with any of them.
SECURITY_KEY_PREFIXES = (
    "ssl.",
    "sasl.",
    "listener.name.",
    "authorizer.",
    "principal.builder.",
    "delegation.token.",
    "password.encoder.",
    "super.users",
    "allow.everyone.if.no.acl.found",
)


class KeyPolicy(enum.Enum):
    """What a BrokerConfig does with a key strom does not use (security keys are refused under all)."""

    # Refuse every such key: the caller wrote the keys in code (EmbeddedBroker), so any is a mistake.
    STRICT = "strict"
    # Accept Kafka's own tuning keys with a warning; refuse a key Kafka does not know either (a typo).
    KAFKA = "kafka"
    # Accept any key with a warning (`strom broker --lenient-config`).
    LENIENT = "lenient"


def check_security(values: Mapping[str, object]) -> None:
    """Refuse security settings strom cannot honour, naming them, instead of silently serving plaintext.

    Listener protocols are resolved through `listener.security.protocol.map` as Kafka does, so Kafka's stock
    map (which lists SSL and SASL for listener names nobody uses) is fine; a listener that would be SSL or
    SASL is not.
    """
    for name in values:
        if name.startswith(SECURITY_KEY_PREFIXES):
            raise ConfigError(
                f"configuration {name!r} asks for TLS, SASL or authorisation, which strom does not have; "
                "refusing to start rather than serve without it (remove the key)"
            )
    protocol_of = {}
    for entry in str(values.get("listener.security.protocol.map", "")).split(","):
        listener, _, protocol = entry.strip().partition(":")
        protocol_of[listener.strip().upper()] = protocol.strip().upper()
    wanted = [("security.inter.broker.protocol", str(values.get("security.inter.broker.protocol", "")))]
    for key in ("listeners", "advertised.listeners"):
        for entry in str(values.get(key, "")).split(","):
            listener, sep, _ = entry.strip().partition("://")
            if sep:
                wanted.append((key, protocol_of.get(listener.upper(), listener.upper())))
    for key, protocol in wanted:
        if protocol.upper().startswith(("SSL", "SASL")):
            raise ConfigError(
                f"configuration {key} asks for a {protocol.upper()} listener; strom serves PLAINTEXT only, "
                "so it refuses to start rather than serve unencrypted (use PLAINTEXT)"
            )


def normalize(key: ConfigKey, value: object) -> str:
    """Validate `value` for `key` and return Kafka's string form; ConfigError names the key on failure."""
    text = str(value).strip() if not isinstance(value, bool) else ("true" if value else "false")
    if isinstance(value, (list, tuple)):
        text = ",".join(str(v).strip() for v in value)
    try:
        if key.type is ConfigType.BOOLEAN:
            if text.lower() not in ("true", "false"):
                raise ValueError("expected true or false")
            return text.lower()
        if key.type in _RANGES:
            if not text.lstrip("+-").isdigit():
                raise ValueError(f"expected an integer ({key.type.name})")
            number = int(text)
            lo, hi = _RANGES[key.type]
            if not lo <= number <= hi or (key.minimum is not None and number < key.minimum):
                raise ValueError(f"out of range (minimum {key.minimum})")
            return str(number)
        if key.type is ConfigType.DOUBLE:
            try:
                ratio = float(text)
            except ValueError:
                raise ValueError(f"expected a number ({key.type.name})") from None
            if key.minimum is not None and ratio < key.minimum:
                raise ValueError(f"below minimum {key.minimum}")
            return repr(ratio)
        if key.type is ConfigType.LIST:
            items = [item.strip() for item in text.split(",") if item.strip()]
            bad = [item for item in items if key.choices and item not in key.choices]
            if bad or not items:
                raise ValueError(f"expected a list of {', '.join(key.choices)}")
            return ",".join(items)
        if key.choices and text not in key.choices:
            raise ValueError(f"expected one of {', '.join(key.choices)}")
        return text
    except ValueError as exc:
        raise ConfigError(f"invalid value {value!r} for configuration {key.name}: {exc}") from None


def normalize_topic_configs(configs: Mapping[str, object]) -> dict[str, str]:
    """Validate topic-level configs; unknown keys are refused, naming them."""
    result = {}
    for name, value in configs.items():
        key = TOPIC_KEYS.get(name)
        if key is None:
            raise ConfigError(f"unknown topic configuration {name!r}")
        result[name] = normalize(key, value)
    return result


def parse_properties(text: str) -> dict[str, str]:
    """Parse a Java-style `.properties` file (`key=value` or `key: value`, `#`/`!` comments)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        sep = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if sep < 0:
            raise ConfigError(f"line {number}: expected key=value, got {line!r}")
        values[line[:sep].strip()] = line[sep + 1 :].strip()
    return values


class BrokerConfig:
    """The broker's static configuration: validated Kafka keys with their sources.

    Invariant: every stored value is already normalised for its key, so readers never fail on a value.
    Keys strom does not know are kept in `ignored` (a Kafka `server.properties` carries many that make no
    sense for one node, such as `process.roles`) so the command line can warn about them.
    """

    def __init__(
        self,
        values: Mapping[str, object] | None = None,
        *,
        strict: bool = False,
        policy: KeyPolicy = KeyPolicy.KAFKA,
    ) -> None:
        if strict:
            policy = KeyPolicy.STRICT
        self._explicit: dict[str, str] = {}
        # Accepted keys strom does not use, for warn_ignored: Kafka's own, and (lenient only) any other.
        self.ignored: list[str] = []
        self.unknown: list[str] = []
        check_security(values or {})
        for name, value in (values or {}).items():
            if name == "broker.id":
                name = "node.id"
            key = BROKER_KEYS.get(name)
            if key is not None:
                self._explicit[name] = normalize(key, value)
            elif policy is KeyPolicy.STRICT:
                raise ConfigError(f"unknown broker configuration {name!r}")
            elif name in KAFKA_KEYS_WITHOUT_EFFECT:
                self.ignored.append(name)
            elif policy is KeyPolicy.LENIENT:
                self.unknown.append(name)
            else:
                raise ConfigError(
                    f"unknown broker configuration {name!r}: neither strom nor Kafka has this key "
                    "(check the spelling, or pass --lenient-config to start anyway)"
                )

    @classmethod
    def from_sources(
        cls,
        file: Path | None = None,
        sets: Iterable[str] = (),
        overrides: Mapping[str, object] | None = None,
        policy: KeyPolicy = KeyPolicy.KAFKA,
    ) -> BrokerConfig:
        """Merge a properties file, `key=value` strings and keyword overrides, later ones winning."""
        values: dict[str, object] = {}
        if file is not None:
            values.update(parse_properties(file.read_text(encoding="utf-8")))
        for item in sets:
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise ConfigError(f"--set expects key=value, got {item!r}")
            values[name.strip()] = value.strip()
        values.update(overrides or {})
        return cls(values, policy=policy)

    def raw(self, name: str) -> str | None:
        """The normalised string value of a broker key: explicit, derived (retention, roll) or default."""
        if name in self._explicit:
            return self._explicit[name]
        if name == "log.retention.ms":
            if "log.retention.minutes" in self._explicit:
                return str(int(self._explicit["log.retention.minutes"]) * 60_000)
            hours = int(self.raw("log.retention.hours") or "168")
            return str(hours * 3_600_000 if hours >= 0 else -1)
        if name == "log.roll.ms":
            return str(int(self.raw("log.roll.hours") or "168") * 3_600_000)
        return BROKER_KEYS[name].default

    def is_explicit(self, name: str) -> bool:
        """Whether the operator set this key (STATIC_BROKER_CONFIG) rather than leaving Kafka's default."""
        derived = {
            "log.retention.ms": ("log.retention.minutes", "log.retention.hours"),
            "log.roll.ms": ("log.roll.hours",),
        }
        return name in self._explicit or any(k in self._explicit for k in derived.get(name, ()))

    def int(self, name: str) -> int:
        return int(self.raw(name) or 0)

    def bool(self, name: str) -> bool:
        return self.raw(name) == "true"

    def topic_default(self, topic_key: str) -> str:
        """The value a topic gets for `topic_key` when it does not set it itself."""
        key = TOPIC_KEYS[topic_key]
        if key.broker_synonym is not None:
            value = self.raw(key.broker_synonym)
            if value is not None:
                return value
        return key.default or ""

    def topic_config(self, overrides: Mapping[str, str]) -> dict[str, str]:
        """Every topic key with its effective value: the topic's own, else the broker's synonym."""
        return {name: overrides.get(name, self.topic_default(name)) for name in TOPIC_KEYS}

    def topic_synonyms(
        self, name: str, overrides: Mapping[str, str]
    ) -> list[tuple[str, str | None, ConfigSource]]:
        """Where topic key `name` can take its value from, the effective one first (Kafka's synonyms): the
        topic's own override, an explicitly set broker synonym, then the default."""
        key = TOPIC_KEYS[name]
        chain: list[tuple[str, str | None, ConfigSource]] = []
        if name in overrides:
            chain.append((name, overrides[name], ConfigSource.TOPIC_CONFIG))
        if key.broker_synonym is not None and self.is_explicit(key.broker_synonym):
            chain.append(
                (key.broker_synonym, self.raw(key.broker_synonym), ConfigSource.STATIC_BROKER_CONFIG)
            )
        chain.append((key.broker_synonym or name, self.topic_default(name), ConfigSource.DEFAULT_CONFIG))
        return chain

    def alter_topic_config(
        self, overrides: dict[str, str], name: str, op: builtins.int, value: str | None
    ) -> dict[str, str]:
        """A topic's overrides after one IncrementalAlterConfigs operation (an `AlterConfigOp`); ConfigError
        names a bad key or value, UnknownConfigOperation a bad operation."""
        key = TOPIC_KEYS.get(name)
        if key is None:
            raise ConfigError(f"unknown topic configuration {name!r}")
        if op == AlterConfigOp.SET:
            if value is None:
                raise ConfigError(f"SET of {name} needs a value")
            overrides[name] = value
        elif op == AlterConfigOp.DELETE:
            overrides.pop(name, None)
        elif op in (AlterConfigOp.APPEND, AlterConfigOp.SUBTRACT):
            if key.type is not ConfigType.LIST:
                raise ConfigError(f"{name} is not a list; APPEND and SUBTRACT apply to list configs only")
            current = overrides.get(name, self.topic_default(name)).split(",")
            items = [v.strip() for v in (value or "").split(",") if v.strip()]
            if op == AlterConfigOp.APPEND:
                current += [v for v in items if v not in current]
            else:
                current = [v for v in current if v not in items]
            overrides[name] = ",".join(current)
        else:
            raise UnknownConfigOperation(f"unknown config operation {op}")
        return overrides

    def describe(self) -> list[tuple[str, str | None, ConfigSource]]:
        """Every broker key with its value and source, for DescribeConfigs on the broker resource."""
        return [
            (
                name,
                self.raw(name),
                ConfigSource.STATIC_BROKER_CONFIG if self.is_explicit(name) else ConfigSource.DEFAULT_CONFIG,
            )
            for name in sorted(BROKER_KEYS)
        ]


def warn_ignored(config: BrokerConfig) -> None:
    """Name, once each, the accepted keys strom does not use (Kafka logs a similar warning)."""
    if config.ignored:
        names = ", ".join(config.ignored)
        print(f"strom broker: ignoring Kafka configuration with no effect on strom: {names}", file=sys.stderr)
    if config.unknown:
        names = ", ".join(config.unknown)
        print(f"strom broker: ignoring unknown configuration (--lenient-config): {names}", file=sys.stderr)
