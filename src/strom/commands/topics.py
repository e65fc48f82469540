"""`strom topics create|list|describe|delete`: topic administration against strom or any Kafka cluster.

Works through confluent-kafka's AdminClient, so what it shows is what a Kafka client sees: partitions with
their leader, replicas and in-sync replicas, the earliest and latest offsets, and every config that differs
from the default.
"""

from __future__ import annotations

import argparse

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    ClusterMetadata,
    ConfigResource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from strom.commands.connection import (
    CommandError,
    add_connection_arguments,
    admin_client,
    cluster_metadata,
    describe,
    reporting_errors,
    require_topic,
)
from strom.commands.table import Cell, render_table


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "topics", help="create, list, describe and delete topics", description=__doc__
    )
    actions = parser.add_subparsers(dest="action", required=True)

    create = actions.add_parser("create", help="create a topic")
    create.add_argument("topic")
    create.add_argument("--partitions", type=int, default=-1, help="default: the broker's num.partitions")
    create.add_argument(
        "--replication-factor", type=int, default=-1, help="default: the broker's default.replication.factor"
    )
    create.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a topic config, e.g. retention.ms=60000",
    )
    create.set_defaults(func=reporting_errors(create_topic))

    listing = actions.add_parser("list", help="list topics with their partition counts")
    listing.add_argument(
        "--internal", action="store_true", help="include internal topics (__consumer_offsets)"
    )
    listing.set_defaults(func=reporting_errors(list_topics))

    info = actions.add_parser("describe", help="partitions, offsets and configs of topics")
    info.add_argument("topics", nargs="*", help="default: every non-internal topic")
    info.set_defaults(func=reporting_errors(describe_topics))

    delete = actions.add_parser("delete", help="delete topics and their data")
    delete.add_argument("topics", nargs="+")
    delete.set_defaults(func=reporting_errors(delete_topics))

    for action in (create, listing, info, delete):
        add_connection_arguments(action)


def parse_configs(pairs: list[str]) -> dict[str, str]:
    configs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"--config expects KEY=VALUE, got {pair!r}")
        configs[key] = value
    return configs


def create_topic(args: argparse.Namespace) -> int:
    admin = admin_client(args)
    cluster_metadata(admin, args)
    topic = NewTopic(
        args.topic,
        num_partitions=args.partitions,
        replication_factor=args.replication_factor,
        config=parse_configs(args.config),
    )
    future = admin.create_topics([topic], operation_timeout=args.timeout, request_timeout=args.timeout)[
        args.topic
    ]
    try:
        future.result(timeout=args.timeout + 5)
    except KafkaException as error:
        raise CommandError(f"cannot create topic {args.topic!r}: {describe(error)}") from error
    print(f"Created topic {args.topic}.")
    return 0


def _visible(metadata: ClusterMetadata, internal: bool) -> list[str]:
    return sorted(name for name in metadata.topics if internal or not name.startswith("__"))


def list_topics(args: argparse.Namespace) -> int:
    metadata = cluster_metadata(admin_client(args), args)
    rows: list[list[Cell]] = [
        [name, len(metadata.topics[name].partitions)] for name in _visible(metadata, args.internal)
    ]
    print(render_table(["TOPIC", "PARTITIONS"], rows))
    return 0


def _offsets(
    admin: AdminClient, topic: str, partitions: list[int], spec: OffsetSpec, timeout: float
) -> dict[int, int]:
    if not partitions:
        return {}
    futures = admin.list_offsets(
        {TopicPartition(topic, p): spec for p in partitions}, request_timeout=timeout
    )
    try:
        return {tp.partition: future.result(timeout=timeout + 5).offset for tp, future in futures.items()}
    except KafkaException as error:
        raise CommandError(f"cannot list offsets of {topic!r}: {describe(error)}") from error


def _changed_configs(admin: AdminClient, topic: str, timeout: float) -> list[str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    try:
        entries = admin.describe_configs([resource], request_timeout=timeout)[resource].result(
            timeout=timeout + 5
        )
    except KafkaException as error:
        raise CommandError(f"cannot describe the configs of {topic!r}: {describe(error)}") from error
    return sorted(f"{e.name}={e.value}" for e in entries.values() if not e.is_default and not e.is_sensitive)


def describe_topics(args: argparse.Namespace) -> int:
    admin = admin_client(args)
    metadata = cluster_metadata(admin, args)
    names = args.topics or _visible(metadata, internal=False)
    for name in names:
        require_topic(metadata, name, hint=False)
    blocks = []
    for name in names:
        topic = metadata.topics[name]
        if topic.error is not None:
            raise CommandError(f"cannot describe topic {name!r}: {topic.error.str()}")
        partitions = sorted(topic.partitions)
        earliest = _offsets(admin, name, partitions, OffsetSpec.earliest(), args.timeout)
        latest = _offsets(admin, name, partitions, OffsetSpec.latest(), args.timeout)
        rows: list[list[Cell]] = []
        for p in partitions:
            info = topic.partitions[p]
            rows.append([
                p, info.leader, ",".join(map(str, info.replicas)), ",".join(map(str, info.isrs)),
                earliest.get(p), latest.get(p),
            ])  # fmt: skip
        configs = _changed_configs(admin, name, args.timeout)
        header = f"Topic: {name}  Partitions: {len(partitions)}  Configs: {', '.join(configs) or '-'}"
        table = render_table(["PARTITION", "LEADER", "REPLICAS", "ISR", "EARLIEST", "LATEST"], rows)
        blocks.append(f"{header}\n{table}")
    print("\n\n".join(blocks))
    return 0


def delete_topics(args: argparse.Namespace) -> int:
    admin = admin_client(args)
    metadata = cluster_metadata(admin, args)
    for name in args.topics:
        require_topic(metadata, name, hint=False)
    futures = admin.delete_topics(args.topics, operation_timeout=args.timeout, request_timeout=args.timeout)
    for name, future in futures.items():
        try:
            future.result(timeout=args.timeout + 5)
        except KafkaException as error:
            raise CommandError(f"cannot delete topic {name!r}: {describe(error)}") from error
        print(f"Deleted topic {name}.")
    return 0
