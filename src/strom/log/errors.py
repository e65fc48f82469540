"""Exceptions of the partition log that are not about record bytes (those live in strom.protocol.errors)
or producer state (strom.log.producer_state). Each carries the Kafka error code a broker should answer."""

from __future__ import annotations


class LogError(Exception):
    """Base class of log failures; `error_code` is the Kafka protocol error code."""

    error_code: int = -1


class OffsetOutOfRangeError(LogError):
    """A read, lookup or DeleteRecords named an offset outside [log start offset, log end offset]."""

    error_code = 1


class RecordBatchTooLargeError(LogError):
    """A batch exceeds `max.message.bytes` (MESSAGE_TOO_LARGE)."""

    error_code = 10


class RecordListTooLargeError(RecordBatchTooLargeError):
    """An append is larger than a whole segment, `segment.bytes` (RECORD_LIST_TOO_LARGE)."""

    error_code = 18


class InvalidTimestampError(LogError):
    """A CreateTime record timestamp is further from the broker clock than `message.timestamp.before.max.ms`
    or `message.timestamp.after.max.ms` allow (INVALID_TIMESTAMP)."""

    error_code = 32


class LogClosedError(LogError):
    """The partition was closed or deleted (KAFKA_STORAGE_ERROR); re-open it through the LogManager."""

    error_code = 56


class PartitionExistsError(LogError):
    """LogManager.create was asked for a partition that already has a directory (TOPIC_ALREADY_EXISTS)."""

    error_code = 36


class InvalidTopicError(LogError):
    """A topic name Kafka would refuse: empty, `.`/`..`, over 249 characters, or outside [a-zA-Z0-9._-]."""

    error_code = 17
