"""The exception root of strom.log, and the log's failures that are not about one file format.

Every exception strom.log raises derives from `LogError` and carries the Kafka `ErrorCode` a broker answers
with, so a caller catches the root and reads `error_code`; it never has to guess. Failures kept beside the
code that raises them derive from it too: producer state (strom.log.producer_state), configs
(strom.log.config), checkpoint, index and snapshot files, the data directory lock. Record bytes that are not
a valid batch are strom.protocol's `CorruptRecordError`, which carries its own code.
"""

from __future__ import annotations

from strom.protocol.error_codes import ErrorCode


class LogError(Exception):
    """Base class of every strom.log failure; `error_code` is the Kafka error to answer with."""

    error_code: ErrorCode = ErrorCode.UNKNOWN_SERVER_ERROR


class LogStorageError(LogError):
    """A file or directory of the log cannot be used or trusted (KAFKA_STORAGE_ERROR): a closed partition, a
    locked data directory, a checkpoint, index or producer snapshot that breaks its format."""

    error_code = ErrorCode.KAFKA_STORAGE_ERROR


class CorruptSegmentError(LogStorageError):
    """A flushed segment's batch headers break the log's order: a base offset below the previous batch's
    end or beyond the segment's (the base offset is outside the CRC, so a flipped byte there is invisible
    to it). Reads stop before the damaged batch; run `strom check DATA_DIR` to see every fault."""


class PartitionOfflineError(LogStorageError):
    """A write to the partition failed (disk full, I/O error), so it takes no more writes until it is
    opened again (KAFKA_STORAGE_ERROR); what it already holds stays readable."""


class OffsetOutOfRangeError(LogError):
    """A read, lookup or DeleteRecords named an offset outside [log start offset, log end offset]."""

    error_code = ErrorCode.OFFSET_OUT_OF_RANGE


class RecordBatchTooLargeError(LogError):
    """A batch exceeds `max.message.bytes` (MESSAGE_TOO_LARGE)."""

    error_code = ErrorCode.MESSAGE_TOO_LARGE


class RecordListTooLargeError(RecordBatchTooLargeError):
    """An append is larger than a whole segment, `segment.bytes` (RECORD_LIST_TOO_LARGE)."""

    error_code = ErrorCode.RECORD_LIST_TOO_LARGE


class InvalidTimestampError(LogError):
    """A CreateTime record timestamp is further from the broker clock than `message.timestamp.before.max.ms`
    or `message.timestamp.after.max.ms` allow (INVALID_TIMESTAMP)."""

    error_code = ErrorCode.INVALID_TIMESTAMP


class LogClosedError(LogStorageError):
    """The partition was closed or deleted (KAFKA_STORAGE_ERROR); re-open it through the LogManager."""


class PartitionExistsError(LogError):
    """LogManager.create was asked for a partition that already has a directory (TOPIC_ALREADY_EXISTS)."""

    error_code = ErrorCode.TOPIC_ALREADY_EXISTS


class InvalidTopicError(LogError):
    """A topic name Kafka would refuse: empty, `.`/`..`, over 249 characters, or outside [a-zA-Z0-9._-]."""

    error_code = ErrorCode.INVALID_TOPIC_EXCEPTION
