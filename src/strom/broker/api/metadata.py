"""Metadata (3): brokers, cluster id, controller, and topics with their partitions.

One node leads every partition with leader epoch 0 and is its own controller (Java Admin sends
CreateTopics/DeleteTopics to the controller named here). Topic ids are the registry's persisted UUIDs.
Unknown topics are auto-created when `auto.create.topics.enable` and the client allow it.
"""

from __future__ import annotations

from typing import Any

from strom.broker.config import ConfigError
from strom.broker.dispatch import BrokerServices, RequestContext, Response
from strom.broker.topics import (
    INTERNAL_TOPICS,
    LEADER_EPOCH,
    InvalidTopicError,
    TopicInfo,
    validate_topic_name,
)
from strom.protocol.error_codes import ErrorCode
from strom.protocol.field_values import AUTHORIZED_OPERATIONS_OMITTED, AclOperation, authorized_operations

# No authorizer: every topic and cluster operation is allowed.
# The first Metadata version that looks topics up by id.
TOPIC_ID_LOOKUP_VERSION = 12
TOPIC_OPERATIONS_ALL = authorized_operations(
    AclOperation.READ,
    AclOperation.WRITE,
    AclOperation.CREATE,
    AclOperation.DELETE,
    AclOperation.ALTER,
    AclOperation.DESCRIBE,
    AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS,
)
CLUSTER_OPERATIONS_ALL = authorized_operations(
    AclOperation.WRITE,
    AclOperation.CREATE,
    AclOperation.ALTER,
    AclOperation.DESCRIBE,
    AclOperation.CLUSTER_ACTION,
    AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS,
    AclOperation.IDEMPOTENT_WRITE,
    AclOperation.CREATE_TOKENS,
)


def describe_topic(broker: BrokerServices, topic: TopicInfo, operations: bool) -> dict[str, Any]:
    node = broker.node_id
    return {
        "error_code": ErrorCode.NONE,
        "name": topic.name,
        "topic_id": topic.topic_id,
        "is_internal": topic.internal,
        "partitions": [
            {
                "error_code": ErrorCode.NONE,
                "partition_index": index,
                "leader_id": node,
                "leader_epoch": LEADER_EPOCH,
                "replica_nodes": [node],
                "isr_nodes": [node],
                "offline_replicas": [],
            }
            for index in range(topic.partitions)
        ],
        "topic_authorized_operations": TOPIC_OPERATIONS_ALL if operations else AUTHORIZED_OPERATIONS_OMITTED,
    }


def _missing(name: str | None, error: ErrorCode, topic_id: Any = None) -> dict[str, Any]:
    return {
        "error_code": error,
        "name": name,
        "topic_id": topic_id,
        "is_internal": False,
        "partitions": [],
        "topic_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
    }


def _lookup(ctx: RequestContext, name: str, auto_create: bool, operations: bool) -> dict[str, Any]:
    broker = ctx.broker
    topic = broker.topics.get(name)
    if topic is not None:
        return describe_topic(broker, topic, operations)
    try:
        validate_topic_name(name)
    except InvalidTopicError:
        return _missing(name, ErrorCode.INVALID_TOPIC_EXCEPTION)
    if name in INTERNAL_TOPICS or not (auto_create and broker.config.bool("auto.create.topics.enable")):
        return _missing(name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    if broker.topic_busy(name):  # being created by CreateTopics right now: clients retry
        return _missing(name, ErrorCode.LEADER_NOT_AVAILABLE)
    try:
        topic = broker.create_topic(name, broker.config.int("num.partitions"), {})
    except (InvalidTopicError, ConfigError):
        return _missing(name, ErrorCode.INVALID_TOPIC_EXCEPTION)
    return describe_topic(broker, topic, operations)


async def handle(ctx: RequestContext, request: Any) -> Response:
    broker = ctx.broker
    version = ctx.api_version
    operations = bool(getattr(request, "include_topic_authorized_operations", False))
    auto_create = bool(getattr(request, "allow_auto_topic_creation", True))
    requested = request.topics
    if requested is None or (version == 0 and not requested):
        topics = [describe_topic(broker, t, operations) for t in broker.topics.all()]
    elif 10 <= version < TOPIC_ID_LOOKUP_VERSION and any(
        e.name is None or e.topic_id is not None for e in requested
    ):
        # Kafka refuses the whole request: v10 and v11 carry a topic_id field, but lookups by id (and so
        # null names, which the response cannot carry) arrived only in v12
        topics = [_missing(e.name or "", ErrorCode.INVALID_REQUEST, e.topic_id) for e in requested]
    else:
        topics = []
        for entry in requested:
            name = entry.name
            topic_id = getattr(entry, "topic_id", None)
            if name is None and topic_id is not None:
                found = broker.topics.by_id(topic_id)
                if found is None:
                    topics.append(_missing(None, ErrorCode.UNKNOWN_TOPIC_ID, topic_id))
                else:
                    topics.append(describe_topic(broker, found, operations))
                continue
            topics.append(_lookup(ctx, name or "", auto_create, operations))
    include_cluster_ops = bool(getattr(request, "include_cluster_authorized_operations", False))
    return {
        "throttle_time": 0,
        "brokers": [
            {
                "node_id": broker.node_id,
                "host": broker.advertised_host,
                "port": broker.advertised_port,
                "rack": None,
            }
        ],
        "cluster_id": broker.topics.cluster_id,
        "controller_id": broker.node_id,
        "topics": topics,
        "cluster_authorized_operations": CLUSTER_OPERATIONS_ALL
        if include_cluster_ops
        else AUTHORIZED_OPERATIONS_OMITTED,
    }
