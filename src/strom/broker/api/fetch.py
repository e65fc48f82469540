"""Fetch (1): byte ranges of the partition logs, sent as stored, with min-bytes/max-wait long polling.

A partition answers from the batch that contains `fetch_offset` (clients skip its earlier records) up to
`partition_max_bytes`, and the request as a whole stops at `max_bytes` (at most the broker's
`fetch.max.bytes`); the first batch of the response is
sent whole even when larger (KIP-74) so a consumer can always make progress. When fewer than `min_bytes`
are available the request parks on the partitions it reads and is woken by appends (no polling), or
answers when `max_wait_ms` runs out. Without transactions the last stable offset is the high watermark and
no transaction is ever aborted; read_committed fetches stop at the last stable offset all the same.
"""

from __future__ import annotations

import time
from typing import Any

from strom.broker.dispatch import BrokerServices, RawResponse, RequestContext, Response
from strom.broker.topics import LEADER_EPOCH
from strom.log.errors import LogError
from strom.protocol.error_codes import ErrorCode
from strom.protocol.fetch_response import PartitionResult, encode_fetch_response
from strom.protocol.field_values import IsolationLevel
from strom.protocol.framing import part_size

TopicResults = list[tuple[str, list[PartitionResult]]]
# Record bytes one response may carry: 2 GiB less room for the response's headers and partition fields.
MAX_RECORD_BYTES = 2**31 - 1 - (16 << 20)


def _read(
    broker: BrokerServices, request: Any, max_bytes: int, read_committed: bool
) -> tuple[TopicResults, int, bool]:
    """One pass over the requested partitions: (results per topic, bytes found, whether an error occurred)."""
    remaining = max_bytes
    total = 0
    error = False
    topics: TopicResults = []
    for fetch_topic in request.topics:
        results = []
        for fp in fetch_topic.partitions:
            index = fp.partition
            partition = broker.partition(fetch_topic.topic, index)
            if partition is None:
                results.append(PartitionResult(index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1, -1, None))
                error = True
                continue
            high_watermark = partition.next_offset
            stable = partition.last_stable_offset
            log_start = partition.log_start_offset
            code = ErrorCode.NONE
            if getattr(fp, "current_leader_epoch", -1) > LEADER_EPOCH:
                code = ErrorCode.UNKNOWN_LEADER_EPOCH
            elif not log_start <= fp.fetch_offset <= high_watermark:
                code = ErrorCode.OFFSET_OUT_OF_RANGE
            records = None
            upper = stable if read_committed else high_watermark
            limit = min(max(0, fp.partition_max_bytes), remaining)
            if code == ErrorCode.NONE and fp.fetch_offset < upper and (limit > 0 or total == 0):
                try:
                    records = partition.read(fp.fetch_offset, limit, max_offset=upper, min_one=total == 0)
                except LogError as exc:  # deleted or truncated since the checks above
                    code = ErrorCode(exc.error_code)
                else:
                    total += records.size
                    remaining = max(0, remaining - records.size)
            if code != ErrorCode.NONE:
                error = True
            results.append(PartitionResult(index, code, high_watermark, stable, log_start, records))
        topics.append((fetch_topic.topic, results))
    return topics, total, error


async def fetch(ctx: RequestContext, request: Any) -> Response:
    broker = ctx.broker
    # capped by fetch.max.bytes as in Kafka, and in any case below the 2 GiB a frame's int32 size prefix
    # can describe (whatever fetch.max.bytes is set to)
    max_bytes = min(max(0, request.max_bytes), broker.config.int("fetch.max.bytes"), MAX_RECORD_BYTES)
    read_committed = getattr(request, "isolation_level", 0) == IsolationLevel.READ_COMMITTED
    deadline = time.monotonic() + max(0.0, request.max_wait.total_seconds())
    tps = [(t.topic, p.partition) for t in request.topics for p in t.partitions]
    while True:
        topics, total, error = _read(broker, request, max_bytes, read_committed)
        remaining_s = deadline - time.monotonic()
        if total >= request.min_bytes or error or remaining_s <= 0 or not tps:
            break
        if not await broker.waiters.wait(tps, remaining_s):
            topics, total, error = _read(broker, request, max_bytes, read_committed)
            break
    for name, results in topics:
        sent = sum(part_size(result.records) for result in results if result.records is not None)
        if sent:
            broker.metrics.fetched(name, sent)
    return RawResponse(encode_fetch_response(ctx.api_version, ErrorCode.NONE, topics))
