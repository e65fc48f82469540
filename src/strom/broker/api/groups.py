"""Consumer-group APIs: FindCoordinator (10), JoinGroup (11), Heartbeat (12), LeaveGroup (13), SyncGroup (14),
OffsetCommit (8), OffsetFetch (9), DescribeGroups (15), ListGroups (16), DeleteGroups (42), OffsetDelete (47).

Each handler translates one request version into a `GroupCoordinator` call and its answer back; the protocol
logic lives in `strom.broker.coordinator.group`, whose one instance the broker owns (`ctx.broker.groups`).
JoinGroup and SyncGroup await a future the coordinator completes when the join phase ends or the leader's
assignment arrives. One node coordinates every group and every transactional id, so FindCoordinator names
this broker.

Versions (listed in `strom.broker.handlers`): the reference's v1 advertisement, with the minimums of
OffsetCommit (2) and OffsetFetch (1) raised to what the codec decodes (Kafka 4 removed the older ones too,
KIP-896).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from typing import Any, TypeVar

from strom.broker.coordinator.group import (
    JoinRequest,
    OffsetCommit,
    SyncRequest,
    is_valid_group_id,
)
from strom.broker.coordinator.membership import JoinResult, SyncResult
from strom.broker.dispatch import BrokerServices, RequestContext, Response
from strom.protocol.error_codes import ErrorCode
from strom.protocol.field_values import (
    AUTHORIZED_OPERATIONS_OMITTED,
    AclOperation,
    CoordinatorType,
    authorized_operations,
)

# No authorizer: every group operation is allowed.
GROUP_OPERATIONS_ALL = authorized_operations(AclOperation.READ, AclOperation.DELETE, AclOperation.DESCRIBE)

T = TypeVar("T")


def _ms(value: Any, default: int = -1) -> int:
    """Milliseconds of a kio duration field (decoded as a timedelta)."""
    if value is None:
        return default
    if isinstance(value, datetime.timedelta):
        return int(value / datetime.timedelta(milliseconds=1))
    return int(value)


def _partition_errors(topics: Any, errors: dict[tuple[str, int], ErrorCode]) -> list[dict[str, Any]]:
    """The per-partition answer of OffsetCommit and OffsetDelete: every requested partition, in request order,
    with the error decided for it."""
    return [
        {
            "name": topic.name,
            "partitions": [
                {"partition_index": p.partition_index, "error_code": errors[(topic.name, p.partition_index)]}
                for p in topic.partitions
            ],
        }
        for topic in topics
    ]


async def _wait(register: Callable[[Callable[[T], None]], None]) -> T:
    """Hand the coordinator a callback and wait for its single answer.

    If the client disconnects the handler is cancelled; the coordinator may still call back later, which
    must then be ignored rather than raise on a cancelled future.
    """
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    def answer(result: T) -> None:
        if not future.done():
            future.set_result(result)

    register(answer)
    return await future


def _partition_exists(broker: BrokerServices, topic: str, partition: int) -> bool:
    info = broker.topics.get(topic)
    return info is not None and 0 <= partition < info.partitions


# ---------------------------------------------------------------------------------- FindCoordinator


async def find_coordinator(ctx: RequestContext, request: Any) -> Response:
    key_type = getattr(request, "key_type", CoordinatorType.GROUP)
    broker = ctx.broker
    if key_type not in (CoordinatorType.GROUP, CoordinatorType.TRANSACTION):
        return {
            "throttle_time": 0,
            "error_code": ErrorCode.INVALID_REQUEST,
            "error_message": f"unknown coordinator key type {key_type}",
            "node_id": -1,
            "host": "",
            "port": -1,
        }
    return {
        "throttle_time": 0,
        "error_code": ErrorCode.NONE,
        "error_message": None,
        "node_id": broker.node_id,
        "host": broker.advertised_host,
        "port": broker.advertised_port,
    }


# ---------------------------------------------------------------------------------- JoinGroup / SyncGroup


async def join_group(ctx: RequestContext, request: Any) -> Response:
    version = ctx.api_version
    session_ms = _ms(request.session_timeout)
    instance_id = getattr(request, "group_instance_id", None)
    join = JoinRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        group_instance_id=instance_id,
        protocol_type=request.protocol_type,
        protocols=[(p.name, bytes(p.metadata)) for p in request.protocols],
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=_ms(getattr(request, "rebalance_timeout", None), session_ms)
        if version >= 1
        else session_ms,
        client_id=ctx.client_id or "",
        client_host=f"/{ctx.client_host}",
        require_known_member_id=version >= 4 and instance_id is None,
    )
    result: JoinResult = await _wait(lambda cb: ctx.broker.groups.join_group(join, cb))
    return {
        "throttle_time": 0,
        "error_code": result.error,
        "generation_id": result.generation_id,
        "protocol_type": result.protocol_type,
        # Nullable only from v7; older versions carry "" for "none chosen".
        "protocol_name": result.protocol_name if version >= 7 else (result.protocol_name or ""),
        "leader": result.leader_id,
        "member_id": result.member_id,
        "members": [
            {"member_id": m.member_id, "group_instance_id": m.group_instance_id, "metadata": m.metadata}
            for m in result.members
        ],
    }


async def sync_group(ctx: RequestContext, request: Any) -> Response:
    sync = SyncRequest(
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        assignments={a.member_id: bytes(a.assignment) for a in request.assignments},
        protocol_type=getattr(request, "protocol_type", None),
        protocol_name=getattr(request, "protocol_name", None),
    )
    result: SyncResult = await _wait(lambda cb: ctx.broker.groups.sync_group(sync, cb))
    return {
        "throttle_time": 0,
        "error_code": result.error,
        "protocol_type": result.protocol_type if result.error == ErrorCode.NONE else None,
        "protocol_name": result.protocol_name if result.error == ErrorCode.NONE else None,
        "assignment": result.assignment,
    }


# ------------------------------------------------------------------------------ Heartbeat / LeaveGroup


async def heartbeat(ctx: RequestContext, request: Any) -> Response:
    error = ctx.broker.groups.heartbeat(
        request.group_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
        request.generation_id,
    )
    return {"throttle_time": 0, "error_code": error}


async def leave_group(ctx: RequestContext, request: Any) -> Response:
    if ctx.api_version < 3:
        top, errors = ctx.broker.groups.leave_group(request.group_id, [(request.member_id, None)])
        # v0-2 have no member list: the member's own error is the answer.
        error = top if top != ErrorCode.NONE or not errors else errors[0]
        return {"throttle_time": 0, "error_code": error, "members": []}
    leaving = [(m.member_id, m.group_instance_id) for m in request.members]
    top, errors = ctx.broker.groups.leave_group(request.group_id, leaving)
    return {
        "throttle_time": 0,
        "error_code": top,
        "members": [
            {"member_id": member_id, "group_instance_id": instance_id, "error_code": error}
            for (member_id, instance_id), error in zip(leaving, errors, strict=False)
        ],
    }


# ---------------------------------------------------------------------------------- offsets


async def offset_commit(ctx: RequestContext, request: Any) -> Response:
    version = ctx.api_version
    retention_ms = _ms(getattr(request, "retention_time", None)) if 2 <= version <= 4 else -1
    errors: dict[tuple[str, int], ErrorCode] = {}
    valid: list[OffsetCommit] = []
    for topic in request.topics:
        for p in topic.partitions:
            if not _partition_exists(ctx.broker, topic.name, p.partition_index):
                errors[(topic.name, p.partition_index)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            valid.append(
                OffsetCommit(
                    topic=topic.name,
                    partition=p.partition_index,
                    offset=p.committed_offset,
                    leader_epoch=getattr(p, "committed_leader_epoch", -1),
                    metadata=p.committed_metadata,
                )
            )
    if valid or not errors:
        errors.update(
            ctx.broker.groups.commit_offsets(
                request.group_id,
                request.generation_id_or_member_epoch,
                request.member_id,
                getattr(request, "group_instance_id", None),
                valid,
                retention_ms,
            )
        )
    return {
        "throttle_time": 0,
        "topics": _partition_errors(request.topics, errors),
    }


async def offset_fetch(ctx: RequestContext, request: Any) -> Response:
    group_id = request.group_id
    wanted = None
    if request.topics is not None:
        wanted = [(t.name, p) for t in request.topics for p in t.partition_indexes]
    if not is_valid_group_id(group_id, allow_empty=True):
        error = ErrorCode.INVALID_GROUP_ID
        rows: list[tuple[str, int, Any]] = [(t, p, None) for t, p in wanted or []]
    else:
        error = ErrorCode.NONE
        rows = list(ctx.broker.groups.fetch_offsets(group_id, wanted))
    topics: dict[str, list[dict[str, Any]]] = {}
    for topic, partition, value in rows:
        topics.setdefault(topic, []).append(
            {
                "partition_index": partition,
                "committed_offset": value.offset if value is not None else -1,
                "committed_leader_epoch": value.leader_epoch if value is not None else -1,
                "metadata": value.metadata if value is not None else "",
                # v0-1 have no top-level error: each partition carries it.
                "error_code": error if ctx.api_version < 2 else ErrorCode.NONE,
            }
        )
    return {
        "throttle_time": 0,
        "error_code": error,
        "topics": [{"name": name, "partitions": parts} for name, parts in topics.items()],
    }


async def offset_delete(ctx: RequestContext, request: Any) -> Response:
    unknown: dict[tuple[str, int], ErrorCode] = {}
    wanted: list[tuple[str, int]] = []
    for topic in request.topics:
        for p in topic.partitions:
            tp = (topic.name, p.partition_index)
            if _partition_exists(ctx.broker, *tp):
                wanted.append(tp)
            else:
                unknown[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    top, errors = ctx.broker.groups.delete_offsets(request.group_id, wanted)
    if top != ErrorCode.NONE:
        return {"throttle_time": 0, "error_code": top, "topics": []}
    errors.update(unknown)
    return {
        "throttle_time": 0,
        "error_code": ErrorCode.NONE,
        "topics": _partition_errors(request.topics, errors),
    }


# ---------------------------------------------------------------------------------- admin


async def describe_groups(ctx: RequestContext, request: Any) -> Response:
    operations = getattr(request, "include_authorized_operations", False)
    groups = []
    for group_id in request.groups:
        d = ctx.broker.groups.describe_group(group_id)
        groups.append(
            {
                "error_code": d.error,
                "group_id": d.group_id,
                "group_state": d.state,
                "protocol_type": d.protocol_type,
                "protocol_data": d.protocol,
                "members": [
                    {
                        "member_id": m.member_id,
                        "group_instance_id": m.group_instance_id,
                        "client_id": m.client_id,
                        "client_host": m.client_host,
                        "member_metadata": m.metadata,
                        "member_assignment": m.assignment,
                    }
                    for m in d.members
                ],
                "authorized_operations": GROUP_OPERATIONS_ALL
                if operations
                else AUTHORIZED_OPERATIONS_OMITTED,
            }
        )
    return {"throttle_time": 0, "groups": groups}


async def list_groups(ctx: RequestContext, request: Any) -> Response:
    states = getattr(request, "states_filter", ()) or ()
    return {
        "throttle_time": 0,
        "error_code": ErrorCode.NONE,
        "groups": [
            {"group_id": g.group_id, "protocol_type": g.protocol_type, "group_state": g.state}
            for g in ctx.broker.groups.list_groups(states)
        ],
    }


async def delete_groups(ctx: RequestContext, request: Any) -> Response:
    results = ctx.broker.groups.delete_groups(request.groups_names)
    return {
        "throttle_time": 0,
        "results": [{"group_id": g, "error_code": results[g]} for g in request.groups_names],
    }
