"""`__consumer_offsets` as partitions of the broker's own log: the `OffsetsStorage` the coordinator writes to.

The topic is created on first write, as Kafka creates it on first use, so a broker that never sees a group
shows no internal topic. Its partition count is fixed when it is created (`offsets.topic.num.partitions`);
later changes of the setting do not move groups, which would orphan their offsets.

At start-up an existing topic goes through the broker's repair path: a plain topic of that name (an old data
directory, where a client could create it) is made internal with the configs the coordinator would have
created it with, and an internal one without compaction gets it back, so old offsets never grow unbounded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from strom.broker.config import BrokerConfig
from strom.broker.coordinator.offsets import (
    OFFSETS_TOPIC,
    OffsetsRecordTooLargeError,
    OffsetsStorageError,
    Record,
)
from strom.broker.topics import TopicInfo, TopicRegistry
from strom.log.errors import LogError, RecordBatchTooLargeError
from strom.log.partition import Partition
from strom.log.segment import Segment
from strom.protocol.errors import CorruptRecordError
from strom.protocol.records import BatchBuilder

logger = logging.getLogger(__name__)


class InternalTopicHost(Protocol):
    """What the offsets topic needs of the broker: its topics, config, and internal-topic creation."""

    config: BrokerConfig
    topics: TopicRegistry

    def ensure_internal_topic(self, name: str, partitions: int, configs: dict[str, str]) -> TopicInfo: ...

    def partition(self, topic: str, index: int) -> Partition | None: ...


class OffsetsTopic:
    """Appends coordinator records as uncompressed batches and replays them at start-up.

    Survives: a replay that meets a batch it cannot read (a CRC mismatch, a record count that lies, a
    damaged header): the batch, or the rest of a segment after a damaged header, is skipped and logged;
    append failures surface as `OffsetsStorageError` with nothing written, so the coordinator keeps its
    in-memory state unchanged.
    """

    def __init__(self, broker: InternalTopicHost) -> None:
        self._broker = broker
        self.skipped_batches = 0
        existing = broker.topics.get(OFFSETS_TOPIC)
        if existing is None:
            self._num_partitions = broker.config.int("offsets.topic.num.partitions")
        else:
            self._num_partitions = existing.partitions
            # segment.bytes only when adopting a plain topic: a later change of offsets.topic.segment.bytes
            # does not alter a topic already created, as in Kafka
            configs = {"cleanup.policy": "compact"} if existing.internal else self._configs()
            broker.ensure_internal_topic(OFFSETS_TOPIC, existing.partitions, configs)

    @property
    def num_partitions(self) -> int:
        return self._num_partitions

    def _partition(self, index: int, create: bool) -> Any:
        broker = self._broker
        if create and broker.topics.get(OFFSETS_TOPIC) is None:
            broker.ensure_internal_topic(OFFSETS_TOPIC, self._num_partitions, self._configs())
        return broker.partition(OFFSETS_TOPIC, index)

    def _configs(self) -> dict[str, str]:
        """The topic configs the coordinator creates `__consumer_offsets` with."""
        segment_bytes = self._broker.config.int("offsets.topic.segment.bytes")
        return {"cleanup.policy": "compact", "segment.bytes": str(segment_bytes)}

    def append(self, partition: int, records: Sequence[Record], timestamp_ms: int) -> None:
        builder = BatchBuilder()
        for key, value in records:
            builder.append(key, value, timestamp_ms)
        try:
            log = self._partition(partition, create=True)
            if log is None:
                raise OffsetsStorageError(f"{OFFSETS_TOPIC}-{partition} is not open")
            log.append(builder.build())
        except RecordBatchTooLargeError as exc:
            raise OffsetsRecordTooLargeError(str(exc)) from exc
        except (LogError, CorruptRecordError, OSError) as exc:
            raise OffsetsStorageError(f"{OFFSETS_TOPIC}-{partition}: {exc}") from exc

    def replay(self) -> Iterator[Record]:
        """Every retained record, partition by partition; a damaged batch is skipped whole, with an error
        naming its file and position, as Kafka's coordinator loader does (the broker still starts)."""
        if self._broker.topics.get(OFFSETS_TOPIC) is None:
            return
        for index in range(self._num_partitions):
            log = self._partition(index, create=False)
            if log is None:
                continue
            start = log.log_start_offset
            for segment in log.segments_snapshot():
                yield from self._replay_segment(segment, start)

    def _replay_segment(self, segment: Segment, start: int) -> Iterator[Record]:
        next_position = 0
        try:
            for position, batch in segment.batches():
                next_position = position + batch.size_in_bytes
                if batch.is_control or batch.last_offset < start:
                    continue
                try:
                    # the CRC first: a flipped byte must not silently become another committed offset
                    batch.validate()
                    # decoded whole before any is applied: one batch is one commit, all or nothing
                    records = [(r.key, r.value) for r in batch.records() if r.offset >= start]
                except CorruptRecordError as exc:
                    self.skipped_batches += 1
                    logger.error(
                        "skipping a damaged batch in %s at position %d (offsets %d-%d): %s",
                        segment.log_path,
                        position,
                        batch.base_offset,
                        batch.last_offset,
                        exc,
                    )
                    continue
                for key, value in records:
                    if key is not None:
                        yield key, value
        except CorruptRecordError as exc:
            # a damaged batch header: where the next batch starts is unknown, so the rest is unreadable
            self.skipped_batches += 1
            logger.error(
                "skipping the rest of %s from position %d, whose batch header is damaged: %s",
                segment.log_path,
                next_position,
                exc,
            )
