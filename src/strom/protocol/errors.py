"""Exceptions raised when record bytes are not a valid Kafka RecordBatch v2.

Every failure kind has its own class so that callers can react precisely (the log truncates at the first
corrupt batch during recovery; the broker answers a Produce request with the Kafka error code carried by
the exception). Messages name the offending field and the numbers involved.
"""

from __future__ import annotations


class CorruptRecordError(Exception):
    """Base class: the bytes are not a valid record batch or record.

    `error_code` is the Kafka protocol error code a broker should return for this failure
    (CORRUPT_MESSAGE = 2 unless a subclass says otherwise).
    """

    error_code: int = 2


class TruncatedBatchError(CorruptRecordError):
    """The buffer ends before the batch does (a torn write or a partial Fetch tail)."""


class InvalidBatchLengthError(CorruptRecordError):
    """The batchLength field is smaller than a v2 header or otherwise impossible."""


class CrcMismatchError(CorruptRecordError):
    """The CRC-32C stored in the header does not match the bytes from attributes to the end."""


class UnsupportedMagicError(CorruptRecordError):
    """The batch uses message format v0 or v1 (or an unknown magic); strom stores only v2.

    Maps to INVALID_RECORD (87), as Kafka answers a Produce v3+ carrying magic 0/1: the client must use a
    producer that writes magic 2 (every Kafka client since 0.11 does).
    """

    error_code = 87


class UnsupportedCompressionError(CorruptRecordError):
    """The attributes name a compression codec outside 0-4 (UNSUPPORTED_COMPRESSION_TYPE = 76)."""

    error_code = 76


class InvalidRecordError(CorruptRecordError):
    """A record inside a batch is malformed, or breaks a rule of the log (INVALID_RECORD = 87).

    Examples: a varint running past the end of the batch, a record count that disagrees with the
    records present, compressed data that does not decompress, a keyless record on a compacted topic.
    """

    error_code = 87
