"""strom.log: the durable, Kafka-format partition log (segments, indexes, recovery, retention, producers).

Start with `LogManager` (a whole data directory) or `Partition` (one `<topic>-<partition>` directory);
on-disk formats and invariants are in docs/formats.md, every produce-time rule is in validator.py. Every
exception raised here derives from `LogError`, whose `error_code` is the Kafka error to answer with.
"""

from strom.log.config import InvalidConfigError, LogConfig
from strom.log.errors import (
    CorruptSegmentError,
    InvalidTimestampError,
    InvalidTopicError,
    LogClosedError,
    LogError,
    LogStorageError,
    OffsetOutOfRangeError,
    PartitionExistsError,
    PartitionOfflineError,
    RecordBatchTooLargeError,
    RecordListTooLargeError,
)
from strom.log.log_manager import DataDirLockedError, LogManager
from strom.log.partition import AppendResult, Clock, Partition, system_clock
from strom.log.segment import LogSlice

__all__ = [
    "AppendResult",
    "Clock",
    "CorruptSegmentError",
    "DataDirLockedError",
    "InvalidConfigError",
    "InvalidTimestampError",
    "InvalidTopicError",
    "LogClosedError",
    "LogConfig",
    "LogError",
    "LogManager",
    "LogSlice",
    "LogStorageError",
    "OffsetOutOfRangeError",
    "Partition",
    "PartitionExistsError",
    "PartitionOfflineError",
    "RecordBatchTooLargeError",
    "RecordListTooLargeError",
    "system_clock",
]
