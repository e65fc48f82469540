"""Topic and config administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
AlterConfigs, IncrementalAlterConfigs and DescribeCluster.

All of them act on one node that is its own controller, so replication factors other than 1 (or -1, "the
broker default") and replica assignments naming other brokers are refused. Topic configs are validated
before anything changes, persisted in the topic registry, and pushed to the topic's open partition logs at
once (retention, compaction and segment settings apply live).
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from strom.broker.api.metadata import CLUSTER_OPERATIONS_ALL
from strom.broker.config import (
    BROKER_KEYS,
    TOPIC_KEYS,
    ConfigSource,
    normalize_topic_configs,
)
from strom.broker.dispatch import BrokerServices, RequestContext, Response
from strom.broker.errors import BrokerError
from strom.broker.topics import TopicExistsError, TopicInfo
from strom.protocol.error_codes import ErrorCode
from strom.protocol.field_values import (
    AUTHORIZED_OPERATIONS_OMITTED,
    ConfigResourceType,
    EndpointType,
)


def _error(code: ErrorCode, message: str | None = None) -> dict[str, Any]:
    return {"error_code": code, "error_message": message}


def _check_replication(
    broker: BrokerServices, replication_factor: int, assignments: Any, partitions: int
) -> None:
    """Refuse layouts one node cannot host (a replication factor above 1, replicas on other brokers)."""
    if replication_factor not in (-1, 1):
        raise _AdminError(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            f"replication factor {replication_factor} is larger than the 1 available broker",
        )
    for assignment in assignments or ():
        if list(assignment.broker_ids) != [broker.node_id]:
            raise _AdminError(
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                f"replica assignment {list(assignment.broker_ids)} names brokers other than {broker.node_id}",
            )
    if assignments and len(assignments) != partitions:
        raise _AdminError(
            ErrorCode.INVALID_REPLICA_ASSIGNMENT, "replica assignments must cover every new partition"
        )


def _check_partition_count(broker: BrokerServices, partitions: int) -> None:
    limit = broker.config.int("max.partitions.per.topic")
    if not 1 <= partitions <= limit:
        raise _AdminError(
            ErrorCode.INVALID_PARTITIONS,
            f"a topic needs between 1 and {limit} partitions (max.partitions.per.topic), got {partitions}",
        )


class _AdminError(BrokerError):
    """A request the admin APIs refuse, with the Kafka error code to answer."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error_code = code


def _config_entries(
    broker: BrokerServices, topic: TopicInfo | None, keys: Any, synonyms: bool
) -> list[dict[str, Any]]:
    """DescribeConfigs entries for a topic (or, with topic None, the broker), filtered by `keys`."""
    entries = []
    if topic is None:
        for name, value, source in broker.config.describe():
            if keys is not None and name not in keys:
                continue
            key = BROKER_KEYS[name]
            entries.append(
                {
                    "name": name,
                    "value": value,
                    "read_only": True,
                    "config_source": int(source),
                    "is_default": source is ConfigSource.DEFAULT_CONFIG,
                    "is_sensitive": key.sensitive,
                    "synonyms": [{"name": name, "value": value, "source": int(source)}] if synonyms else [],
                    "config_type": int(key.type),
                    "documentation": None,
                }
            )
        return entries
    for name, key in sorted(TOPIC_KEYS.items()):
        if keys is not None and name not in keys:
            continue
        chain = broker.config.topic_synonyms(name, topic.configs)
        _, value, source = chain[0]
        entries.append(
            {
                "name": name,
                "value": value,
                "read_only": False,
                "config_source": int(source),
                "is_default": source is ConfigSource.DEFAULT_CONFIG,
                "is_sensitive": False,
                "synonyms": [{"name": n, "value": v, "source": int(s)} for n, v, s in chain]
                if synonyms
                else [],
                "config_type": int(key.type),
                "documentation": None,
            }
        )
    return entries


# --- CreateTopics (19) -----------------------------------------------------------------------------------


