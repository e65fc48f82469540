"""What the console asks a cluster through Kafka's admin API: brokers, topics, configs, offsets and groups.

Every method is one or a few admin requests sized by what one page shows: a page of topics asks for the
offsets of that page's partitions only, never of the whole cluster, so thousands of topics cost no more
than fifty. Methods block (confluent-kafka futures); the web layer runs them on worker threads.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from strom.console.errors import ClusterError
from strom.protocol.error_codes import ErrorCode

GROUP_STATES = {
    ConsumerGroupState.PREPARING_REBALANCING: "PreparingRebalance",
    ConsumerGroupState.COMPLETING_REBALANCING: "CompletingRebalance",
    ConsumerGroupState.STABLE: "Stable",
    ConsumerGroupState.DEAD: "Dead",
    ConsumerGroupState.EMPTY: "Empty",
}


@dataclass(frozen=True, slots=True)
class Broker:
    node_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Overview:
    cluster_id: str
    controller_id: int
    brokers: list[Broker]
    topics: int
    partitions: int


@dataclass(frozen=True, slots=True)
class TopicRow:
    """One line of the topic list: records = end minus start offsets, summed over its partitions."""

    name: str
    partitions: int
    records: int
    end: int  # sum of the partitions' log end offsets: its growth is the topic's records-in rate


@dataclass(frozen=True, slots=True)
class TopicPage:
    rows: list[TopicRow]
    total: int  # topics matching the filter, over all pages
    page: int
    pages: int


@dataclass(frozen=True, slots=True)
class PartitionRow:
    partition: int
    leader: int
    replicas: list[int]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ConfigRow:
    name: str
    value: str | None
    is_default: bool
    read_only: bool
    sensitive: bool


@dataclass(frozen=True, slots=True)
class TopicDetail:
    name: str
    partitions: list[PartitionRow]
    configs: list[ConfigRow]


@dataclass(frozen=True, slots=True)
class GroupRow:
    group_id: str
    state: str


@dataclass(frozen=True, slots=True)
class Member:
    member_id: str
    client_id: str
    host: str
    assignment: list[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class GroupPartition:
    """A partition the group consumes or has offsets for: lag = log end - committed (None if unknown)."""

    topic: str
    partition: int
    committed: int | None
    end: int | None
    member_id: str | None

    @property
    def lag(self) -> int | None:
        if self.committed is None or self.end is None:
            return None
        return max(0, self.end - self.committed)


@dataclass(frozen=True, slots=True)
class GroupDetail:
    group_id: str
    state: str
    assignor: str
    members: list[Member]
    partitions: list[GroupPartition]

    @property
    def total_lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)


def error_text(error: BaseException) -> str:
    """A client error as the broker or librdkafka words it (`Broker: Unknown topic or partition`)."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return str(error.args[0].str())
    return str(error)


def retriable(error: KafkaException) -> bool:
    """Whether the same request may succeed if sent again. librdkafka does not flag broker errors in admin
    results as retriable, so the broker's code is looked up in Kafka's table too."""
    kafka_error = error.args[0] if error.args else None
    if not isinstance(kafka_error, KafkaError):
        return False
    code = kafka_error.code()
    known = code in ErrorCode._value2member_map_
    return bool(kafka_error.retriable()) or (known and ErrorCode(code).retriable)


