"""Exceptions of the strom.streams runtime: one class per failure kind, each message names the input and the
fix."""

from __future__ import annotations

from strom.streams.errors import StreamsError


class StreamsConfigError(StreamsError):
    """A Streams config key has a missing, malformed or unsupported value."""


class MissingSourceTopicError(StreamsError):
    """A topic the topology reads does not exist on the cluster; Kafka Streams refuses to start as well."""


class InternalTopicError(StreamsError):
    """An internal repartition or changelog topic could not be created, or exists with the wrong partition
    count."""


class StateDirLockedError(StreamsError):
    """Another Streams instance holds the lock of this application's state directory."""


class MetricsListenError(StreamsError):
    """The `metrics.listen` address could not be bound (in use, not local, not permitted)."""


class ProducerSendError(StreamsError):
    """The producer failed to deliver a record; at-least-once forbids committing past it, so the thread
    stops."""


class IllegalStateError(StreamsError):
    """A Streams method was called in a state that does not allow it (for example start() twice)."""
