"""Processor nodes: the per-task objects a topology's node specs are instantiated into.

A node receives ``process(key, value, timestamp)`` and forwards to its children in order; values in KTable
sub-graphs are ``Change(new, old)`` pairs. Node instances are per task and may keep task-local state (observed
stream time, store handles). Sources deserialise in the task; sinks serialise and hand bytes to the task's
record collector.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strom.streams.errors import SerializationError
from strom.streams.processor.context import TaskContext, TopicNameExtractor


class Node:
    """Base class. Invariant: ``children`` is fixed once the task is built."""

    __slots__ = ("children", "ctx", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.children: list[Node] = []

    def init(self, ctx: TaskContext) -> None:
        self.ctx = ctx

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        raise NotImplementedError

    def forward(self, key: Any, value: Any, timestamp: int) -> None:
        for child in self.children:
            child.process(key, value, timestamp)

    def close(self) -> None:
        return None


TimestampExtractor = Callable[[Any, Any, int], int]
"""``extractor(key, value, record_timestamp) -> event time in ms`` (Kafka's TimestampExtractor)."""


class SourceNode(Node):
    """Entry point for one or more topics; the task deserialises with ``key_serde``/``value_serde``, applies
    the optional timestamp extractor and calls ``forward``."""

    __slots__ = ("key_serde", "timestamp_extractor", "topics", "value_serde")

    def __init__(
        self,
        name: str,
        topics: list[str],
        key_serde: Any,
        value_serde: Any,
        timestamp_extractor: TimestampExtractor | None = None,
    ) -> None:
        super().__init__(name)
        self.topics = topics
        self.key_serde = key_serde
        self.value_serde = value_serde
        self.timestamp_extractor = timestamp_extractor

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        self.forward(key, value, timestamp)


class SinkNode(Node):
    """Serialises and sends to a fixed topic, or to ``topic_extractor(key, value, ctx)``; the record timestamp
    becomes the produced record's CreateTime."""

    __slots__ = ("key_serde", "send", "topic", "topic_extractor", "value_serde")

    def __init__(
        self,
        name: str,
        topic: str | None,
        topic_extractor: TopicNameExtractor | None,
        key_serde: Any,
        value_serde: Any,
    ) -> None:
        super().__init__(name)
        self.topic = topic
        self.topic_extractor = topic_extractor
        self.key_serde = key_serde
        self.value_serde = value_serde

    def init(self, ctx: TaskContext) -> None:
        super().init(ctx)
        self.send = ctx.collector.send

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        topic = self.topic if self.topic_extractor is None else self.topic_extractor(key, value, self.ctx)
        assert topic is not None
        try:
            kb = self.key_serde.serialize(topic, key)
            vb = self.value_serde.serialize(topic, value)
        except SerializationError as e:
            raise SerializationError(
                f"sink {self.name!r} cannot serialise a record for topic {topic!r} ({e}); pass key_serde=/"
                "value_serde= to the operation writing it (to, group_by, repartition) or set "
                "default.key.serde/default.value.serde"
            ) from e
        self.send(topic, kb, vb, timestamp, None, self.ctx.headers)
