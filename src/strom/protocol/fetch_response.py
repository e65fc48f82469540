"""FetchResponse v4-v12 written by hand, so record bytes go from the segment files to the socket untouched.

Why not the codec: kio would need the records as one `bytes` object per partition (a read and a copy of up
to `max_bytes`), then copy them again into the response buffer. Here the response is a list of parts: small
encoded sections as `bytes`, and each partition's records as the segment's file region, which the server
sends with sendfile(2). Field order follows FetchResponse.json; v12 is the first flexible version (compact
lengths, an empty tagged-field section after each struct).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

from strom.protocol.error_codes import ErrorCode
from strom.protocol.framing import FileRegion, Part
from strom.protocol.varint import write_uvarint

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_PARTITION_V4 = struct.Struct(">ihqq")  # partition_index, error_code, high_watermark, last_stable_offset
_I64 = struct.Struct(">q")
FIRST_FLEXIBLE = 12


class PartitionResult(NamedTuple):
    partition_index: int
    error_code: ErrorCode
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    records: FileRegion | bytes | None


def encode_fetch_response(
    version: int, error_code: ErrorCode, topics: Sequence[tuple[str, Sequence[PartitionResult]]]
) -> list[Part]:
    """The response body (after the response header) as parts to send in order."""
    flexible = version >= FIRST_FLEXIBLE
    parts: list[Part] = []
    buf = bytearray()

    def length(n: int) -> None:  # array count or string length
        buf.extend(write_uvarint(n + 1) if flexible else _I32.pack(n))

    buf += _I32.pack(0)  # throttle_time_ms
    if version >= 7:
        buf += _I16.pack(error_code)
        buf += _I32.pack(0)  # session_id: sessionless (KIP-227 not implemented)
    length(len(topics))
    for name, partitions in topics:
        encoded = name.encode("utf-8")
        if flexible:
            buf += write_uvarint(len(encoded) + 1)
        else:
            buf += _I16.pack(len(encoded))
        buf += encoded
        length(len(partitions))
        for p in partitions:
            buf += _PARTITION_V4.pack(p.partition_index, p.error_code, p.high_watermark, p.last_stable_offset)
            if version >= 5:
                buf += _I64.pack(p.log_start_offset)
            length(0)  # aborted_transactions: none without transactions
            if version >= 11:
                buf += _I32.pack(-1)  # preferred_read_replica
            records = p.records
            size = 0 if records is None else len(records) if isinstance(records, bytes) else records.size
            length(size)
            if size:
                parts.append(bytes(buf))
                buf = bytearray()
                parts.append(records)  # type: ignore[arg-type]
            if flexible:
                buf.append(0)  # partition tagged fields
        if flexible:
            buf.append(0)  # topic tagged fields
    if flexible:
        buf.append(0)  # response tagged fields
    parts.append(bytes(buf))
    return parts