async def create_topics(ctx: RequestContext, request: Any) -> Response:
    broker = ctx.broker
    counts = Counter(t.name for t in request.topics)
    results = []
    for entry in request.topics:
        result: dict[str, Any] = {
            "name": entry.name,
            "num_partitions": -1,
            "replication_factor": -1,
            "configs": [],
        }
        try:
            if counts[entry.name] > 1:
                raise _AdminError(
                    ErrorCode.INVALID_REQUEST, f"topic {entry.name!r} appears more than once in the request"
                )
            partitions = entry.num_partitions
            if partitions == -1:
                partitions = len(entry.assignments) or broker.config.int("num.partitions")
            _check_partition_count(broker, partitions)
            _check_replication(broker, entry.replication_factor, entry.assignments, partitions)
            configs = {c.name: c.value for c in entry.configs if c.value is not None}
            configs = broker.topics.check_new(entry.name, partitions, configs)
            broker.validate_topic_configs(configs)
            if not request.validate_only:
                topic = await broker.create_topic_async(entry.name, partitions, configs)
            else:
                topic = TopicInfo(entry.name, uuid.UUID(int=0), partitions, configs)
        except BrokerError as exc:  # _AdminError, InvalidTopicError, TopicExistsError, ConfigError
            results.append({**result, **_error(exc.error_code, str(exc))})
            continue
        configs_out = [
            {k: e[k] for k in ("name", "value", "read_only", "config_source", "is_sensitive")}
            for e in _config_entries(broker, topic, None, False)
        ]
        results.append(
            {
                **result,
                **_error(ErrorCode.NONE),
                "topic_id": topic.topic_id,
                "num_partitions": partitions,
                "replication_factor": 1,
                "configs": configs_out,
            }
        )
    return {"throttle_time": 0, "topics": results}


# --- DeleteTopics (20) -----------------------------------------------------------------------------------


async def delete_topics(ctx: RequestContext, request: Any) -> Response:
    broker = ctx.broker
    responses = []
    for name in request.topic_names:
        if not broker.config.bool("delete.topic.enable"):
            code = ErrorCode.TOPIC_DELETION_DISABLED
        else:
            topic = broker.topics.get(name)
            if topic is None:
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif topic.internal:
                code = ErrorCode.INVALID_REQUEST
            elif broker.topic_busy(name):
                code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION  # another request is deleting or growing it
            else:
                try:
                    await broker.delete_topic_async(name)
                    code = ErrorCode.NONE
                except BrokerError as exc:  # StorageError: the registry could not be written
                    code = exc.error_code
        responses.append({"name": name, "error_code": code, "error_message": None})
    return {"throttle_time": 0, "responses": responses}


# --- CreatePartitions (37) -------------------------------------------------------------------------------


async def create_partitions(ctx: RequestContext, request: Any) -> Response:
    broker = ctx.broker
    results = []
    for entry in request.topics:
        topic = broker.topics.get(entry.name)
        try:
            if topic is None:
                raise _AdminError(
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {entry.name!r} does not exist"
                )
            if topic.internal:
                # Groups are placed on __consumer_offsets partitions by hash modulo the count: growing it
                # would move groups away from their committed offsets.
                raise _AdminError(
                    ErrorCode.INVALID_REQUEST,
                    f"{entry.name} is an internal topic: its partition count is fixed",
                )
            if entry.count <= topic.partitions:
                raise _AdminError(
                    ErrorCode.INVALID_PARTITIONS,
                    f"topic {entry.name!r} has {topic.partitions} partitions; the new count {entry.count} "
                    "must be larger",
                )
            _check_partition_count(broker, entry.count)
            _check_replication(broker, 1, entry.assignments, entry.count - topic.partitions)
            if not request.validate_only:
                await broker.add_partitions_async(entry.name, entry.count)
            results.append({"name": entry.name, **_error(ErrorCode.NONE)})
        except TopicExistsError as exc:  # being created or deleted by another request
            results.append({"name": entry.name, **_error(ErrorCode.REASSIGNMENT_IN_PROGRESS, str(exc))})
        except BrokerError as exc:  # _AdminError, StorageError
            results.append({"name": entry.name, **_error(exc.error_code, str(exc))})
    return {"throttle_time": 0, "results": results}


# --- DescribeConfigs (32) --------------------------------------------------------------------------------


