"""Produce (0): hand each partition's records to its log, acknowledge with the offsets or the error.

Every produce-time rule lives in the log (strom.log.validator, as Kafka's LogValidator): the request rules
for Produce v3+, the batch checks over the bytes as received, the topic's compression.type, sizes, keys on
compacted topics, timestamps, producer sequences, offset assignment. This handler only refuses what the log
cannot know (an unknown partition, an internal topic, bad acks) and turns a refusal into the Kafka code the
exception carries: a strom.log `LogError` or a strom.protocol `CorruptRecordError`. A partition's batches
are all validated before any is written, so a bad batch never lands and never half-lands.

Appends run on the event loop thread, one request at a time per connection, so an idempotent producer's
pipelined requests are appended in the order sent. With acks=0 there is no response to carry an error, so a
failed partition closes the connection, as Kafka does, and the client notices through its metadata refresh.

Durability: with acks=all and `log.flush.on.ack=true` (the default) the answer waits until every appended
partition is on disk: the handler awaits `Partition.durable`, which the log's group commit thread resolves
after one fsync shared by every request waiting on that partition (the event loop never blocks on it). A
partition whose fsync fails answers KAFKA_STORAGE_ERROR. acks=1, and acks=all with the setting false, answer
once the records are in the page cache, as Kafka does (docs/protocol.md, "Durability").
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any

from strom.broker.dispatch import BrokerServices, CloseConnection, RawResponse, RequestContext, Response
from strom.log.errors import LogError
from strom.log.partition import Partition
from strom.protocol.error_codes import ErrorCode
from strom.protocol.errors import CorruptRecordError
from strom.protocol.produce_response import PartitionAck, encode_produce_response


def _partition_error(index: int, code: int, message: str | None = None) -> PartitionAck:
    return PartitionAck(index, code, -1, -1, -1, message)


def _produce_partition(
    broker: BrokerServices,
    api_version: int,
    topic: str,
    index: int,
    records: bytes | None,
    synced: list[tuple[int, Future[None]]] | None,
) -> PartitionAck:
    """Append to one partition; with `synced` (acks=all, flush on ack), also queue its fsync there."""
    partition = broker.partition(topic, index)
    if partition is None:
        return _partition_error(index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    info = broker.topics.get(topic)
    if info is not None and info.internal:
        return _partition_error(
            index, ErrorCode.INVALID_TOPIC_EXCEPTION, f"clients may not produce to internal topic {topic}"
        )
    try:
        result = partition.append(records or b"", produce_version=api_version)
    except (LogError, CorruptRecordError) as exc:
        return _partition_error(index, exc.error_code, str(exc))
    if not result.duplicate:
        broker.waiters.notify((topic, index))
        # offsets are assigned densely, so the span is the record count the validator accepted
        broker.metrics.produced(topic, len(records or b""), result.last_offset - result.base_offset + 1)
    if synced is not None:
        synced.append((index, _durable(partition, result.last_offset + 1)))
    return PartitionAck(
        index, ErrorCode.NONE, result.base_offset, result.log_append_time, result.log_start_offset, None
    )


def _durable(partition: Partition, offset: int) -> Future[None]:
    try:
        return partition.durable(offset)
    except RuntimeError as exc:  # the log is closing: its group commit stopped
        future: Future[None] = Future()
        future.set_exception(exc)
        return future


async def _await_durable(acked: list[PartitionAck], synced: list[tuple[int, Future[None]]]) -> None:
    """Wait for the fsyncs of one topic's appends; a failed one turns its acknowledgement into the error."""
    results = await asyncio.gather(*(asyncio.wrap_future(f) for _, f in synced), return_exceptions=True)
    failed = {i: r for (i, _), r in zip(synced, results, strict=True) if isinstance(r, BaseException)}
    for position, ack in enumerate(acked):
        failure = failed.get(ack.partition_index)
        if failure is not None:
            code = failure.error_code if isinstance(failure, LogError) else ErrorCode.KAFKA_STORAGE_ERROR
            acked[position] = _partition_error(ack.partition_index, code, str(failure))


async def produce(ctx: RequestContext, request: Any) -> Response | None:
    broker = ctx.broker
    acks = request.acks
    flush_on_ack = acks == -1 and broker.config.bool("log.flush.on.ack")
    topics = []
    pending: list[tuple[list[PartitionAck], list[tuple[int, Future[None]]]]] = []
    for topic_data in request.topic_data:
        name = topic_data.name
        if acks not in (0, 1, -1):
            acked = [
                _partition_error(pd.index, ErrorCode.INVALID_REQUIRED_ACKS)
                for pd in topic_data.partition_data
            ]
        else:
            synced: list[tuple[int, Future[None]]] | None = [] if flush_on_ack else None
            acked = [
                _produce_partition(broker, ctx.api_version, name, pd.index, pd.records, synced)
                for pd in topic_data.partition_data
            ]
            if synced:
                pending.append((acked, synced))
        topics.append((name, acked))
    for acked, synced in pending:  # every append is queued before the first wait: one group commit
        await _await_durable(acked, synced)
    if acks == 0:
        failed = [ack for _, acks_ in topics for ack in acks_ if ack.error_code != ErrorCode.NONE]
        if failed:
            raise CloseConnection(f"acks=0 produce failed with error {failed[0].error_code}")
        return None
    return RawResponse([encode_produce_response(ctx.api_version, topics)])
