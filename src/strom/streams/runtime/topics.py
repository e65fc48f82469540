"""Start-up checks and creation of a topology's topics through the Kafka admin API.

Before a Streams instance joins its group: every user topic it reads must exist (Kafka Streams refuses to
start otherwise), co-partitioned inputs must have equal partition counts (checked by the topology, which names
the topics and counts), and every internal repartition and changelog topic must exist with the partition count
the topology needs and the configs it asks for (changelog `cleanup.policy=compact`, windowed changelog
`compact,delete` with `retention.ms`). An existing internal topic with a different partition count is an
error, not silently used: tasks would read the wrong changelog partitions.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from strom.streams.runtime.errors import InternalTopicError, MissingSourceTopicError

_ADMIN_TIMEOUT_S = 30.0


def partition_counts(
    admin: AdminClient, topics: Iterable[str], timeout_s: float = _ADMIN_TIMEOUT_S
) -> dict[str, int]:
    """Partition count of each existing topic among `topics` (missing topics are left out)."""
    wanted = set(topics)
    metadata = admin.list_topics(timeout=timeout_s)
    counts: dict[str, int] = {}
    for name, topic in metadata.topics.items():
        if name in wanted and topic.error is None and topic.partitions:
            counts[name] = len(topic.partitions)
    return counts


def require_source_topics(admin: AdminClient, topics: Iterable[str]) -> dict[str, int]:
    """Partition counts of the user topics the topology reads; raise naming every missing one."""
    wanted = sorted(set(topics))
    counts = partition_counts(admin, wanted)
    missing = [t for t in wanted if t not in counts]
    if missing:
        raise MissingSourceTopicError(
            f"source topics {missing} do not exist on the cluster; create them (strom topics create / "
            "kafka-topics.sh) before starting the application"
        )
    return counts


def ensure_internal_topics(
    admin: AdminClient,
    specs: Iterable[tuple[str, int, dict[str, str]]],
    replication_factor: int,
    timeout_s: float = _ADMIN_TIMEOUT_S,
) -> None:
    """Create each (name, partitions, configs) that does not exist; check the partition count of those that
    do."""
    specs = list(specs)
    if not specs:
        return
    existing = partition_counts(admin, (name for name, _, _ in specs), timeout_s)
    _check_counts(specs, existing)
    to_create = [
        NewTopic(name, num_partitions=partitions, replication_factor=replication_factor, config=dict(configs))
        for name, partitions, configs in specs
        if name not in existing
    ]
    if to_create:
        futures = admin.create_topics(to_create, request_timeout=timeout_s)
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue  # another instance of the application created it concurrently
                raise InternalTopicError(f"cannot create internal topic {name!r}: {exc}") from exc
    _wait_until_visible(admin, specs, timeout_s)


def _check_counts(specs: list[tuple[str, int, dict[str, str]]], existing: dict[str, int]) -> None:
    for name, partitions, _ in specs:
        have = existing.get(name)
        if have is not None and have != partitions:
            raise InternalTopicError(
                f"internal topic {name!r} exists with {have} partitions but the topology needs {partitions}; "
                "the input topics changed size since it was created. Reset the application "
                "(delete its internal topics and state.dir) or restore the input partition counts."
            )


def _wait_until_visible(
    admin: AdminClient, specs: list[tuple[str, int, dict[str, str]]], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        existing = partition_counts(admin, (name for name, _, _ in specs), timeout_s)
        _check_counts(specs, existing)
        missing = [name for name, _, _ in specs if name not in existing]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise InternalTopicError(
                f"internal topics {missing} were created but are not visible after {timeout_s} s"
            )
        time.sleep(0.1)  # polling metadata: the admin API offers no event for "topic now visible"
