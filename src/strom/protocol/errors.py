"""strom.protocol's exceptions: bytes that are not valid Kafka wire data, one class per failure kind.

`ProtocolError` is the root; every class carries the Kafka error code (`ErrorCode`) a broker answers with, so
callers catch the root and read `error_code` instead of mapping exception types themselves. Request-level
failures (framing, headers, bodies) close the client's connection; record-level failures are answered per
partition (the log truncates at the first corrupt batch during recovery). Messages name the offending field
and the numbers involved.
"""

from __future__ import annotations

from strom.protocol.error_codes import ErrorCode


class ProtocolError(Exception):
    """Root of strom.protocol's exceptions; `error_code` is what a broker answers with."""

    error_code: ErrorCode = ErrorCode.UNKNOWN_SERVER_ERROR


class VarintError(ProtocolError):
    """A varint longer than its type allows (5 bytes unsigned, 10 bytes for a zigzag varlong)."""

    error_code = ErrorCode.CORRUPT_MESSAGE


# --- requests: framing, header, body ------------------------------------------------------------------


class FrameError(ProtocolError):
    """The byte stream is not a valid sequence of Kafka frames; the connection cannot continue."""

    error_code = ErrorCode.INVALID_REQUEST


class FrameTooLarge(FrameError):
    """A length prefix exceeds the configured limit; raised before the body is read."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds socket.request.max.bytes={limit}")
        self.size = size
        self.limit = limit


class UnsupportedRequest(ProtocolError):
    """The api key or version is not one this codec can decode."""

    error_code = ErrorCode.UNSUPPORTED_VERSION

    def __init__(self, api_key: int, api_version: int) -> None:
        super().__init__(f"unsupported request: api_key={api_key} version={api_version}")
        self.api_key = api_key
        self.api_version = api_version


class MalformedRequest(ProtocolError):
    """The frame does not decode as the request its header names (truncated, bad lengths, trailing bytes)."""

    error_code = ErrorCode.INVALID_REQUEST


# --- record batches -----------------------------------------------------------------------------------


class CorruptRecordError(ProtocolError):
    """The bytes are not a valid record batch or record (CORRUPT_MESSAGE unless a subclass says otherwise)."""

    error_code = ErrorCode.CORRUPT_MESSAGE


class TruncatedBatchError(CorruptRecordError):
    """The buffer ends before the batch does (a torn write or a partial Fetch tail)."""


class InvalidBatchLengthError(CorruptRecordError):
    """The batchLength field is smaller than a v2 header or otherwise impossible."""


class CrcMismatchError(CorruptRecordError):
    """The CRC-32C stored in the header does not match the bytes from attributes to the end."""


class UnsupportedMagicError(CorruptRecordError):
    """The batch uses message format v0 or v1 (or an unknown magic); strom stores only v2.

    Maps to INVALID_RECORD, as Kafka answers a Produce v3+ carrying magic 0/1: the client must use a
    producer that writes magic 2 (every Kafka client since 0.11 does).
    """

    error_code = ErrorCode.INVALID_RECORD


class UnsupportedCompressionError(CorruptRecordError):
    """The attributes name a compression codec outside 0-4 (UNSUPPORTED_COMPRESSION_TYPE)."""

    error_code = ErrorCode.UNSUPPORTED_COMPRESSION_TYPE


class InvalidRecordError(CorruptRecordError):
    """A record inside a batch is malformed, or breaks a rule of the log (INVALID_RECORD).

    Examples: a varint running past the end of the batch, a record count that disagrees with the
    records present, compressed data that does not decompress, a keyless record on a compacted topic.
    """

    error_code = ErrorCode.INVALID_RECORD


class DecompressedTooLargeError(CorruptRecordError):
    """A compressed records block would decompress beyond the bound its reader gave (MESSAGE_TOO_LARGE):
    a batch whose records could not be stored uncompressed under `max.message.bytes`, or a decompression
    bomb. Raised as soon as the bounded output buffer fills, so the rest is never decompressed."""

    error_code = ErrorCode.MESSAGE_TOO_LARGE
