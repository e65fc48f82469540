"""Which old segments retention deletes, as Kafka's `UnifiedLog.deleteOldSegments` decides it.

Three rules, each deleting a prefix of whole segments, oldest first (the result is the longest prefix):

- time (`cleanup.policy` contains delete, `retention.ms` >= 0): a segment goes while
  `now - largest record timestamp > retention.ms`;
- size (`cleanup.policy` contains delete, `retention.bytes` >= 0): a segment goes while the partition minus
  that segment is still at least `retention.bytes`;
- log start offset (any policy): a segment goes when every offset in it is below the log start offset
  (moved by DeleteRecords).

An empty last segment is never deleted. If every segment qualifies the partition first rolls a new empty
active segment, so the active segment itself is never deleted while active (`Partition.apply_retention`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from strom.log.config import LogConfig


@dataclasses.dataclass(frozen=True, slots=True)
class SegmentStats:
    """What retention looks at: base offset, size in bytes and largest record timestamp (ms; for a segment
    without timestamps the file's modification time)."""

    base_offset: int
    size: int
    largest_timestamp: int


def _prefix(stats: Sequence[SegmentStats], keep_going: Callable[[int, SegmentStats], bool]) -> int:
    count = 0
    for i, seg in enumerate(stats):
        if i == len(stats) - 1 and seg.size == 0:
            break
        if not keep_going(i, seg):
            break
        count += 1
    return count


def deletable_count(
    stats: Sequence[SegmentStats],
    config: LogConfig,
    now_ms: int,
    log_start_offset: int,
    log_end_offset: int,
    *,
    log_start_only: bool = False,
) -> tuple[int, str]:
    """How many of the oldest segments to delete, and the rule that decided it ("" when none).
    `log_start_only` applies just the log start offset rule (DeleteRecords)."""
    best, reason = 0, ""

    def consider(count: int, why: str) -> None:
        nonlocal best, reason
        if count > best:
            best, reason = count, why

    if config.delete and config.retention_ms >= 0 and not log_start_only:
        limit = config.retention_ms
        consider(_prefix(stats, lambda _, s: now_ms - s.largest_timestamp > limit), "retention.ms")
    if config.delete and config.retention_bytes >= 0 and not log_start_only:
        excess = sum(s.size for s in stats) - config.retention_bytes

        def within_size(_: int, seg: SegmentStats) -> bool:
            nonlocal excess
            if excess - seg.size < 0:
                return False
            excess -= seg.size
            return True

        consider(_prefix(stats, within_size), "retention.bytes")

    def below_start(i: int, _: SegmentStats) -> bool:
        upper = stats[i + 1].base_offset if i + 1 < len(stats) else log_end_offset
        return upper <= log_start_offset

    consider(_prefix(stats, below_start), "log start offset")
    return best, reason
