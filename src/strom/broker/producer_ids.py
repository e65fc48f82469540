"""Producer id allocation that never hands out the same id twice for one data directory.

Why persisted: after a restart the partition logs still hold producer state for old ids; a new producer given
an old id with epoch 0 would collide with that state (its sequence 0 would look out of order). Ids are
reserved in blocks: the file `producer-id-block` records the end of the reserved block before any id of it is
handed out, so a crash skips at most the rest of a block and never reuses an id.
"""

from __future__ import annotations

from pathlib import Path

from strom.log.checkpoint import write_atomically

BLOCK_FILE = "producer-id-block"
BLOCK_SIZE = 1000


class ProducerIdAllocator:
    """Invariant: every id returned is below the persisted block end and above every id returned before."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / BLOCK_FILE
        start = int(self._path.read_text(encoding="ascii").strip()) if self._path.exists() else 0
        self._next = self._limit = start

    def allocate(self) -> int:
        if self._next >= self._limit:
            self._limit = self._next + BLOCK_SIZE
            write_atomically(self._path, f"{self._limit}\n".encode("ascii"))
        pid = self._next
        self._next += 1
        return pid
