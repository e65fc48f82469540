"""Support for the group-coordinator tests (no tests here): a manual clock, an in-memory `__consumer_offsets`,
and helpers that drive JoinGroup/SyncGroup the way a client does. Time only moves when a test advances it."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from strom.broker.coordinator.group import GroupConfig, GroupCoordinator, JoinRequest, SyncRequest
from strom.broker.coordinator.membership import JoinResult, SyncResult
from strom.broker.coordinator.offsets import OffsetLog, OffsetsRecordTooLargeError, OffsetsStorageError
from strom.protocol.error_codes import ErrorCode
from tests.support.clock import FakeClock


class MemoryOffsetsTopic:
    """Partitions of `__consumer_offsets` kept as lists of (key, value) batches; can be told to fail."""

    def __init__(self, num_partitions: int = 3, max_batch_bytes: int = 1 << 20) -> None:
        self._num_partitions = num_partitions
        self.partitions: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in range(num_partitions)}
        self.max_batch_bytes = max_batch_bytes
        self.fail = False

    @property
    def num_partitions(self) -> int:
        return self._num_partitions

    def append(
        self, partition: int, records: Sequence[tuple[bytes, bytes | None]], timestamp_ms: int
    ) -> None:
        if self.fail:
            raise OffsetsStorageError("disk on fire")
        size = sum(len(k) + len(v or b"") for k, v in records)
        if size > self.max_batch_bytes:
            raise OffsetsRecordTooLargeError(f"batch of {size} bytes exceeds {self.max_batch_bytes}")
        self.partitions[partition].extend(records)

    def replay(self) -> Iterable[tuple[bytes, bytes | None]]:
        for p in range(self._num_partitions):
            yield from self.partitions[p]

    def record_count(self) -> int:
        return sum(len(v) for v in self.partitions.values())


def subscription(*topics: str, version: int = 0) -> bytes:
    """A ConsumerProtocolSubscription v0 (topics, null user data) as Java and librdkafka send it."""
    out = struct.pack(">hi", version, len(topics))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return out + struct.pack(">i", -1)


class Recorder:
    """Collects the answers of one JoinGroup or SyncGroup; asserts it is answered at most once."""

    def __init__(self) -> None:
        self.results: list[JoinResult | SyncResult] = []

    def __call__(self, result: JoinResult | SyncResult) -> None:
        self.results.append(result)

    @property
    def done(self) -> bool:
        return bool(self.results)

    @property
    def result(self):  # type: ignore[no-untyped-def]
        assert len(self.results) == 1, f"expected exactly one answer, got {self.results}"
        return self.results[0]


class Harness:
    def __init__(
        self,
        config: GroupConfig | None = None,
        storage: MemoryOffsetsTopic | None = None,
        clock: FakeClock | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.storage = storage or MemoryOffsetsTopic()
        self.config = config or GroupConfig(initial_rebalance_delay_ms=0)
        self.coordinator = GroupCoordinator(OffsetLog(self.storage), self.config, self.clock)
        self.coordinator.load()

    def restart(self) -> Harness:
        return Harness(self.config, self.storage, self.clock)

    def advance(self, ms: int) -> None:
        self.clock.advance(ms)
        self.coordinator.tick()

    def join(
        self,
        group: str = "g",
        member_id: str = "",
        *,
        instance: str | None = None,
        protocols: Sequence[tuple[str, bytes]] | None = None,
        protocol_type: str = "consumer",
        session_ms: int = 10_000,
        rebalance_ms: int = 30_000,
        client_id: str = "client",
        require_known: bool = True,
    ) -> Recorder:
        rec = Recorder()
        self.coordinator.join_group(
            JoinRequest(
                group_id=group,
                member_id=member_id,
                group_instance_id=instance,
                protocol_type=protocol_type,
                protocols=list(protocols if protocols is not None else [("range", subscription("t"))]),
                session_timeout_ms=session_ms,
                rebalance_timeout_ms=rebalance_ms,
                client_id=client_id,
                client_host="/127.0.0.1",
                require_known_member_id=require_known,
            ),
            rec,
        )
        return rec

    def join_new(self, group: str = "g", **kw) -> tuple[str, Recorder]:  # type: ignore[no-untyped-def]
        """KIP-394 dance: empty id -> MEMBER_ID_REQUIRED -> rejoin with the given id."""
        first = self.join(group, **kw)
        assert first.result.error == ErrorCode.MEMBER_ID_REQUIRED, first.results
        member_id = first.result.member_id
        return member_id, self.join(group, member_id, **kw)

    def sync(
        self,
        group: str,
        member_id: str,
        generation: int,
        assignments: dict[str, bytes] | None = None,
        instance: str | None = None,
        **kw,
    ) -> Recorder:  # type: ignore[no-untyped-def]
        rec = Recorder()
        self.coordinator.sync_group(
            SyncRequest(
                group_id=group,
                generation_id=generation,
                member_id=member_id,
                group_instance_id=instance,
                assignments=assignments or {},
                **kw,
            ),
            rec,
        )
        return rec

    def state(self, group: str = "g") -> str:
        g = self.coordinator.group(group)
        return "Dead" if g is None else g.state.value
