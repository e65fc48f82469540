"""Block cache: an LRU of verified block contents, bounded by their bytes.

Keyed by ``table number << 32 | block index``; table numbers are never reused within a database, so an entry
can never describe another file's block. Entries are the contents only (one bytes object each): caching
decoded directories costs more in allocation and memory traffic than re-reading two offsets per probe.
Lookups take no lock (a dict probe under the GIL); inserts and evictions are serialised. A lookup racing an
eviction simply misses.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

ADMIT_EVERY = 4


class BlockCache:
    """LRU cache of verified blocks. Invariant: ``used`` <= ``capacity`` after every insert returns.

    ``misses`` counts blocks read from table files (hits are not counted: that would cost every get).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self.used = 0
        self.misses = 0
        self._skipped = 0
        self.entries: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: int) -> bytes | None:
        """The cached block or None; a hit becomes the most recently used entry."""
        block = self.entries.get(key)
        if block is None:
            return None
        try:  # noqa: SIM105 - contextlib.suppress costs more than the lookup on this hot path
            self.entries.move_to_end(key)
        except KeyError:
            pass
        return block

    def put(self, key: int, block: bytes) -> None:
        """Insert a block, evicting least recently used blocks to stay within capacity.

        Once the cache is full only one miss in ``ADMIT_EVERY`` is admitted: under scans or uniformly random
        reads each insert would evict a block as likely to be reused as the new one, and in Python the insert
        costs about what a hit saves. Hot blocks miss often, so they still get in.
        """
        charge = len(block)
        if charge > self.capacity:
            return
        if self.used + charge > self.capacity:
            self._skipped += 1
            if self._skipped < ADMIT_EVERY:
                return
            self._skipped = 0
        with self._lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.used -= len(old)
            self.entries[key] = block
            self.used += charge
            while self.used > self.capacity:
                _, evicted = self.entries.popitem(last=False)
                self.used -= len(evicted)
