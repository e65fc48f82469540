"""Topic metadata: names, stable topic IDs, partition counts and per-topic config overrides, on disk.

Why a registry file rather than deriving topics from partition directories: topic IDs (Metadata v10+) must
stay the same across restarts, configs set with CreateTopics/AlterConfigs must survive them, and a topic whose
partition directories are being created or deleted must not half-exist. The file `topics.json` in the data
directory is the single source of truth; it is replaced atomically on every change (temp file, fsync,
rename, fsync of the directory), so a crash leaves the old or the new registry, never a mix. Every change is
written before memory changes, so a failed write (a full disk) leaves the registry as it was on both sides.

The registry never decides to delete data on its own. A deleted topic is remembered in the file's
`deleting` list until its partition directories are gone, so a crash in between finishes the deletion at
the next start instead of bringing the topic back. Partition directories of a topic the registry does not
know (a lost or removed `topics.json`, a crash between creating a topic's logs and registering it) are
adopted (`adopt`): name and partition count come from the directories, configs fall back to the broker
defaults, and the topic gets a new id.

`meta.properties` holds the cluster id and node id, as in a Kafka log directory, so clients that cache the
cluster id (Java's `ClusterResourceListener`) see the same cluster after a restart.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from strom.broker.config import ConfigError, normalize_topic_configs
from strom.broker.errors import BrokerError, StorageError
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


class RegistryCorruptError(BrokerError):
    """`topics.json` cannot be read; the broker refuses to start rather than guess which topics exist."""


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
        # deleted topics whose partition directories may still exist (see the module docstring)
        self._deleting: set[str] = set()
        self.missing = not self._path.exists()
        if not self.missing:
            self._load()
        self.cluster_id = self._load_meta(data_dir, node_id)

    def _load(self) -> None:
        what_to_do = (
            "restore it from a backup, or move it out of the data directory to rebuild the registry from "
            "the partition directories (topic ids are then new and topic configs the broker defaults)"
        )
        try:
            doc = json.loads(self._path.read_text(encoding="utf-8"))
            for name, entry in doc["topics"].items():
                self._topics[name] = TopicInfo(
                    name=name,
                    topic_id=uuid.UUID(entry["id"]),
                    partitions=int(entry["partitions"]),
                    configs={str(k): str(v) for k, v in entry.get("configs", {}).items()},
                    internal=bool(entry.get("internal", False)),
                )
            self._deleting = {str(name) for name in doc.get("deleting", [])}
        except json.JSONDecodeError as exc:
            raise RegistryCorruptError(
                f"{self._path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
                f"{what_to_do}"
            ) from None
        except UnicodeDecodeError:
            raise RegistryCorruptError(f"{self._path} is not UTF-8 text: {what_to_do}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RegistryCorruptError(
                f"{self._path} does not describe topics as strom writes them ({type(exc).__name__}: {exc}): "
                f"{what_to_do}"
            ) from None

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

    def _save(self, topics: dict[str, TopicInfo], deleting: set[str]) -> None:
        """Write the given state, then make it the in-memory state: a failed write changes nothing."""
        doc = {
            "version": 1,
            "topics": {
                t.name: {
                    "id": str(t.topic_id),
                    "partitions": t.partitions,
                    "configs": t.configs,
                    "internal": t.internal,
                }
                for t in topics.values()
            },
            "deleting": sorted(deleting),
        }
        try:
            write_atomically(self._path, json.dumps(doc, indent=1, sort_keys=True).encode("utf-8"))
        except OSError as exc:
            raise StorageError(f"could not write {self._path} ({exc}); no topic was changed") from exc
        self._topics, self._deleting = topics, deleting

    def _save_topic(self, topic: TopicInfo) -> None:
        """Persist a new or changed entry (a copy, so memory changes only when the write succeeded)."""
        self._save({**self._topics, topic.name: topic}, self._deleting - {topic.name})

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
        self._save_topic(topic)
        return topic

    def adopt(self, name: str, partitions: int) -> TopicInfo:
        """Register partition directories found on disk without a registry entry, with broker defaults.

        An existing entry with fewer partitions grows to cover the directories (a crash during
        CreatePartitions between making the logs and registering the new count)."""
        existing = self._topics.get(name)
        if existing is not None:
            topic = replace(existing, partitions=max(existing.partitions, partitions))
        else:
            topic = TopicInfo(name, uuid.uuid4(), partitions)
        self._save_topic(topic)
        return topic

    def delete(self, name: str) -> TopicInfo:
        """Unregister a topic and remember it as being deleted until `deleted` is called."""
        topic = self.require(name)
        self._save({n: t for n, t in self._topics.items() if n != name}, self._deleting | {name})
        return topic

    def deleting(self) -> set[str]:
        """Deleted topics whose partition directories may still be on disk."""
        return set(self._deleting)

    def deleted(self, names: set[str]) -> None:
        """The partition directories of these deleted topics are gone: forget them."""
        if names & self._deleting:
            self._save(self._topics, self._deleting - names)

    def set_partitions(self, name: str, count: int) -> None:
        topic = self.require(name)
        if count <= topic.partitions:
            raise ValueError(
                f"topic {name!r} has {topic.partitions} partitions; the new count must be higher"
            )
        self._save_topic(replace(topic, partitions=count))

    def set_internal(self, name: str, configs: dict[str, str]) -> None:
        """Mark an existing topic internal (the broker's own) with the given overrides."""
        self._save_topic(replace(self.require(name), internal=True, configs=dict(configs)))

    def set_configs(self, name: str, configs: dict[str, str]) -> None:
        """Replace the topic's overrides (already validated by the caller)."""
        self._save_topic(replace(self.require(name), configs=dict(configs)))
