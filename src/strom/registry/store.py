"""The `_schemas` topic as the registry's only storage: one reader thread applies it, writers append to it.

Startup checks (or creates) the topic as Confluent's registry requires it: exactly one partition and
`cleanup.policy=compact`, so the latest record per key is kept forever and the order of records is total. A
reader thread consumes it from the beginning with no consumer group and applies each record to a
`RegistryState`; `start()` returns once that reader has reached the end, so a restarted registry serves
exactly what it served before. `append()` produces a record and returns only once the reader has applied it,
so the caller then reads its own write; every other registry on the same topic applies the same record in the
same place. Failures survived: a broker not yet up (start waits, then raises StoreError), a record that is not
JSON (skipped with a warning, as an unknown key type is).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from strom.registry import records
from strom.registry.errors import StoreError, StoreTimeout
from strom.registry.state import RegistryState

logger = logging.getLogger(__name__)

DEFAULT_TOPIC = "_schemas"


class SchemasTopic:
    """Owns the reader thread, the producer and `state`; hold `lock` while reading `state`."""

    def __init__(self, bootstrap: str, topic: str = DEFAULT_TOPIC, timeout: float = 30.0) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout = timeout
        self.state = RegistryState()
        self.lock = threading.Condition()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._failure: str | None = None
        # log_level 0: librdkafka's own retry chatter stays off stderr; failures surface as StoreError.
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 0,
                "log_level": 0,
            }
        )
        consumer_config = {
            "bootstrap.servers": bootstrap,
            "group.id": "strom-registry",  # required by librdkafka; never joined: we assign().
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 50,
            "log_level": 0,
        }
        self._consumer = Consumer(consumer_config)
        # The end offset is asked of a client of its own: librdkafka does not answer a watermark query on a
        # consumer while another thread is blocked in its consume().
        self._end_offsets = Consumer(consumer_config)
        self._partition = TopicPartition(topic, 0)

    def start(self) -> None:
        """Ensure the topic, start the reader and wait until it has applied everything in the topic."""
        self._ensure_topic()
        self._consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        self._reader = threading.Thread(target=self._read, name=f"registry-reader-{self.topic}", daemon=True)
        self._reader.start()
        self.catch_up()

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join()
        self._consumer.close()
        self._end_offsets.close()
        self._producer.flush(5)

    def _ensure_topic(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                metadata = admin.list_topics(timeout=max(0.1, deadline - time.monotonic()))
            except KafkaException as error:
                raise StoreError(f"cannot reach the cluster at {self.bootstrap}: {error}") from None
            if self.topic in metadata.topics and metadata.topics[self.topic].error is None:
                break
            replication = min(3, len(metadata.brokers))
            new = NewTopic(self.topic, 1, replication, config={"cleanup.policy": "compact"})
            try:
                admin.create_topics([new])[self.topic].result(timeout=self.timeout)
                break
            except KafkaException as error:
                if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS or time.monotonic() > deadline:
                    raise StoreError(f"cannot create topic {self.topic}: {error}") from None
        partitions, policy = self._topic_shape(admin, deadline)
        if partitions != 1 or policy != "compact":
            raise StoreError(
                f"topic {self.topic} must have 1 partition and cleanup.policy=compact;"
                f" it has {partitions} partition(s) and cleanup.policy={policy}"
            )

    def _topic_shape(self, admin: AdminClient, deadline: float) -> tuple[int, str]:
        """(partitions, cleanup.policy) of the topic, waiting while a new topic is unknown to a broker."""
        resource = ConfigResource(ConfigResource.Type.TOPIC, self.topic)
        while True:
            try:
                topic = admin.list_topics(self.topic, timeout=self.timeout).topics[self.topic]
                configs = admin.describe_configs([resource])[resource].result(timeout=self.timeout)
                if topic.error is None and topic.partitions:
                    return len(topic.partitions), str(configs["cleanup.policy"].value)
            except KafkaException as error:
                if time.monotonic() > deadline:
                    raise StoreError(f"cannot describe topic {self.topic}: {error}") from None
            if time.monotonic() > deadline:
                raise StoreError(f"topic {self.topic} did not become ready in {self.timeout} s")
            time.sleep(0.1)  # a freshly created topic reaches every broker's metadata shortly

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                # consume(n, timeout) waits for n records or the whole timeout, which would hold every
                # write's read-back for 100 ms; poll() returns on the first record, then take what is there.
                first = self._consumer.poll(0.1)
                if first is None:
                    continue
                batch = [first, *self._consumer.consume(499, timeout=0)]
            except KafkaException as error:
                logger.warning("reading %s: %s", self.topic, error)
                continue
            with self.lock:
                for message in batch:
                    if message.error() is not None:
                        logger.warning("reading %s: %s", self.topic, message.error())
                        continue
                    self._apply(message.offset(), message.key(), message.value())
                self.lock.notify_all()

    def _apply(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        try:
            decoded_key, decoded_value = records.decode(key), records.decode(value)
            self.state.apply(offset, decoded_key, decoded_value)
        except (ValueError, KeyError, TypeError) as error:
            self.state.applied_offset = offset
            logger.warning("skipping %s offset %d: %s", self.topic, offset, error)

    def catch_up(self) -> None:
        """Wait until the reader has applied every record in the topic now (before a write or at start)."""
        try:
            _, high = self._end_offsets.get_watermark_offsets(
                self._partition, timeout=self.timeout, cached=False
            )
        except KafkaException as error:
            raise StoreError(f"cannot read the end of {self.topic}: {error}") from None
        self._wait_applied(high - 1)

    def _wait_applied(self, offset: int) -> None:
        deadline = time.monotonic() + self.timeout
        with self.lock:
            while self.state.applied_offset < offset:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreTimeout(
                        f"the registry did not read {self.topic} up to offset {offset} in time"
                    )
                self.lock.wait(left)

    def append(self, key: bytes, value: bytes | None) -> None:
        """Produce one record and return once this registry's state includes it."""
        delivered: list[Any] = []

        def on_delivery(error: KafkaError | None, message: Any) -> None:
            delivered.append(error if error is not None else message.offset())

        self._producer.produce(self.topic, value=value, key=key, on_delivery=on_delivery)
        self._producer.flush(self.timeout)
        if not delivered:
            raise StoreTimeout(f"writing to {self.topic} timed out")
        if isinstance(delivered[0], KafkaError):
            raise StoreError(f"writing to {self.topic}: {delivered[0]}")
        self._wait_applied(delivered[0])
