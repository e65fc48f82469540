"""ProduceResponse v3-v9 written by hand: the one response sent for every produce request.

Why not the codec: building and writing kio dataclasses costs about 0.4 ms per response, a third of the
broker's CPU under a producer benchmark; this writer does the same in a few microseconds. Field order
follows ProduceResponse.json; v9 is the first flexible version (compact lengths, an empty tagged-field
section after each struct). Record-level errors (v8+) are never reported: a refused batch fails whole.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

from strom.protocol.varint import write_uvarint

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_PARTITION = struct.Struct(">ihqq")  # index, error_code, base_offset, log_append_time
_I64 = struct.Struct(">q")
FIRST_FLEXIBLE = 9


class PartitionAck(NamedTuple):
    partition_index: int
    error_code: int  # an ErrorCode member
    base_offset: int
    log_append_time: int
    log_start_offset: int
    error_message: str | None


def encode_produce_response(version: int, topics: Sequence[tuple[str, Sequence[PartitionAck]]]) -> bytes:
    """The response body (after the response header)."""
    flexible = version >= FIRST_FLEXIBLE
    buf = bytearray()
    buf += write_uvarint(len(topics) + 1) if flexible else _I32.pack(len(topics))
    for name, partitions in topics:
        encoded = name.encode("utf-8")
        buf += write_uvarint(len(encoded) + 1) if flexible else _I16.pack(len(encoded))
        buf += encoded
        buf += write_uvarint(len(partitions) + 1) if flexible else _I32.pack(len(partitions))
        for p in partitions:
            buf += _PARTITION.pack(p.partition_index, p.error_code, p.base_offset, p.log_append_time)
            if version >= 5:
                buf += _I64.pack(p.log_start_offset)
            if version >= 8:
                buf += b"\x01" if flexible else _I32.pack(0)  # record_errors: none
                message = None if p.error_message is None else p.error_message.encode("utf-8")
                if flexible:
                    buf += b"\x00" if message is None else write_uvarint(len(message) + 1) + message
                else:
                    buf += _I16.pack(-1) if message is None else _I16.pack(len(message)) + message
            if flexible:
                buf.append(0)
        if flexible:
            buf.append(0)
    buf += _I32.pack(0)  # throttle_time_ms
    if flexible:
        buf.append(0)
    return bytes(buf)