class Cluster:
    """One admin connection to a cluster, shared by every page view (confluent-kafka's client is threadsafe).

    `timeout` bounds each request; an unreachable cluster surfaces as ClusterError within it.
    """

    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self.admin = AdminClient(self.client_config())

    def client_config(self, **extra: Any) -> dict[str, Any]:
        """librdkafka settings for every client of the console; log_level 0 keeps its retry chatter quiet."""
        return {"bootstrap.servers": self.bootstrap, "log_level": 0, **extra}

    def _result(self, future: Future[Any], what: str) -> Any:
        try:
            return future.result(timeout=self.timeout + 5)
        except KafkaException as error:
            raise ClusterError(f"cannot {what}: {error_text(error)}") from error
        except TimeoutError as error:
            raise ClusterError(
                f"cannot {what}: no answer from {self.bootstrap} in {self.timeout:g} s"
            ) from error

    def metadata(self, topic: str | None = None) -> Any:
        try:
            return self.admin.list_topics(topic, timeout=self.timeout)
        except KafkaException as error:
            raise ClusterError(
                f"cannot reach the cluster at {self.bootstrap}: {error_text(error)}"
            ) from error

    # --- overview and topics ------------------------------------------------------------------------

    def overview(self) -> Overview:
        metadata = self.metadata()
        brokers = [
            Broker(b.id, b.host, b.port) for b in sorted(metadata.brokers.values(), key=lambda b: b.id)
        ]
        visible = [t for name, t in metadata.topics.items() if not name.startswith("__")]
        return Overview(
            cluster_id=metadata.cluster_id or "",
            controller_id=metadata.controller_id,
            brokers=brokers,
            topics=len(visible),
            partitions=sum(len(t.partitions) for t in visible),
        )

    def topic_names(self, internal: bool = False) -> list[str]:
        return sorted(name for name in self.metadata().topics if internal or not name.startswith("__"))

    def topic_page(self, query: str, page: int, size: int, internal: bool = False) -> TopicPage:
        metadata = self.metadata()
        names = sorted(
            name
            for name in metadata.topics
            if (internal or not name.startswith("__")) and query.lower() in name.lower()
        )
        pages = max(1, -(-len(names) // size))
        page = min(max(1, page), pages)
        shown = names[(page - 1) * size : page * size]
        partitions = [(name, p) for name in shown for p in metadata.topics[name].partitions]
        starts = self.offsets(partitions, OffsetSpec.earliest())
        ends = self.offsets(partitions, OffsetSpec.latest())
        rows = [
            TopicRow(
                name,
                len(metadata.topics[name].partitions),
                sum(
                    ends.get((name, p), 0) - starts.get((name, p), 0)
                    for p in metadata.topics[name].partitions
                ),
                sum(ends.get((name, p), 0) for p in metadata.topics[name].partitions),
            )
            for name in shown
        ]
        return TopicPage(rows, len(names), page, pages)

    def offsets(self, partitions: Iterable[tuple[str, int]], spec: OffsetSpec) -> dict[tuple[str, int], int]:
        """ListOffsets for the given partitions only (earliest, latest, or a timestamp's first offset).

        Retriable answers (a leader that moved or is not known yet, as just after a create on Apache Kafka)
        are asked again until the timeout; librdkafka's list_offsets does not retry them itself.
        """
        request = {TopicPartition(t, p): spec for t, p in partitions}
        found: dict[tuple[str, int], int] = {}
        deadline = time.monotonic() + self.timeout
        while request:
            futures = self.admin.list_offsets(request, request_timeout=self.timeout)
            retry = {}
            for tp, future in futures.items():
                try:
                    found[(tp.topic, tp.partition)] = future.result(timeout=self.timeout + 5).offset
                except KafkaException as error:
                    if not retriable(error) or time.monotonic() > deadline:
                        what = f"cannot list the offsets of {tp.topic}"
                        raise ClusterError(f"{what}: {error_text(error)}") from error
                    retry[tp] = spec
            request = retry
            if request:
                time.sleep(0.05)
        return found

    def topic(self, name: str) -> TopicDetail:
        metadata = self.metadata(name)
        topic = metadata.topics.get(name)
        if topic is None or (
            topic.error is not None and topic.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        ):
            raise ClusterError(f"topic {name!r} does not exist")
        if topic.error is not None:
            raise ClusterError(f"cannot describe topic {name!r}: {topic.error.str()}")
        numbers = sorted(topic.partitions)
        starts = self.offsets([(name, p) for p in numbers], OffsetSpec.earliest())
        ends = self.offsets([(name, p) for p in numbers], OffsetSpec.latest())
        partitions = [
            PartitionRow(
                p,
                topic.partitions[p].leader,
                list(topic.partitions[p].replicas),
                starts[(name, p)],
                ends[(name, p)],
            )
            for p in numbers
        ]
        return TopicDetail(name, partitions, self.topic_configs(name))

    def topic_configs(self, name: str) -> list[ConfigRow]:
        resource = ConfigResource(ResourceType.TOPIC, name)
        future = self.admin.describe_configs([resource], request_timeout=self.timeout)[resource]
        entries: dict[str, ConfigEntry] = self._result(future, f"describe the configs of {name!r}")
        return [
            ConfigRow(
                e.name,
                None if e.is_sensitive else e.value,
                e.is_default,
                e.is_read_only,
                e.is_sensitive,
            )
            for e in sorted(entries.values(), key=lambda e: e.name)
        ]

    def create_topic(self, name: str, partitions: int, configs: dict[str, str]) -> None:
        topic = NewTopic(name, num_partitions=partitions, replication_factor=-1, config=configs)
        futures = self.admin.create_topics(
            [topic], operation_timeout=self.timeout, request_timeout=self.timeout
        )
        self._result(futures[name], f"create topic {name!r}")
        self._wait_until_visible(name)

    def _wait_until_visible(self, name: str) -> None:
        """Wait (up to the timeout) until metadata shows the new topic with a leader for every partition.

        Apache Kafka answers CreateTopics once its controller has the topic; the broker serving metadata may
        learn of it a moment later, and the page that follows a create must not say it does not exist.
        """
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            topic = self.metadata(name).topics.get(name)
            if (
                topic is not None
                and topic.error is None
                and all(p.leader >= 0 for p in topic.partitions.values())
            ):
                return
            time.sleep(0.05)

    def delete_topic(self, name: str) -> None:
        futures = self.admin.delete_topics(
            [name], operation_timeout=self.timeout, request_timeout=self.timeout
        )
        self._result(futures[name], f"delete topic {name!r}")

    def alter_topic_config(self, name: str, key: str, value: str | None) -> None:
        """Set one topic config, or with value None return it to the default (IncrementalAlterConfigs)."""
        operation = AlterConfigOpType.DELETE if value is None else AlterConfigOpType.SET
        entry = ConfigEntry(key, value, incremental_operation=operation)
        resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[entry])
        future = self.admin.incremental_alter_configs([resource], request_timeout=self.timeout)[resource]
        self._result(future, f"change {key} of {name!r}")

    # --- consumer groups ----------------------------------------------------------------------------

    def groups(self) -> list[GroupRow]:
        future = self.admin.list_consumer_groups(request_timeout=self.timeout)
        result = self._result(future, "list consumer groups")
        return sorted(
            (GroupRow(g.group_id, GROUP_STATES.get(g.state, str(g.state))) for g in result.valid),
            key=lambda g: g.group_id,
        )

    def group(self, group_id: str) -> GroupDetail:
        future = self.admin.describe_consumer_groups([group_id], request_timeout=self.timeout)[group_id]
        description = self._result(future, f"describe group {group_id!r}")
        # Dead: the coordinator does not know the group. Its offsets are not asked for: librdkafka 2.16 can
        # crash on OffsetFetch for an unknown group.
        if description.state == ConsumerGroupState.DEAD:
            raise ClusterError(f"consumer group {group_id!r} does not exist")
        request = [ConsumerGroupTopicPartitions(group_id)]
        offsets_future = self.admin.list_consumer_group_offsets(request, request_timeout=self.timeout)[
            group_id
        ]
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in self._result(offsets_future, f"fetch the offsets of {group_id!r}").topic_partitions
            if tp.offset >= 0
        }
        members = [
            Member(
                m.member_id,
                m.client_id,
                m.host,
                sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions),
            )
            for m in description.members
        ]
        owners = {tp: m.member_id for m in members for tp in m.assignment}
        keys = sorted(set(committed) | set(owners))
        ends = self.offsets(keys, OffsetSpec.latest())
        partitions = [
            GroupPartition(t, p, committed.get((t, p)), ends.get((t, p)), owners.get((t, p))) for t, p in keys
        ]
        return GroupDetail(
            group_id,
            GROUP_STATES.get(description.state, str(description.state)),
            description.partition_assignor or "",
            members,
            partitions,
        )

    def reset_targets(
        self, group: GroupDetail, topic: str, spec: OffsetSpec | int
    ) -> list[tuple[int, int | None, int]]:
        """(partition, committed now, new offset) for every partition of `topic` if the reset were applied.

        `spec` is earliest/latest/a time (OffsetSpec) or an exact offset, which must lie within each
        partition's start..end (ClusterError otherwise, so nothing is committed).
        """
        metadata = self.metadata(topic)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise ClusterError(f"topic {topic!r} does not exist")
        keys = [(topic, p) for p in sorted(metadata.topics[topic].partitions)]
        ends = self.offsets(keys, OffsetSpec.latest())
        if isinstance(spec, int):
            starts = self.offsets(keys, OffsetSpec.earliest())
            for key in keys:
                if not starts[key] <= spec <= ends[key]:
                    raise ClusterError(
                        f"offset {spec} is outside partition {key[1]} of {topic!r}, "
                        f"which holds offsets {starts[key]}..{ends[key]}"
                    )
            targets = dict.fromkeys(keys, spec)
        else:
            # A time after the last record has no offset (-1): the reset then goes to the log end.
            targets = {
                key: offset if offset >= 0 else ends[key] for key, offset in self.offsets(keys, spec).items()
            }
        committed = {(p.topic, p.partition): p.committed for p in group.partitions}
        return [(p, committed.get((topic, p)), targets[(topic, p)]) for _, p in keys]

    def commit_offsets(self, group_id: str, topic: str, offsets: dict[int, int]) -> None:
        """AlterConsumerGroupOffsets; the coordinator refuses it while the group has active members."""
        request = [
            ConsumerGroupTopicPartitions(
                group_id, [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())]
            )
        ]
        future = self.admin.alter_consumer_group_offsets(request, request_timeout=self.timeout)[group_id]
        result = self._result(future, f"reset the offsets of {group_id!r}")
        for tp in result.topic_partitions:
            if tp.error is not None:
                raise ClusterError(
                    f"cannot reset the offsets of {group_id!r} on {tp.topic}/{tp.partition}: {tp.error.str()}"
                )
