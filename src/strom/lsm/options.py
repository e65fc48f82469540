"""Options accepted by ``DB.open``, their defaults and their validation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from .errors import InvalidOptionError
from .recovery import TOLERATE_CORRUPTED_TAIL_RECORDS, WAL_RECOVERY_MODES

MiB = 1024 * 1024
WAL_MODES = ("off", "buffered", "sync")
COMPACTION_STYLES = {
    "levelled": "levelled",
    "leveled": "levelled",
    "tiered": "tiered",
    "size-tiered": "tiered",
    "universal": "tiered",
}
COMPRESSIONS = ("none", "lz4", "zstd")


@dataclass(frozen=True)
class Options:
    """Tuning knobs. Sizes are in bytes; a memtable's size counts the key and value bytes written into it.

    Defaults follow RocksDB's where a Python store can afford them (64 MiB memtable, 4 KiB blocks, level-0
    trigger 4, x10 per level), with a 10 bits/key bloom filter as Kafka Streams configures, no compression,
    and a WAL that hands each write to the OS (``buffered``: survives a process crash, not power loss).
    """

    memtable_size: int = 64 * MiB
    max_immutable_memtables: int = 2
    block_size: int = 4096
    bloom_bits_per_key: int = 10
    # Skip the bloom filter where a key is last looked for (the deepest non-empty level): as in Kafka
    # Streams' RocksDB configuration, gets of present keys save a filter probe; absent keys cost one block
    # search there instead.
    optimize_filters_for_hits: bool = True
    block_cache_size: int = 8 * MiB
    compaction_style: str = "levelled"
    wal: str = "buffered"
    compression: str = "none"
    level0_file_trigger: int = 4
    level0_stop_trigger: int = 12
    level1_size: int = 256 * MiB
    level_size_ratio: int = 10
    num_levels: int = 7
    target_file_size: int = 64 * MiB
    tiered_size_ratio: float = 0.01
    tiered_max_size_amplification: float = 2.0
    create_if_missing: bool = True
    # RocksDB's meanings (docs/lsm-format.md, "Recovery"). paranoid_checks: check the level invariants at
    # every version change (a violation stops writes, as a background error) and treat WAL damage as the
    # recovery mode says; off, WAL damage is skipped and logged whatever the mode.
    paranoid_checks: bool = True
    wal_recovery_mode: str = TOLERATE_CORRUPTED_TAIL_RECORDS
    # "process": flushes and compactions run in a worker process (off this process's GIL); "thread": in
    # this process's background threads (no extra process; slower foreground under write load).
    background: str = "process"
    # Called from the background threads with ("flush_begin" | "flush_end" | "compaction_begin" |
    # "compaction_end", details), like RocksDB's EventListener. It must not call back into the DB.
    event_listener: Callable[[str, dict[str, Any]], None] | None = None

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> Options:
        """Validate keyword options; unknown names and out-of-range values raise InvalidOptionError."""
        known = {f.name: f for f in fields(cls)}
        for name in kwargs:
            if name not in known:
                raise InvalidOptionError(
                    f"unknown option {name!r}; known options: {', '.join(sorted(known))}"
                )
        values = dict(kwargs)
        style = values.get("compaction_style", cls.compaction_style)
        if style not in COMPACTION_STYLES:
            raise InvalidOptionError(f"compaction_style must be 'levelled' or 'tiered', not {style!r}")
        values["compaction_style"] = COMPACTION_STYLES[style]
        wal = values.get("wal", cls.wal)
        if wal not in WAL_MODES:
            raise InvalidOptionError(f"wal must be one of {WAL_MODES}, not {wal!r}")
        recovery = values.get("wal_recovery_mode", cls.wal_recovery_mode)
        if recovery not in WAL_RECOVERY_MODES:
            raise InvalidOptionError(
                f"wal_recovery_mode must be one of {WAL_RECOVERY_MODES}, not {recovery!r}"
            )
        comp = values.get("compression", cls.compression)
        if comp not in COMPRESSIONS:
            raise InvalidOptionError(f"compression must be one of {COMPRESSIONS}, not {comp!r}")
        if values.get("background", cls.background) not in ("process", "thread"):
            bad = values["background"]
            raise InvalidOptionError(f"background must be 'process' or 'thread', not {bad!r}")
        opts = cls(**values)
        minimums = {
            "memtable_size": 1,
            "max_immutable_memtables": 1,
            "block_size": 64,
            "bloom_bits_per_key": 0,
            "block_cache_size": 0,
            "level0_file_trigger": 2,
            "level1_size": 1,
            "level_size_ratio": 2,
            "num_levels": 2,
            "target_file_size": 1,
            "tiered_size_ratio": 0,
            "tiered_max_size_amplification": 0,
        }
        for name, low in minimums.items():
            value = getattr(opts, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
                raise InvalidOptionError(f"{name} must be a number >= {low}, not {value!r}")
        if opts.level0_stop_trigger < opts.level0_file_trigger:
            raise InvalidOptionError(
                f"level0_stop_trigger ({opts.level0_stop_trigger}) must be >= level0_file_trigger "
                f"({opts.level0_file_trigger})"
            )
        return opts
