"""`strom groups list|describe`: consumer groups and how far behind they are, like kafka-consumer-groups.

`describe` shows, per partition the group has committed or is assigned, the committed offset, the log end
offset, the lag between them and the member that owns the partition now.
"""

from __future__ import annotations

import argparse

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConsumerGroupDescription, OffsetSpec

from strom.commands.connection import (
    CommandError,
    add_connection_arguments,
    admin_client,
    cluster_metadata,
    describe,
    reporting_errors,
)
from strom.commands.table import Cell, render_table


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "groups", help="list consumer groups and show their lag", description=__doc__
    )
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every consumer group with its state")
    listing.set_defaults(func=reporting_errors(list_groups))
    info = actions.add_parser("describe", help="committed offsets, lag and owners per partition")
    info.add_argument("groups", nargs="+")
    info.set_defaults(func=reporting_errors(describe_groups))
    for action in (listing, info):
        add_connection_arguments(action)


# The names Kafka's tools print (kafka-consumer-groups --describe --state).
STATE_NAMES = {
    ConsumerGroupState.PREPARING_REBALANCING: "PreparingRebalance",
    ConsumerGroupState.COMPLETING_REBALANCING: "CompletingRebalance",
    ConsumerGroupState.STABLE: "Stable",
    ConsumerGroupState.DEAD: "Dead",
    ConsumerGroupState.EMPTY: "Empty",
}


def _state(state: object) -> str:
    return STATE_NAMES.get(state, "Unknown") if isinstance(state, ConsumerGroupState) else str(state)


def list_groups(args: argparse.Namespace) -> int:
    admin = admin_client(args)
    cluster_metadata(admin, args)
    try:
        result = admin.list_consumer_groups(request_timeout=args.timeout).result(timeout=args.timeout + 5)
    except KafkaException as error:
        raise CommandError(f"cannot list consumer groups: {describe(error)}") from error
    rows: list[list[Cell]] = [
        [g.group_id, _state(g.state)] for g in sorted(result.valid, key=lambda g: g.group_id)
    ]
    print(render_table(["GROUP", "STATE"], rows))
    return 0


def _describe(admin: AdminClient, group: str, timeout: float) -> ConsumerGroupDescription:
    future = admin.describe_consumer_groups([group], request_timeout=timeout)[group]
    try:
        description: ConsumerGroupDescription = future.result(timeout=timeout + 5)
    except KafkaException as error:
        raise CommandError(f"cannot describe group {group!r}: {describe(error)}") from error
    return description


def _committed(admin: AdminClient, group: str, timeout: float) -> dict[tuple[str, int], int]:
    request = [ConsumerGroupTopicPartitions(group)]
    future = admin.list_consumer_group_offsets(request, request_timeout=timeout)[group]
    try:
        partitions = future.result(timeout=timeout + 5).topic_partitions
    except KafkaException as error:
        raise CommandError(f"cannot fetch the offsets of group {group!r}: {describe(error)}") from error
    return {(tp.topic, tp.partition): tp.offset for tp in partitions if tp.offset >= 0}


def _log_ends(
    admin: AdminClient, partitions: set[tuple[str, int]], timeout: float
) -> dict[tuple[str, int], int]:
    if not partitions:
        return {}
    request = {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions}
    try:
        return {
            (tp.topic, tp.partition): future.result(timeout=timeout + 5).offset
            for tp, future in admin.list_offsets(request, request_timeout=timeout).items()
        }
    except KafkaException as error:
        raise CommandError(f"cannot list the log end offsets: {describe(error)}") from error


def describe_groups(args: argparse.Namespace) -> int:
    admin = admin_client(args)
    cluster_metadata(admin, args)
    blocks = []
    for group in args.groups:
        description = _describe(admin, group, args.timeout)
        # A group with only committed offsets is Empty; Dead means the coordinator does not know it. Asking
        # for the offsets of an unknown group is also avoided: it crashes librdkafka 2.16 in some states.
        if description.state == ConsumerGroupState.DEAD:
            raise CommandError(f"consumer group {group!r} does not exist")
        committed = _committed(admin, group, args.timeout)
        owners = {
            (tp.topic, tp.partition): member
            for member in description.members
            for tp in member.assignment.topic_partitions
        }
        partitions = set(committed) | set(owners)
        ends = _log_ends(admin, partitions, args.timeout)
        rows: list[list[Cell]] = []
        for topic, partition in sorted(partitions):
            current, end = committed.get((topic, partition)), ends.get((topic, partition))
            lag = end - current if current is not None and end is not None else None
            member = owners.get((topic, partition))
            rows.append([
                topic, partition, current, end, lag,
                member.member_id if member else None, member.host if member else None,
                member.client_id if member else None,
            ])  # fmt: skip
        header = (
            f"Group: {group}  State: {_state(description.state)}  Members: {len(description.members)}"
            f"  Assignor: {description.partition_assignor or '-'}"
        )
        headers = [
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ]
        blocks.append(f"{header}\n{render_table(headers, rows)}")
    print("\n\n".join(blocks))
    return 0
