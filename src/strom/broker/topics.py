"""Topic metadata: names, stable topic IDs, partition counts and per-topic config overrides, on disk.

Why a registry file rather than deriving topics from partition directories: topic IDs (Metadata v10+) must
stay the same across restarts, configs set with CreateTopics/AlterConfigs must survive them, and a topic whose
partition directories are being created or deleted must not half-exist. The file `topics.json` in the data
directory is the single source of truth; it is replaced atomically on every change (temp file, fsync,
rename), so a crash leaves the old or the new registry, never a mix.

`meta.properties` holds the cluster id and node id, as in a Kafka log directory, so clients that cache the
cluster id (Java's `ClusterResourceListener`) see the same cluster after a restart.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from strom.broker.config import ConfigError, normalize_topic_configs
from strom.broker.errors import BrokerError
from strom.log.checkpoint import write_atomically
from strom.protocol.error_codes import ErrorCode

REGISTRY_FILE = "topics.json"
META_FILE = "meta.properties"
_LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]+")
MAX_NAME_LENGTH = 249
# Topics only the broker creates, with their own configs; clients can neither create nor auto-create them.
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})
# This one node leads every partition, always in the same (first) leader epoch.
LEADER_EPOCH = 0


class InvalidTopicError(BrokerError):
    """A topic name breaks Kafka's rules."""

    error_code = ErrorCode.INVALID_TOPIC_EXCEPTION


class TopicExistsError(BrokerError):
    """CreateTopics for a name that is taken."""

    error_code = ErrorCode.TOPIC_ALREADY_EXISTS


class UnknownTopicError(BrokerError):
    """The topic does not exist."""

    error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def validate_topic_name(name: str) -> None:
    """Kafka's rules: 1-249 characters of [a-zA-Z0-9._-], not "." or ".."."""
    if not name:
        raise InvalidTopicError("topic name is empty")
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name {name!r} is not allowed")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidTopicError(f"topic name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    if not _LEGAL_NAME.fullmatch(name):
        raise InvalidTopicError(
            f"topic name {name!r} contains characters other than ASCII letters, digits, '.', '_' and '-'"
        )


@dataclass
class TopicInfo:
    """One topic: its id never changes; `configs` holds only the overrides set for this topic."""

    name: str
    topic_id: uuid.UUID
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)
    internal: bool = False


def kafka_cluster_id() -> str:
    """A random cluster id in Kafka's form: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


class TopicRegistry:
    """The persisted set of topics of one broker.

    Invariants: names are valid and unique; topic ids are unique, random and never reused or changed;
    partition counts only grow; the file on disk always equals the in-memory state after a method returns.
    Survives: a crash during any update (atomic replace), a missing file (a fresh data directory).
    """

    def __init__(self, data_dir: Path, node_id: int) -> None:
        self._path = data_dir / REGISTRY_FILE
        self._topics: dict[str, TopicInfo] = {}
        if self._path.exists():
            doc = json.loads(self._path.read_text(encoding="utf-8"))
            for name, entry in doc["topics"].items():
                self._topics[name] = TopicInfo(
                    name=name,
                    topic_id=uuid.UUID(entry["id"]),
                    partitions=int(entry["partitions"]),
                    configs=dict(entry.get("configs", {})),
                    internal=bool(entry.get("internal", False)),
                )
        self.cluster_id = self._load_meta(data_dir, node_id)

    @staticmethod
    def _load_meta(data_dir: Path, node_id: int) -> str:
        path = data_dir / META_FILE
        props: dict[str, str] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                key, sep, value = line.partition("=")
                if sep and not key.startswith("#"):
                    props[key.strip()] = value.strip()
        if "cluster.id" in props:
            return props["cluster.id"]
        cluster_id = kafka_cluster_id()
        text = f"#strom broker data directory\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n"
        write_atomically(path, text.encode("utf-8"))
        return cluster_id

    def _save(self) -> None:
        doc = {
            "version": 1,
            "topics": {
                t.name: {
                    "id": str(t.topic_id),
                    "partitions": t.partitions,
                    "configs": t.configs,
                    "internal": t.internal,
                }
                for t in self._topics.values()
            },
        }
        write_atomically(self._path, json.dumps(doc, indent=1, sort_keys=True).encode("utf-8"))

    def get(self, name: str) -> TopicInfo | None:
        return self._topics.get(name)

    def require(self, name: str) -> TopicInfo:
        """The topic, or UnknownTopicError."""
        topic = self._topics.get(name)
        if topic is None:
            raise UnknownTopicError(f"topic {name!r} does not exist")
        return topic

    def by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        return next((t for t in self._topics.values() if t.topic_id == topic_id), None)

    def all(self) -> list[TopicInfo]:
        return list(self._topics.values())

    def check_new(self, name: str, partitions: int, configs: dict[str, str]) -> dict[str, str]:
        """Validate a CreateTopics entry without changing anything; returns the normalised configs."""
        validate_topic_name(name)
        if name in INTERNAL_TOPICS:
            raise InvalidTopicError(f"{name} is an internal topic: the broker creates it itself")
        if name in self._topics:
            raise TopicExistsError(f"topic {name!r} already exists")
        colliding = name.replace(".", "_")
        for other in self._topics:
            if other.replace(".", "_") == colliding:
                raise InvalidTopicError(
                    f"topic {name!r} collides with existing topic {other!r} ('.' and '_' are treated alike)"
                )
        if partitions < 1:
            raise ConfigError(f"number of partitions must be at least 1, got {partitions}")
        return normalize_topic_configs(configs)

    def create(
        self, name: str, partitions: int, configs: dict[str, str], internal: bool = False
    ) -> TopicInfo:
        """Register a new topic with a fresh id (the caller creates its partition logs first)."""
        normalized = self.check_new(name, partitions, configs) if not internal else dict(configs)
        topic = TopicInfo(name, uuid.uuid4(), partitions, normalized, internal)
        self._topics[name] = topic
        self._save()
        return topic

    def delete(self, name: str) -> TopicInfo:
        topic = self.require(name)
        del self._topics[name]
        self._save()
        return topic

    def set_partitions(self, name: str, count: int) -> None:
        topic = self.require(name)
        if count <= topic.partitions:
            raise ValueError(
                f"topic {name!r} has {topic.partitions} partitions; the new count must be higher"
            )
        topic.partitions = count
        self._save()

    def set_internal(self, name: str, configs: dict[str, str]) -> None:
        """Mark an existing topic internal (the broker's own) with the given overrides."""
        topic = self.require(name)
        topic.internal = True
        topic.configs = dict(configs)
        self._save()

    def set_configs(self, name: str, configs: dict[str, str]) -> None:
        """Replace the topic's overrides (already validated by the caller)."""
        self.require(name).configs = dict(configs)
        self._save()
