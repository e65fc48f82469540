"""ApiVersions (18): the version table clients negotiate against.

Versions we cannot parse never reach this handler: the server answers them with the v0-layout
UNSUPPORTED_VERSION fallback (KIP-511), so clients retry with our maximum.
"""

from __future__ import annotations

import re
from typing import Any

from strom.broker.dispatch import RequestContext, Response
from strom.protocol.error_codes import ErrorCode

# KIP-511: client software name and version must match this, else INVALID_REQUEST.
_SOFTWARE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")


async def handle(ctx: RequestContext, request: Any) -> Response:
    error = ErrorCode.NONE
    if ctx.api_version >= 3:
        name = request.client_software_name
        version = request.client_software_version
        if not (_SOFTWARE.fullmatch(name or "") and _SOFTWARE.fullmatch(version or "")):
            error = ErrorCode.INVALID_REQUEST
    api_keys = [
        {"api_key": key, "min_version": lo, "max_version": hi}
        for key, (lo, hi) in ctx.broker.advertised_versions().items()
    ]
    return {"error_code": error, "api_keys": api_keys, "throttle_time": 0}
