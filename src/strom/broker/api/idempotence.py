"""InitProducerId (22) for idempotent producers.

Every call allocates a fresh producer id with epoch 0, also when a v3+ client names its current id and epoch
(KIP-360): that is what Kafka does for producers without a transactional id, and a fresh id cannot collide
with state a partition still keeps. Transactional ids are refused until the transaction coordinator exists.
"""

from __future__ import annotations

from typing import Any

from strom.broker.dispatch import RequestContext, Response
from strom.protocol.error_codes import ErrorCode


async def init_producer_id(ctx: RequestContext, request: Any) -> Response:
    if request.transactional_id is not None:
        return {
            "throttle_time": 0,
            "error_code": ErrorCode.INVALID_REQUEST,
            "producer_id": -1,
            "producer_epoch": -1,
        }
    pid = ctx.broker.producer_ids.allocate()
    return {"throttle_time": 0, "error_code": ErrorCode.NONE, "producer_id": pid, "producer_epoch": 0}
