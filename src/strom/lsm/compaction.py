"""Compaction planning (levelled and size-tiered) and the merge that executes a plan.

Levelled (LevelDB/RocksDB style): when level 0 holds ``level0_file_trigger`` files, all of them merge with the
overlapping level-1 files into level 1; when level ``i >= 1`` exceeds its target size (``level1_size`` times
``level_size_ratio ** (i - 1)``), one file (chosen round-robin by key) merges with the overlapping files of
level ``i + 1``, or is moved there untouched when nothing overlaps.

Size-tiered (RocksDB's universal style): every sorted run is a level-0 file. A full merge runs when the runs
other than the oldest add up to more than ``tiered_max_size_amplification`` times the oldest; otherwise the
newest runs merge while each next run is no bigger than ``1 + tiered_size_ratio`` times what has been
gathered, or, if there are still ``level0_file_trigger`` runs or more, the newest runs merge to bring the
count under it.

A tombstone is dropped only when no older data for its key can exist beneath the output: nothing in a deeper
level overlaps the merged key range and, in tiered mode, the oldest run takes part in the merge.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from .version import FileMeta, Version

Entry = tuple[bytes, bytes | None]
_KEY = itemgetter(0)


@dataclass
class CompactionPolicy:
    """The options that shape compaction."""

    style: str  # "levelled" | "tiered"
    level0_file_trigger: int
    level1_size: int
    level_size_ratio: int
    num_levels: int
    tiered_size_ratio: float
    tiered_max_size_amplification: float


@dataclass
class Compaction:
    """A plan: ``inputs`` per level (level -> files), written to ``output_level``."""

    inputs: dict[int, list[FileMeta]]
    output_level: int
    drop_tombstones: bool
    trivial_move: bool = False

    def all_inputs(self) -> list[tuple[int, FileMeta]]:
        return [(lvl, f) for lvl, files in self.inputs.items() for f in files]

    def sources(self) -> list[list[FileMeta]]:
        """Sorted runs to merge, newest first: level-0 files one by one (by age), then each level as one
        run."""
        runs: list[list[FileMeta]] = []
        for lvl in sorted(self.inputs):
            files = self.inputs[lvl]
            if lvl == 0:
                runs.extend([f] for f in sorted(files, key=lambda f: f.max_seq, reverse=True))
            else:
                runs.append(sorted(files, key=lambda f: f.smallest))
        return runs


def _key_range(files: Iterable[FileMeta]) -> tuple[bytes, bytes]:
    fs = list(files)
    return min(f.smallest for f in fs), max(f.largest for f in fs)


def _nothing_deeper(version: Version, level: int, lo: bytes, hi: bytes) -> bool:
    return all(not version.overlapping(lvl, lo, hi) for lvl in range(level + 1, len(version.levels)))


def level_target(policy: CompactionPolicy, level: int) -> int:
    """Target size in bytes of level ``level >= 1``."""
    return int(policy.level1_size * policy.level_size_ratio ** (level - 1))


def pick(version: Version, policy: CompactionPolicy, pointers: dict[int, bytes]) -> Compaction | None:
    """The most urgent compaction for ``version``, or None when the shape is within its targets."""
    if policy.style == "tiered":
        return _pick_tiered(version, policy)
    return _pick_levelled(version, policy, pointers)


def _pick_levelled(
    version: Version, policy: CompactionPolicy, pointers: dict[int, bytes]
) -> Compaction | None:
    best_level, best_score = -1, 1.0
    l0 = version.levels[0]
    if l0:
        score = len(l0) / policy.level0_file_trigger
        if score >= best_score:
            best_level, best_score = 0, score
    for lvl in range(1, policy.num_levels - 1):
        score = version.level_bytes(lvl) / level_target(policy, lvl)
        if score > best_score:
            best_level, best_score = lvl, score
    if best_level < 0:
        return None
    if best_level == 0:
        return level0_compaction(version)
    files = version.levels[best_level]
    pointer = pointers.get(best_level)
    chosen = next((f for f in files if pointer is None or f.smallest > pointer), files[0])
    pointers[best_level] = chosen.largest
    out = best_level + 1
    below = version.overlapping(out, chosen.smallest, chosen.largest)
    drop = _nothing_deeper(version, out, chosen.smallest, chosen.largest)
    if not below:
        return Compaction({best_level: [chosen]}, out, drop, trivial_move=True)
    return Compaction({best_level: [chosen], out: below}, out, drop)


def level0_compaction(version: Version) -> Compaction | None:
    """Merge every level-0 file with the overlapping level-1 files into level 1."""
    l0 = version.levels[0]
    if not l0:
        return None
    lo, hi = _key_range(l0)
    below = version.overlapping(1, lo, hi)
    if below:
        lo, hi = _key_range([*l0, *below])
    return Compaction({0: list(l0), 1: below}, 1, _nothing_deeper(version, 1, lo, hi))


def _pick_tiered(version: Version, policy: CompactionPolicy) -> Compaction | None:
    runs = version.levels[0]  # newest first
    n = len(runs)
    if n < 2:
        return None
    deeper_empty = version.deepest_nonempty() == 0
    older = sum(f.size for f in runs[:-1])
    if older > policy.tiered_max_size_amplification * runs[-1].size and n >= policy.level0_file_trigger:
        return Compaction({0: list(runs)}, 0, deeper_empty)
    if n < policy.level0_file_trigger:
        return None
    gathered = runs[0].size
    count = 1
    while count < n and runs[count].size <= gathered * (1 + policy.tiered_size_ratio):
        gathered += runs[count].size
        count += 1
    if count < 2:
        count = max(2, n - policy.level0_file_trigger + 2)
    chosen = runs[:count]
    return Compaction({0: chosen}, 0, deeper_empty and count == n)


def full_compaction(
    version: Version, policy: CompactionPolicy, start: bytes | None, end: bytes | None
) -> Compaction | None:
    """Merge everything overlapping ``[start, end]`` into the bottom level (all runs into one in tiered mode).

    The input set is closed under overlap: a file left out between an input and the output level could
    otherwise shadow a newer value moved beneath it.
    """
    if not version.files():
        return None
    if policy.style == "tiered" and version.deepest_nonempty() == 0:
        runs = version.levels[0]
        if len(runs) < 2 and not runs[0].tombstones:
            return None
        return Compaction({0: list(runs)}, 0, True)
    out = max(version.deepest_nonempty(), 1)
    lo, hi = start, end
    while True:
        inputs = {lvl: version.overlapping(lvl, lo, hi) for lvl in range(out + 1)}
        inputs = {lvl: fs for lvl, fs in inputs.items() if fs}
        if not inputs:
            return None
        new_lo, new_hi = _key_range(f for fs in inputs.values() for f in fs)
        if lo is not None and new_lo >= lo and hi is not None and new_hi <= hi:
            break
        lo = new_lo if lo is None else min(lo, new_lo)
        hi = new_hi if hi is None else max(hi, new_hi)
    if list(inputs) == [out] and len(inputs[out]) == 1 and not inputs[out][0].tombstones:
        return None
    return Compaction(inputs, out, _nothing_deeper(version, out, lo, hi))


def merge_blocks(sources: list[Iterator[list[Entry]]]) -> Iterator[list[Entry]]:
    """Merge runs given as ascending lists (newest run first) into ascending lists, newest entry per key.

    Works a window at a time instead of an entry at a time: the window ends at the smallest last key among
    the runs' current lists, the parts of the lists up to it go into one dict oldest run first (so newer
    entries overwrite older ones), and the dict is sorted. A window always uses up at least one list whole.
    Tombstones are kept (as None values).
    """
    active: list[list[Any]] = []  # [current list, its iterator], newest run first
    for it in sources:
        cur = next(it, None)
        if cur:
            active.append([cur, it])
    while active:
        if len(active) == 1:
            cur, it = active[0]
            yield cur
            yield from it
            return
        bound = min(a[0][-1][0] for a in active)
        window: dict[bytes, bytes | None] = {}
        taken = 0
        single: list[Entry] = []
        for a in reversed(active):
            cur = a[0]
            if cur[-1][0] <= bound:
                part = cur
                a[0] = next(a[1], None)
            else:
                cut = bisect_right(cur, bound, key=_KEY)
                part = cur[:cut]
                a[0] = cur[cut:]
            if part:
                window.update(part)
                taken += 1
                single = part
        yield single if taken == 1 else sorted(window.items())
        active = [a for a in active if a[0]]
