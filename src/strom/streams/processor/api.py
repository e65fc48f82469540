"""The low-level Processor API (``KStream.process``): records, processors and their context.

A processor gets ``init(context)`` once per task, ``process(record)`` per record and ``close()`` at the end.
Through the context it forwards records downstream, reads its attached stores, schedules stream-time or
wall-clock punctuators, and reads the input record's metadata. Records forwarded from a punctuator carry the
timestamp the punctuator chose (Kafka: the punctuation time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from strom.streams.errors import StoreError
from strom.streams.processor.context import Headers, TaskContext, TaskId
from strom.streams.processor.node import Node
from strom.streams.processor.punctuation import Cancellable, PunctuationType
from strom.streams.state.api import (
    ReadWriteKeyValueStore,
    ReadWriteSessionStore,
    ReadWriteWindowStore,
    StateStore,
)
from strom.streams.state.kv_store import KeyValueStore
from strom.streams.state.session_store import SessionStore
from strom.streams.state.window_store import WindowStore


class Record(NamedTuple):
    """An immutable record; ``with_*`` return modified copies."""

    key: Any
    value: Any
    timestamp: int
    headers: Headers = None

    def with_key(self, key: Any) -> Record:
        return self._replace(key=key)

    def with_value(self, value: Any) -> Record:
        return self._replace(value=value)

    def with_timestamp(self, timestamp: int) -> Record:
        return self._replace(timestamp=timestamp)

    def with_headers(self, headers: Headers) -> Record:
        return self._replace(headers=headers)


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int


class Processor:
    """Subclass and override ``process``; ``init`` and ``close`` are optional."""

    def init(self, context: ProcessorContext) -> None:
        self.context = context

    def process(self, record: Record) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None


class ProcessorContext:
    """What one processor sees of its task. Stores are reached through the typed accessors
    (``key_value_store``, ``window_store``, ``session_store``), which check the store's kind."""

    def __init__(self, task: TaskContext, node: Node, store_names: list[str]) -> None:
        self._task = task
        self._node = node
        self._store_names = set(store_names)

    @property
    def task_id(self) -> TaskId:
        return self._task.task_id

    @property
    def application_id(self) -> str:
        return self._task.application_id

    def forward(self, record: Record, child_name: str | None = None) -> None:
        """Send ``record`` to every child, or only to the child named ``child_name``."""
        task = self._task
        saved = task.headers
        task.headers = record.headers
        try:
            for child in self._node.children:
                if child_name is None or child.name == child_name:
                    child.process(record.key, record.value, record.timestamp)
        finally:
            task.headers = saved

    def get_state_store(self, name: str) -> StateStore:
        """A connected store of any kind (Kafka's ``getStateStore``); raises KeyError if not connected."""
        if name not in self._store_names:
            raise KeyError(
                f"processor {self._node.name!r} is not connected to store {name!r}; "
                f"pass it in stores=[...] (connected: {sorted(self._store_names)})"
            )
        return self._task.get_store(name)

    def key_value_store(self, name: str) -> ReadWriteKeyValueStore[Any, Any]:
        """The connected key-value store ``name``; raises StoreError if it is of another kind."""
        store = self.get_state_store(name)
        if isinstance(store, KeyValueStore) and not isinstance(store, SessionStore):
            return store
        raise _wrong_kind(name, store, "key_value")

    def window_store(self, name: str) -> ReadWriteWindowStore[Any, Any]:
        """The connected window store ``name``; raises StoreError if it is of another kind."""
        store = self.get_state_store(name)
        if isinstance(store, WindowStore):
            return store
        raise _wrong_kind(name, store, "window")

    def session_store(self, name: str) -> ReadWriteSessionStore[Any, Any]:
        """The connected session store ``name``; raises StoreError if it is of another kind."""
        store = self.get_state_store(name)
        if isinstance(store, SessionStore):
            return store
        raise _wrong_kind(name, store, "session")

    def schedule(
        self, interval_ms: int, kind: PunctuationType, punctuator: Callable[[int], None]
    ) -> Cancellable:
        """Call ``punctuator(timestamp)`` every ``interval_ms`` of stream time or wall-clock time."""
        return self._task.schedule(interval_ms, kind, punctuator)

    def record_metadata(self) -> RecordMetadata | None:
        """Topic, partition and offset of the input record, None inside a punctuation."""
        task = self._task
        if task.topic is None:
            return None
        return RecordMetadata(task.topic, task.partition, task.offset)

    def current_stream_time_ms(self) -> int:
        return self._task.stream_time

    def current_system_time_ms(self) -> int:
        return self._task.wall_clock()


def _wrong_kind(name: str, store: StateStore, kind: str) -> StoreError:
    return StoreError(
        f"store {name!r} is a {store.kind} store, not a {kind} store; "
        f"use ProcessorContext.{store.kind}_store({name!r})"
    )


class ProcessorNode(Node):
    """Adapts a user ``Processor`` to the node interface."""

    __slots__ = ("processor", "store_names")

    def __init__(self, name: str, processor: Processor, store_names: list[str]) -> None:
        super().__init__(name)
        self.processor = processor
        self.store_names = store_names

    def init(self, ctx: TaskContext) -> None:
        super().init(ctx)
        self.processor.init(ProcessorContext(ctx, self, self.store_names))

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        self.processor.process(Record(key, value, timestamp, self.ctx.headers))

    def close(self) -> None:
        self.processor.close()
