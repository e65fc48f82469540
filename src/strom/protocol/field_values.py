"""Kafka's enumerated field values: the numbers some request and response fields carry, by name.

The one home of these numbers in strom, beside `ApiKey` and `ErrorCode`: handlers compare a request's
`isolation_level` with `IsolationLevel.READ_COMMITTED`, never with 1. Names and values follow Kafka's
(`IsolationLevel`, `FindCoordinatorRequest.CoordinatorType`, `ConfigResource.Type`, `AlterConfigOp.OpType`,
`AclOperation`, `ListOffsetsRequest`'s special timestamps, `DescribeClusterRequest`'s endpoint types).
"""

from __future__ import annotations

from enum import IntEnum


class IsolationLevel(IntEnum):
    """Fetch and ListOffsets: whether records of open or aborted transactions are visible."""

    READ_UNCOMMITTED = 0
    READ_COMMITTED = 1


class CoordinatorType(IntEnum):
    """FindCoordinator `key_type`: what the key names."""

    GROUP = 0
    TRANSACTION = 1


class ConfigResourceType(IntEnum):
    """DescribeConfigs / AlterConfigs `resource_type`."""

    TOPIC = 2
    BROKER = 4


class AlterConfigOp(IntEnum):
    """IncrementalAlterConfigs `config_operation`."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


class AclOperation(IntEnum):
    """The operations of Kafka's authorizer; `*_authorized_operations` fields are bit sets of them."""

    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13


class EndpointType(IntEnum):
    """DescribeCluster `endpoint_type`: whose endpoints the client asks for."""

    BROKER = 1
    CONTROLLER = 2


# An `*_authorized_operations` field the client did not ask for (Kafka's Integer.MIN_VALUE).
AUTHORIZED_OPERATIONS_OMITTED = -(2**31)

# ListOffsets `timestamp` values that name a position instead of a time.
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3


def authorized_operations(*operations: AclOperation) -> int:
    """The bit set an `*_authorized_operations` field carries for `operations`."""
    return sum(1 << op for op in set(operations))
