"""ListOffsets (2), DeleteRecords (21) and OffsetForLeaderEpoch (23): positions in a partition log.

ListOffsets: -2 is the log start offset, -1 the high watermark (the last stable offset under read_committed),
-3 (v7) the record with the largest timestamp, any other value the first offset whose timestamp is at or after
it, found through the time index. DeleteRecords moves the log start offset (-1 means the high watermark);
whole segments below it are deleted. One node means one leader epoch, 0, for every partition.
"""

from __future__ import annotations

from typing import Any

from strom.broker.dispatch import BrokerServices, RequestContext, Response
from strom.broker.topics import LEADER_EPOCH
from strom.log.errors import OffsetOutOfRangeError
from strom.protocol.error_codes import ErrorCode
from strom.protocol.field_values import LATEST_TIMESTAMP, IsolationLevel


def _list_one(broker: BrokerServices, topic: str, p: Any, isolation_level: int) -> dict[str, Any]:
    result: dict[str, Any] = {"partition_index": p.partition_index, "timestamp": -1, "offset": -1}
    partition = broker.partition(topic, p.partition_index)
    if partition is None:
        return {**result, "error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "leader_epoch": -1}
    if getattr(p, "current_leader_epoch", -1) > LEADER_EPOCH:
        return {**result, "error_code": ErrorCode.UNKNOWN_LEADER_EPOCH, "leader_epoch": -1}
    if p.timestamp == LATEST_TIMESTAMP and isolation_level == IsolationLevel.READ_COMMITTED:
        found: tuple[int, int] | None = (partition.last_stable_offset, -1)
    else:
        found = partition.offsets_for_timestamp(p.timestamp)
    offset, timestamp = found if found is not None else (-1, -1)
    return {
        **result,
        "error_code": ErrorCode.NONE,
        "offset": offset,
        "timestamp": timestamp,
        "leader_epoch": LEADER_EPOCH,
    }


async def list_offsets(ctx: RequestContext, request: Any) -> Response:
    isolation = getattr(request, "isolation_level", 0)
    topics = [
        {"name": t.name, "partitions": [_list_one(ctx.broker, t.name, p, isolation) for p in t.partitions]}
        for t in request.topics
    ]
    return {"throttle_time": 0, "topics": topics}


def _delete_one(broker: BrokerServices, topic: str, p: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"partition_index": p.partition_index, "low_watermark": -1}
    partition = broker.partition(topic, p.partition_index)
    if partition is None:
        return {**result, "error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    try:
        low = partition.delete_records_before(p.offset)
    except OffsetOutOfRangeError:
        return {**result, "error_code": ErrorCode.OFFSET_OUT_OF_RANGE}
    return {**result, "low_watermark": low, "error_code": ErrorCode.NONE}


async def delete_records(ctx: RequestContext, request: Any) -> Response:
    topics = [
        {"name": t.name, "partitions": [_delete_one(ctx.broker, t.name, p) for p in t.partitions]}
        for t in request.topics
    ]
    return {"throttle_time": 0, "topics": topics}


def _epoch_one(broker: BrokerServices, topic: str, p: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"partition": p.partition, "leader_epoch": -1, "end_offset": -1}
    partition = broker.partition(topic, p.partition)
    if partition is None:
        return {**result, "error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    if p.current_leader_epoch > LEADER_EPOCH:
        return {**result, "error_code": ErrorCode.UNKNOWN_LEADER_EPOCH}
    epoch, end_offset = partition.end_offset_for_epoch(p.leader_epoch)
    return {**result, "error_code": ErrorCode.NONE, "leader_epoch": epoch, "end_offset": end_offset}


async def offset_for_leader_epoch(ctx: RequestContext, request: Any) -> Response:
    topics = [
        {"topic": t.topic, "partitions": [_epoch_one(ctx.broker, t.topic, p) for p in t.partitions]}
        for t in request.topics
    ]
    return {"throttle_time": 0, "topics": topics}
