"""``TopologyTestDriver``: run a topology without a broker, synchronously, as Kafka Streams' test driver does.

Model (Kafka's ``TopologyTestDriver``): every input topic has one partition and each sub-topology one task
(partition 0); piping a record processes it to completion, then commits (flushing record caches) until no work
is left, so cache effects are invisible; records sent to repartition topics, or to topics the topology also
reads, are fed back in-process; records sent to global topics update the global stores at once. Stream time
advances only with piped records; wall-clock time is a mock clock moved by ``advance_wall_clock_time``, which
fires wall-clock punctuators. Serdes run for real: inputs are serialised, outputs deserialised.

    driver = TopologyTestDriver(builder.build(), {"application.id": "app"})
    words = driver.create_input_topic("words", serdes.string(), serdes.string())
    counts = driver.create_output_topic("counts", serdes.string(), serdes.long())
    words.pipe_input("k", "hello")
    assert counts.read_key_value() == ("hello", 1)
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from strom.streams.errors import StoreError, StreamsError
from strom.streams.processor.context import TaskId
from strom.streams.serdes import Serde
from strom.streams.state.api import (
    ReadWriteKeyValueStore,
    ReadWriteSessionStore,
    ReadWriteWindowStore,
    StateStore,
)
from strom.streams.state.cache import RecordCacheBudget, cache_max_bytes
from strom.streams.state.kv_store import KeyValueStore
from strom.streams.state.session_store import SessionStore
from strom.streams.state.window_store import WindowStore
from strom.streams.task import GlobalStateTask, StreamTask
from strom.streams.topology import Topology

DEFAULT_APPLICATION_ID = "topology-test-driver"


class EmptyTopicError(StreamsError, LookupError):
    """Reading from an output topic that has no (more) records."""


class TestRecord(NamedTuple):
    key: Any
    value: Any
    timestamp: int


class _Produced(NamedTuple):
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: Any


class _LoopbackCollector:
    """Captures every produced record per topic and queues those the topology reads again."""

    def __init__(self, driver: TopologyTestDriver) -> None:
        self._driver = driver

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int,
        partition: int | None = None,
        headers: Any = None,
    ) -> None:
        self._driver._produced(topic, key, value, timestamp_ms, headers)


class TopologyTestDriver:
    __test__ = False  # not a pytest test class

    def __init__(
        self,
        topology: Topology,
        config: dict[str, Any] | None = None,
        initial_wall_clock_time_ms: int | None = None,
    ) -> None:
        self.config: dict[str, Any] = {
            "application.id": DEFAULT_APPLICATION_ID,
            "default.dsl.store": "in_memory",
        }
        self.config.update(config or {})
        self.application_id = str(self.config["application.id"])
        self._wall_clock = (
            time.time_ns() // 1_000_000 if initial_wall_clock_time_ms is None else initial_wall_clock_time_ms
        )
        self._owns_dir = "state.dir" not in self.config
        root = (
            Path(tempfile.mkdtemp(prefix="strom-ttd-")) if self._owns_dir else Path(self.config["state.dir"])
        )
        self._root = root
        app_dir = root / self.application_id
        self._collector = _LoopbackCollector(self)
        self._outputs: dict[str, deque[_Produced]] = {}
        self._pending: deque[tuple[str, bytes | None, bytes | None, int, Any]] = deque()
        self._offsets: dict[str, int] = {}
        budget = RecordCacheBudget(cache_max_bytes(self.config))
        self.global_task: GlobalStateTask | None = None
        if topology.global_stores:
            self.global_task = GlobalStateTask(topology, self.config, app_dir / "global", self._collector)
        self.tasks: list[StreamTask] = []
        self._task_by_topic: dict[str, StreamTask] = {}
        for sub_id in topology.subtopology_ids:
            task_id = TaskId(sub_id, 0)
            task = StreamTask(
                task_id,
                topology,
                self.config,
                app_dir / str(task_id),
                self._collector,
                budget,
                self.global_task,
                lambda: self._wall_clock,
            )
            self.tasks.append(task)
            for topic in task.source_topics:
                self._task_by_topic[topic] = task
        self._global_topics = set(self.global_task.topics) if self.global_task is not None else set()
        self._closed = False

    # -- record flow ---------------------------------------------------------------------------------------

    def _produced(
        self, topic: str, key: bytes | None, value: bytes | None, timestamp: int, headers: Any
    ) -> None:
        self._outputs.setdefault(topic, deque()).append(_Produced(key, value, timestamp, headers))
        if topic in self._task_by_topic:
            self._pending.append((topic, key, value, timestamp, headers))
        elif topic in self._global_topics:
            self._deliver(topic, key, value, timestamp, headers)

    def _deliver(
        self, topic: str, key: bytes | None, value: bytes | None, timestamp: int, headers: Any
    ) -> None:
        offset = self._offsets.get(topic, 0)
        self._offsets[topic] = offset + 1
        task = self._task_by_topic.get(topic)
        if task is not None:
            task.process(topic, 0, offset, key, value, timestamp, headers)
        elif topic in self._global_topics:
            assert self.global_task is not None
            self.global_task.process(topic, 0, offset, key, value, timestamp, headers)
        else:
            known = sorted(set(self._task_by_topic) | self._global_topics)
            raise StreamsError(f"unknown topic {topic!r}: the topology reads {known}")

    def _drain(self) -> None:
        """Process fed-back records and commit until nothing is left (Kafka's process/commit/capture loop)."""
        pending = self._pending
        for _ in range(1_000_000):
            while pending:
                self._deliver(*pending.popleft())
            for task in self.tasks:
                task.commit()
            if not pending:
                return
        raise StreamsError("the topology keeps producing records to its own inputs (a cycle without end)")

    def pipe_raw(
        self, topic: str, key: bytes | None, value: bytes | None, timestamp: int, headers: Any = None
    ) -> None:
        """Feed one already-serialised record (e.g. to test bad input)."""
        self._check_open()
        self._deliver(topic, key, value, timestamp, headers)
        self._drain()

    def advance_wall_clock_time(self, ms: int) -> None:
        """Move the mock wall clock and fire due wall-clock punctuators."""
        if ms < 0:
            raise ValueError(f"wall-clock time cannot go backwards ({ms} ms)")
        self._check_open()
        self._wall_clock += ms
        for task in self.tasks:
            task.punctuate(self._wall_clock)
        self._drain()

    @property
    def wall_clock_time_ms(self) -> int:
        return self._wall_clock

    # -- topics ----------------------------------------------------------------------------------------------

    def create_input_topic(
        self,
        name: str,
        key_serde: Serde[Any],
        value_serde: Serde[Any],
        start_timestamp_ms: int | None = None,
        auto_advance_ms: int = 0,
    ) -> TestInputTopic:
        if name not in self._task_by_topic and name not in self._global_topics:
            known = sorted(set(self._task_by_topic) | self._global_topics)
            raise StreamsError(f"unknown input topic {name!r}: the topology reads {known}")
        start = self._wall_clock if start_timestamp_ms is None else start_timestamp_ms
        return TestInputTopic(self, name, key_serde, value_serde, start, auto_advance_ms)

    def create_output_topic(
        self, name: str, key_serde: Serde[Any], value_serde: Serde[Any]
    ) -> TestOutputTopic:
        return TestOutputTopic(self, name, key_serde, value_serde)

    def produced_topic_names(self) -> set[str]:
        """Every topic written so far, internal ones included."""
        return set(self._outputs)

    def _queue(self, topic: str) -> deque[_Produced]:
        return self._outputs.setdefault(topic, deque())

    # -- state -----------------------------------------------------------------------------------------------

    def get_all_state_stores(self) -> dict[str, StateStore]:
        stores: dict[str, StateStore] = {}
        for task in self.tasks:
            stores.update(task.stores)
        if self.global_task is not None:
            stores.update(self.global_task.stores)
        return stores

    def get_state_store(self, name: str) -> StateStore:
        stores = self.get_all_state_stores()
        if name not in stores:
            raise StoreError(f"no state store {name!r}; stores: {sorted(stores)}")
        return stores[name]

    def get_key_value_store(self, name: str) -> ReadWriteKeyValueStore[Any, Any]:
        store = self.get_state_store(name)
        if not isinstance(store, KeyValueStore) or isinstance(store, SessionStore):
            raise StoreError(f"store {name!r} is a {store.kind} store, not a key-value store")
        return store

    def get_window_store(self, name: str) -> ReadWriteWindowStore[Any, Any]:
        store = self.get_state_store(name)
        if not isinstance(store, WindowStore):
            raise StoreError(f"store {name!r} is a {store.kind} store, not a window store")
        return store

    def get_session_store(self, name: str) -> ReadWriteSessionStore[Any, Any]:
        store = self.get_state_store(name)
        if not isinstance(store, SessionStore):
            raise StoreError(f"store {name!r} is a {store.kind} store, not a session store")
        return store

    def metrics(self) -> dict[str, int]:
        """Task-level counters summed over the tasks (``dropped-records-total``, ``process-total``, ...)."""
        total: dict[str, int] = {}
        for task in self.tasks:
            for name, value in task.metrics.as_dict().items():
                total[name] = total.get(name, 0) + value
        if self.global_task is not None:
            for name, value in self.global_task.metrics.as_dict().items():
                total[name] = total.get(name, 0) + value
        return total

    # -- lifecycle -------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StreamsError("the TopologyTestDriver is closed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for task in self.tasks:
                task.commit()
        finally:
            for task in self.tasks:
                task.close()
            if self.global_task is not None:
                self.global_task.close()
            if self._owns_dir:
                shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> TopologyTestDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TestInputTopic:
    """Serialises and pipes records into one input topic. Records without a timestamp take the topic's
    timestamp cursor, which then advances by ``auto_advance_ms``."""

    __test__ = False

    def __init__(
        self,
        driver: TopologyTestDriver,
        name: str,
        key_serde: Serde[Any],
        value_serde: Serde[Any],
        start: int,
        auto_advance_ms: int,
    ) -> None:
        self._driver = driver
        self.name = name
        self._key_serde = key_serde
        self._value_serde = value_serde
        self._cursor = start
        self._advance = auto_advance_ms

    def advance_time(self, ms: int) -> None:
        if ms < 0:
            raise ValueError(f"cannot move the timestamp cursor backwards ({ms} ms)")
        self._cursor += ms

    def pipe_input(
        self, key: Any, value: Any = None, timestamp: int | None = None, headers: Any = None
    ) -> None:
        if timestamp is None:
            timestamp = self._cursor
            self._cursor += self._advance
        self._driver.pipe_raw(
            self.name,
            self._key_serde.serialize(self.name, key),
            self._value_serde.serialize(self.name, value),
            timestamp,
            headers,
        )

    def pipe_value(self, value: Any, timestamp: int | None = None) -> None:
        self.pipe_input(None, value, timestamp)

    def pipe_key_value_list(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        for key, value in pairs:
            self.pipe_input(key, value)

    def pipe_records(self, records: Iterable[tuple[Any, Any, int]]) -> None:
        """Pipe ``(key, value, timestamp)`` triples in order."""
        for key, value, timestamp in records:
            self.pipe_input(key, value, timestamp)


class TestOutputTopic:
    """Reads and deserialises what the topology wrote to one topic, oldest first; reading consumes."""

    __test__ = False

    def __init__(
        self, driver: TopologyTestDriver, name: str, key_serde: Serde[Any], value_serde: Serde[Any]
    ) -> None:
        self._driver = driver
        self.name = name
        self._key_serde = key_serde
        self._value_serde = value_serde

    def _pop(self) -> _Produced:
        queue = self._driver._queue(self.name)
        if not queue:
            raise EmptyTopicError(f"topic {self.name!r} has no more records")
        return queue.popleft()

    def _decode(self, record: _Produced) -> TestRecord:
        return TestRecord(
            self._key_serde.deserialize(self.name, record.key),
            self._value_serde.deserialize(self.name, record.value),
            record.timestamp,
        )

    def read_record(self) -> TestRecord:
        return self._decode(self._pop())

    def read_value(self) -> Any:
        return self.read_record().value

    def read_key_value(self) -> tuple[Any, Any]:
        record = self.read_record()
        return record.key, record.value

    def read_records_to_list(self) -> list[TestRecord]:
        records = []
        while not self.is_empty():
            records.append(self.read_record())
        return records

    def read_values_to_list(self) -> list[Any]:
        return [r.value for r in self.read_records_to_list()]

    def read_key_values_to_list(self) -> list[tuple[Any, Any]]:
        return [(r.key, r.value) for r in self.read_records_to_list()]

    def read_key_values_to_map(self) -> dict[Any, Any]:
        """The latest value per key (a None value is kept as None); null keys are refused, as in Kafka."""
        result: dict[Any, Any] = {}
        for record in self.read_records_to_list():
            if record.key is None:
                raise StreamsError(f"topic {self.name!r} has a record with a null key (read it as a list)")
            result[record.key] = record.value
        return result

    def get_queue_size(self) -> int:
        return len(self._driver._queue(self.name))

    def is_empty(self) -> bool:
        return not self._driver._queue(self.name)
