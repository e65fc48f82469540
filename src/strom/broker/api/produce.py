"""Produce (0): validate record batches from their headers, append them, acknowledge.

The hot path does no per-record work: each partition's records go to the partition log, which validates them
batch by batch from the headers (magic, sizes, CRC-32C over the bytes as received, max.message.bytes,
producer sequences), assigns offsets by patching the batch headers and writes the bytes unchanged. Records
are decoded only where Kafka's rules need them (a compacted topic refuses keyless records). A partition's
batches are all validated before any is written, so a bad batch never lands and never half-lands; the error
travels back as the Kafka code the exception carries (CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, INVALID_RECORD,
OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH, ...). Before that, Kafka's request-level rules for
Produce v3+: exactly one batch per partition and magic 2 only (INVALID_RECORD), zstd only from v7
(UNSUPPORTED_COMPRESSION_TYPE).

Appends run on the event loop thread, one request at a time per connection, so an idempotent producer's
pipelined requests are appended in the order sent. With acks=0 there is no response to carry an error, so a
failed partition closes the connection, as Kafka does, and the client notices through its metadata refresh.
"""

from __future__ import annotations

import struct
from typing import Any

from strom.broker.dispatch import BrokerServices as Broker
from strom.broker.dispatch import CloseConnection, RawResponse, RequestContext, Response
from strom.broker.recompress import recompress, target_codec
from strom.protocol.produce_response import PartitionAck, encode_produce_response

_LENGTH = struct.Struct(">i")
_ATTRS = struct.Struct(">h")
_ATTRIBUTES_END = 23
_TRANSACTIONAL = 0x10
_MAGIC = 16
_CODEC_MASK = 0x07
_ZSTD = 4
_FIRST_ZSTD_VERSION = 7

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC = 17
INVALID_REQUIRED_ACKS = 21
INVALID_TXN_STATE = 48
UNSUPPORTED_COMPRESSION_TYPE = 76
INVALID_RECORD = 87


def _scan_batches(records: bytes) -> tuple[int, bool, bool, bool]:
    """Walk the batch headers only: (batch count, any magic other than 2, any zstd batch, any transactional).

    A malformed header stops the walk; the log refuses such input with the precise error.
    """
    pos, end = 0, len(records)
    count, old_magic, zstd, transactional = 0, False, False, False
    while pos + _ATTRIBUTES_END <= end:
        batch_length = _LENGTH.unpack_from(records, pos + 8)[0]
        attributes = _ATTRS.unpack_from(records, pos + 21)[0]
        count += 1
        old_magic |= records[pos + _MAGIC] != 2
        zstd |= attributes & _CODEC_MASK == _ZSTD
        transactional |= bool(attributes & _TRANSACTIONAL)
        if batch_length <= 0:
            break
        pos += 12 + batch_length
    return count, old_magic, zstd, transactional


def _request_rule_error(
    index: int, api_version: int, count: int, old_magic: bool, zstd: bool
) -> PartitionAck | None:
    """Kafka's ProduceRequest rules for v3+ (ProduceRequest.validateRecords), checked before the log sees
    the bytes."""
    if old_magic:
        return _partition_error(index, INVALID_RECORD, "produce v3+ accepts only record batches of magic 2")
    if count != 1:
        return _partition_error(
            index, INVALID_RECORD, f"produce v3+ takes exactly one record batch per partition, got {count}"
        )
    if zstd and api_version < _FIRST_ZSTD_VERSION:
        return _partition_error(
            index, UNSUPPORTED_COMPRESSION_TYPE, f"zstd batches need produce v7+, got v{api_version}"
        )
    return None


def _partition_error(index: int, code: int, message: str | None = None) -> PartitionAck:
    return PartitionAck(index, code, -1, -1, -1, message)


def _produce_partition(
    broker: Broker, api_version: int, topic: str, index: int, records: bytes | None
) -> PartitionAck:
    partition = broker.partition(topic, index)
    if partition is None:
        return _partition_error(index, UNKNOWN_TOPIC_OR_PARTITION)
    info = broker.topics.get(topic)
    if info is not None and info.internal:
        return _partition_error(index, INVALID_TOPIC, f"clients may not produce to internal topic {topic}")
    if not records:
        return _partition_error(index, INVALID_RECORD, "the produce request holds no record batch")
    count, old_magic, zstd, transactional = _scan_batches(records)
    refused = _request_rule_error(index, api_version, count, old_magic, zstd)
    if refused is not None:
        return refused
    if transactional:
        # Without a transaction coordinator nothing would ever end the transaction, and its open first
        # offset would hold the last stable offset (and read_committed consumers) back for good.
        return _partition_error(index, INVALID_TXN_STATE, "transactional produce is not supported yet")
    try:
        codec = target_codec(broker.config, info.configs) if info is not None else None
        if codec is not None:
            records = recompress(records, codec)
        result = partition.append(records)
    except Exception as exc:
        # strom.protocol and strom.log failures carry the Kafka error code to answer with.
        code = getattr(exc, "error_code", None)
        if not isinstance(code, int):
            raise
        return _partition_error(index, code, str(exc))
    if not result.duplicate:
        broker.waiters.notify((topic, index))
    return PartitionAck(
        index, NONE, result.base_offset, result.log_append_time, result.log_start_offset, None
    )


async def produce(ctx: RequestContext, request: Any) -> Response | None:
    broker = ctx.broker
    acks = request.acks
    topics = []
    for topic_data in request.topic_data:
        name = topic_data.name
        if acks not in (0, 1, -1):
            acked = [_partition_error(pd.index, INVALID_REQUIRED_ACKS) for pd in topic_data.partition_data]
        else:
            acked = [
                _produce_partition(broker, ctx.api_version, name, pd.index, pd.records)
                for pd in topic_data.partition_data
            ]
        topics.append((name, acked))
    if acks == 0:
        failed = [ack for _, acks_ in topics for ack in acks_ if ack.error_code != NONE]
        if failed:
            raise CloseConnection(f"acks=0 produce failed with error {failed[0].error_code}")
        return None
    return RawResponse([encode_produce_response(ctx.api_version, topics)])
