"""Kafka's `leader-epoch-checkpoint` of one partition: which leader epoch started at which offset.

Format (text, replaced atomically): a version line `0`, a count line, then one `epoch start_offset` line per
epoch in increasing order. The broker stamps every appended batch's partitionLeaderEpoch with its current
epoch; the first batch of a higher epoch adds a line. `end_offset_for` answers OffsetForLeaderEpoch, which
consumers use to validate their position after a leader change.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from strom.log.checkpoint import write_atomically

FILE_NAME = "leader-epoch-checkpoint"


class LeaderEpochCache:
    """(epoch, start offset) pairs. Invariant: epochs and start offsets strictly increase."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[tuple[int, int]] = []

    @classmethod
    def load(cls, path: Path) -> LeaderEpochCache:
        """Read the file; a missing or malformed file yields an empty cache (refilled as batches arrive)."""
        cache = cls(path)
        try:
            lines = path.read_text().split("\n")
            count = int(lines[1])
            entries = [tuple(int(x) for x in line.split()) for line in lines[2 : 2 + count]]
            if lines[0] == "0" and all(len(e) == 2 for e in entries):
                pairs = [(e[0], e[1]) for e in entries]
                if all(a[0] < b[0] and a[1] <= b[1] for a, b in itertools.pairwise(pairs)):
                    cache.entries = pairs
        except (OSError, ValueError, IndexError):
            pass
        return cache

    @property
    def latest_epoch(self) -> int:
        return self.entries[-1][0] if self.entries else -1

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that `epoch` starts at `start_offset` if it is newer than the latest epoch."""
        if epoch >= 0 and epoch > self.latest_epoch:
            self.entries.append((epoch, start_offset))
            self._write()

    def truncate_from_end(self, end_offset: int) -> None:
        """Forget epochs that start at or after `end_offset` (after the log was truncated there)."""
        keep = [e for e in self.entries if e[1] < end_offset]
        if keep != self.entries:
            self.entries = keep
            self._write()

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(largest epoch <= `epoch`, its end offset) as OffsetForLeaderEpoch defines it; (-1, -1) when
        `epoch`
        precedes every known epoch."""
        if not self.entries or epoch < self.entries[0][0]:
            return -1, -1
        for i, (e, _) in enumerate(self.entries):
            if e > epoch:
                return self.entries[i - 1][0], self.entries[i][1]
        return self.entries[-1][0], log_end_offset

    def _write(self) -> None:
        lines = ["0", str(len(self.entries)), *(f"{e} {o}" for e, o in self.entries)]
        write_atomically(self.path, ("\n".join(lines) + "\n").encode())
