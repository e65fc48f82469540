"""Exceptions raised by strom.streams: one class per failure kind, each message names the input and what to
do."""

from __future__ import annotations


class StreamsError(Exception):
    """Base class of every strom.streams error."""


class TopologyError(StreamsError):
    """The topology is invalid: a bad DSL call, a missing store, or co-partitioned inputs of different sizes.
    """


class SerializationError(StreamsError):
    """A serde could not turn a value into bytes, or bytes into a value (wrong size, bad encoding)."""


class DeserializationError(StreamsError):
    """A consumed record could not be deserialised and the handler said to stop.

    The message names the topic, partition and offset, so the record can be inspected with any Kafka tool.
    """

    def __init__(self, topic: str, partition: int, offset: int, cause: BaseException) -> None:
        super().__init__(
            f"cannot deserialise record at topic {topic!r} partition {partition} offset {offset}: {cause}. "
            "Set 'default.deserialization.exception.handler' to 'log_and_continue' or set "
            "'errors.deadletterqueue.topic.name' to skip such records."
        )
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.cause = cause


class ProcessingError(StreamsError):
    """Processing a record raised (a user function, a store, a sink) and the handler said to stop.

    The message names the input record's topic, partition and offset and the cause; the cause is chained.
    """

    def __init__(self, topic: str, partition: int, offset: int, cause: BaseException) -> None:
        super().__init__(
            f"processing the record at topic {topic!r} partition {partition} offset {offset} failed: "
            f"{type(cause).__name__}: {cause}. Set 'processing.exception.handler' to 'log_and_continue' or "
            "set 'errors.deadletterqueue.topic.name' to skip such records."
        )
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.cause = cause


class InvalidTimestampError(StreamsError):
    """A record has a negative timestamp; Kafka Streams' default extractor refuses it as well."""

    def __init__(self, topic: str, partition: int, offset: int, timestamp: int) -> None:
        super().__init__(
            f"record at topic {topic!r} partition {partition} offset {offset} has invalid timestamp "
            f"{timestamp}; "
            "timestamps must be >= 0 (producer CreateTime or broker LogAppendTime)"
        )
        self.timestamp = timestamp


class StoreError(StreamsError):
    """A state store was used wrongly (closed, wrong type, unknown name) or its backend failed."""
