"""Global tables: read every partition of each GlobalKTable's topic to its end before stream processing
starts, then keep following it from the stream thread's loop.

The source topic is the table's changelog, so restore and update are the same operation: batches of raw
records handed to the global task (no per-record deserialisation). A `.checkpoint` in the global state
directory records how far the persistent global stores reflect each partition, so a restart reads only the
delta.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from strom.streams.runtime.checkpoint import CheckpointCorruptError, read_checkpoint, write_checkpoint
from strom.streams.runtime.errors import MissingSourceTopicError
from strom.streams.runtime.restore import ChangelogRestoreError, StateRestoreListener

log = logging.getLogger(__name__)

_METADATA_TIMEOUT_S = 30.0
_GLOBAL_STORE_LABEL = "global"


class GlobalStateUpdater:
    """Owns the assign-only consumer of the global topics and feeds the global task.

    Invariants: `_position[tp]` is the next offset to apply for each global partition; after `bootstrap`
    returns, every partition was read at least to the end offset it had when bootstrap began.
    """

    def __init__(
        self,
        consumer_config: dict[str, Any],
        global_task: Any,
        topics: list[str],
        directory: Path,
        listener: StateRestoreListener,
        batch_records: int,
        persistent: bool,
    ) -> None:
        self._consumer = Consumer(consumer_config)
        self._task = global_task
        self._topics = topics
        self._dir = directory
        self._listener = listener
        self._batch = batch_records
        self._persistent = persistent
        self._position: dict[tuple[str, int], int] = {}
        self._checkpointed: dict[tuple[str, int], int] = {}

    def _partitions(self) -> list[tuple[str, int]]:
        metadata = self._consumer.list_topics(timeout=_METADATA_TIMEOUT_S)
        result: list[tuple[str, int]] = []
        missing = []
        for topic in self._topics:
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                missing.append(topic)
                continue
            result.extend((topic, p) for p in sorted(meta.partitions))
        if missing:
            raise MissingSourceTopicError(
                f"global table topics {missing} do not exist; create them before starting"
            )
        return result

    def bootstrap(self, stop: threading.Event) -> None:
        """Read every global partition to its current end (or until `stop` is set)."""
        checkpoint: dict[tuple[str, int], int] = {}
        if self._persistent:
            try:
                checkpoint = read_checkpoint(self._dir)
            except CheckpointCorruptError as exc:
                log.warning("ignoring corrupt global checkpoint: %s", exc)
        assignment: list[TopicPartition] = []
        remaining: dict[tuple[str, int], int] = {}
        for tp in self._partitions():
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(*tp), timeout=_METADATA_TIMEOUT_S, cached=False
            )
            last = checkpoint.get(tp)
            start = last + 1 if last is not None and low <= last + 1 <= high else low
            self._position[tp] = start
            if last is not None:
                self._checkpointed[tp] = last
            self._listener.on_restore_start(tp[0], tp[1], _GLOBAL_STORE_LABEL, start, high)
            if start < high:
                remaining[tp] = high
            else:
                self._listener.on_restore_end(tp[0], tp[1], _GLOBAL_STORE_LABEL, 0)
            assignment.append(TopicPartition(tp[0], tp[1], start))
        self._consumer.assign(assignment)
        restored = dict.fromkeys(remaining, 0)
        began = time.monotonic()
        while remaining and not stop.is_set():
            for tp, count in self._apply(
                self._consumer.consume(num_messages=self._batch, timeout=0.2)
            ).items():
                if tp in restored:
                    restored[tp] += count
                    self._listener.on_batch_restored(
                        tp[0], tp[1], _GLOBAL_STORE_LABEL, self._position[tp] - 1, count
                    )
            for tp in [tp for tp, end in remaining.items() if self._position[tp] >= end]:
                del remaining[tp]
                self._listener.on_restore_end(tp[0], tp[1], _GLOBAL_STORE_LABEL, restored[tp])
        total = sum(restored.values())
        log.info("global tables bootstrapped: %d records in %.2f s", total, time.monotonic() - began)

    def poll(self) -> None:
        """Apply whatever new global records are already fetched; never blocks the stream thread."""
        self._apply(self._consumer.consume(num_messages=self._batch, timeout=0))

    def _apply(self, messages: list[Any]) -> dict[tuple[str, int], int]:
        batches: dict[str, list[tuple[bytes, bytes | None, int]]] = {}
        counts: dict[tuple[str, int], int] = {}
        position = self._position
        for m in messages:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    position[(m.topic(), m.partition())] = max(
                        position[(m.topic(), m.partition())], m.offset()
                    )
                    continue
                raise ChangelogRestoreError(f"error reading global topic {m.topic()!r}: {err.str()}")
            topic = m.topic()
            batch = batches.get(topic)
            if batch is None:
                batch = batches[topic] = []
            batch.append((m.key(), m.value(), m.timestamp()[1]))
            tp = (topic, m.partition())
            position[tp] = m.offset() + 1
            counts[tp] = counts.get(tp, 0) + 1
        for topic, batch in batches.items():
            self._task.restore(topic, batch)
        return counts

    def flush(self) -> None:
        self._task.flush()

    def checkpoint(self) -> None:
        """Record how far the global stores are durable; called after flush() on commit."""
        if not self._persistent:
            return
        offsets = {tp: pos - 1 for tp, pos in self._position.items() if pos > 0}
        if offsets != self._checkpointed:
            write_checkpoint(self._dir, offsets)
            self._checkpointed = offsets

    def close(self, clean: bool) -> None:
        try:
            if clean:
                self._task.flush()
                self.checkpoint()
        finally:
            self._task.close()
            self._consumer.close()
