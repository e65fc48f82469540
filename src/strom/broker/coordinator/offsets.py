"""Committed offsets and group metadata, persisted as records of the compacted topic `__consumer_offsets`.

Why a log and not a side file: the internal topic gets recovery after a crash, compaction (latest value per
key, tombstones for deleted offsets and groups) and retention from `strom.log` for free, exactly as Kafka's
coordinator relies on its own log. A group lives in partition `partition_for(group)` and every write for one
group is one batch in that partition, so a crash never leaves half of a commit behind.

The coordinator keeps the authoritative state in memory; this module only turns state changes into records
(`OffsetLog.write_*`) and rebuilds the state from the records at start-up (`OffsetLog.load`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from strom.broker.coordinator.schema import (
    GroupKey,
    GroupValue,
    OffsetKey,
    OffsetValue,
    SchemaError,
    decode_group_value,
    decode_key,
    decode_offset_value,
    encode_group_key,
    encode_group_value,
    encode_offset_key,
    encode_offset_value,
    partition_for,
)
from strom.broker.errors import BrokerError

OFFSETS_TOPIC = "__consumer_offsets"

Record = tuple[bytes, bytes | None]


class OffsetsStorageError(BrokerError):
    """The internal topic could not take a write (disk error, broker shutting down)."""


class OffsetsRecordTooLargeError(OffsetsStorageError):
    """A group's write exceeds the internal topic's `max.message.bytes`."""


class OffsetsStorage(Protocol):
    """The partitions of `__consumer_offsets` as the coordinator needs them.

    `append` writes the records as one batch, durably enough for an acknowledged commit, or raises
    `OffsetsStorageError`; `replay` yields every retained record of every partition, each partition in offset
    order (the order in which the coordinator must apply them).
    """

    @property
    def num_partitions(self) -> int: ...

    def append(self, partition: int, records: Sequence[Record], timestamp_ms: int) -> None: ...

    def replay(self) -> Iterable[Record]: ...


@dataclass
class LoadedGroup:
    """What the internal topic says about one group after replay."""

    metadata: GroupValue | None = None
    offsets: dict[tuple[str, int], OffsetValue] = field(default_factory=dict)


class OffsetLog:
    """Encodes coordinator state changes as `__consumer_offsets` records and decodes them back.

    Survives: records it cannot decode (from a future version or damaged) are skipped one by one, never
    abandoning the rest of the replay; a failed append raises before the caller changes its memory state.
    """

    def __init__(self, storage: OffsetsStorage) -> None:
        self._storage = storage
        self.skipped_records = 0

    def partition_of(self, group_id: str) -> int:
        return partition_for(group_id, self._storage.num_partitions)

    def _append(self, group_id: str, records: Sequence[Record], now_ms: int) -> None:
        if records:
            self._storage.append(self.partition_of(group_id), records, now_ms)

    def write_offsets(self, group_id: str, offsets: dict[tuple[str, int], OffsetValue], now_ms: int) -> None:
        """Persist committed offsets of one group as one batch."""
        self._append(
            group_id,
            [
                (encode_offset_key(OffsetKey(group_id, topic, partition)), encode_offset_value(value))
                for (topic, partition), value in offsets.items()
            ],
            now_ms,
        )

    def delete_offsets(self, group_id: str, partitions: Iterable[tuple[str, int]], now_ms: int) -> None:
        """Write tombstones for committed offsets."""
        self._append(
            group_id,
            [(encode_offset_key(OffsetKey(group_id, t, p)), None) for t, p in partitions],
            now_ms,
        )

    def write_group(self, group_id: str, value: GroupValue, now_ms: int) -> None:
        """Persist the group's current generation and members."""
        self._append(group_id, [(encode_group_key(GroupKey(group_id)), encode_group_value(value))], now_ms)

    def delete_group(self, group_id: str, offsets: Iterable[tuple[str, int]], now_ms: int) -> None:
        """Tombstone the group and all its offsets in one batch (DeleteGroups, expiry)."""
        records: list[Record] = [(encode_offset_key(OffsetKey(group_id, t, p)), None) for t, p in offsets]
        records.append((encode_group_key(GroupKey(group_id)), None))
        self._append(group_id, records, now_ms)

    def load(self) -> dict[str, LoadedGroup]:
        """Replay the internal topic into per-group state; later records win, tombstones delete."""
        groups: dict[str, LoadedGroup] = {}
        for key_bytes, value_bytes in self._storage.replay():
            try:
                key = decode_key(key_bytes)
                if isinstance(key, OffsetKey):
                    loaded = groups.setdefault(key.group, LoadedGroup())
                    tp = (key.topic, key.partition)
                    if value_bytes is None:
                        loaded.offsets.pop(tp, None)
                    else:
                        loaded.offsets[tp] = decode_offset_value(value_bytes)
                else:
                    loaded = groups.setdefault(key.group, LoadedGroup())
                    loaded.metadata = None if value_bytes is None else decode_group_value(value_bytes)
                    if value_bytes is None:
                        # A group tombstone (DeleteGroups/expiry) was written together with tombstones for
                        # all of its offsets, so nothing of the old group survives.
                        loaded.offsets.clear()
            except SchemaError:
                self.skipped_records += 1
        return {g: v for g, v in groups.items() if v.metadata is not None or v.offsets}