async def describe_configs(ctx: RequestContext, request: Any) -> Response:
    broker = ctx.broker
    synonyms = bool(getattr(request, "include_synonyms", False))
    results = []
    for resource in request.resources:
        base = {
            "resource_type": resource.resource_type,
            "resource_name": resource.resource_name,
            "configs": [],
        }
        keys = None if resource.configuration_keys is None else set(resource.configuration_keys)
        if resource.resource_type == ConfigResourceType.TOPIC:
            topic = broker.topics.get(resource.resource_name)
            if topic is None:
                results.append({**base, **_error(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "unknown topic")})
                continue
            results.append(
                {**base, **_error(ErrorCode.NONE), "configs": _config_entries(broker, topic, keys, synonyms)}
            )
        elif resource.resource_type == ConfigResourceType.BROKER:
            if resource.resource_name not in ("", str(broker.node_id)):
                results.append(
                    {**base, **_error(ErrorCode.INVALID_REQUEST, f"no broker {resource.resource_name!r}")}
                )
                continue
            results.append(
                {**base, **_error(ErrorCode.NONE), "configs": _config_entries(broker, None, keys, synonyms)}
            )
        else:
            results.append(
                {
                    **base,
                    **_error(
                        ErrorCode.INVALID_REQUEST, f"resource type {resource.resource_type} is not supported"
                    ),
                }
            )
    return {"throttle_time": 0, "results": results}


# --- AlterConfigs (33) and IncrementalAlterConfigs (44) -------------------------------------------------


def _apply_alter(
    broker: BrokerServices, topic: str, new_configs: dict[str, str], validate_only: bool
) -> None:
    normalized = normalize_topic_configs(new_configs)
    broker.validate_topic_configs(normalized)
    if not validate_only:
        broker.alter_topic_configs(topic, normalized)


def _alter(ctx: RequestContext, request: Any, incremental: bool) -> Response:
    broker = ctx.broker
    responses = []
    for resource in request.resources:
        base = {"resource_type": resource.resource_type, "resource_name": resource.resource_name}
        try:
            if resource.resource_type == ConfigResourceType.BROKER:
                raise _AdminError(
                    ErrorCode.INVALID_REQUEST,
                    "strom has no dynamic broker configs; set them with `strom broker --set key=value`",
                )
            if resource.resource_type != ConfigResourceType.TOPIC:
                raise _AdminError(
                    ErrorCode.INVALID_REQUEST, f"resource type {resource.resource_type} is not supported"
                )
            topic = broker.topics.get(resource.resource_name)
            if topic is None:
                raise _AdminError(
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {resource.resource_name!r} does not exist"
                )
            if incremental:
                configs = dict(topic.configs)
                for change in resource.configs:
                    configs = broker.config.alter_topic_config(
                        configs, change.name, change.config_operation, change.value
                    )
            else:
                configs = {c.name: c.value for c in resource.configs if c.value is not None}
            _apply_alter(broker, topic.name, configs, request.validate_only)
            responses.append({**base, **_error(ErrorCode.NONE)})
        except BrokerError as exc:  # _AdminError, ConfigError, StorageError
            responses.append({**base, **_error(exc.error_code, str(exc))})
    return {"throttle_time": 0, "responses": responses}


async def alter_configs(ctx: RequestContext, request: Any) -> Response:
    return _alter(ctx, request, incremental=False)


async def incremental_alter_configs(ctx: RequestContext, request: Any) -> Response:
    return _alter(ctx, request, incremental=True)


# --- DescribeCluster (60) --------------------------------------------------------------------------------


async def describe_cluster(ctx: RequestContext, request: Any) -> Response:
    broker = ctx.broker
    endpoint_type = getattr(request, "endpoint_type", EndpointType.BROKER)
    ops = (
        CLUSTER_OPERATIONS_ALL
        if request.include_cluster_authorized_operations
        else AUTHORIZED_OPERATIONS_OMITTED
    )
    return {
        "throttle_time": 0,
        **_error(
            ErrorCode.NONE if endpoint_type == EndpointType.BROKER else ErrorCode.UNSUPPORTED_ENDPOINT_TYPE
        ),
        "endpoint_type": endpoint_type,
        "cluster_id": broker.topics.cluster_id,
        "controller_id": broker.node_id,
        "brokers": [
            {"broker_id": broker.node_id, "host": broker.advertised_host, "port": broker.advertised_port}
        ],
        "cluster_authorized_operations": ops,
    }
