"""WAL replay at open: rebuild the writes no table holds yet, and decide what damage in the logs means.

A torn tail (the last write of a killed process, cut short) and damage inside a log look the same to one
record; they differ in what follows. Damage is a *tail* when no intact record follows it, in its log or in a
later one: only the unfinished last write can be lost there. Anything else lost acknowledged writes, so it is
never dropped silently. The modes are RocksDB's ``wal_recovery_mode`` (docs/lsm-format.md, "Recovery"):

- ``tolerate_corrupted_tail_records`` (the default): drop a damaged tail; refuse to open on any other damage.
- ``absolute_consistency``: refuse to open on any damage, a torn tail included.
- ``point_in_time``: replay up to the first damage and drop everything after it, in that log and later ones.
- ``skip_any_corrupted_records``: drop only the damaged bytes and replay every intact record.

With ``paranoid_checks`` off, damage is skipped whatever the mode (RocksDB ignores WAL corruption then).
Every stop point, dropped tail and skipped range is in the :class:`RecoveryReport` and logged; a refusal
raises CorruptionError naming the file and offset before anything in the directory has been modified.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from .batch import decode_batch
from .errors import CorruptionError
from .filename import log_name
from .memtable import MemTable
from .wal import LogReader

logger = logging.getLogger(__name__)

TOLERATE_CORRUPTED_TAIL_RECORDS = "tolerate_corrupted_tail_records"
ABSOLUTE_CONSISTENCY = "absolute_consistency"
POINT_IN_TIME = "point_in_time"
SKIP_ANY_CORRUPTED_RECORDS = "skip_any_corrupted_records"
WAL_RECOVERY_MODES = (
    TOLERATE_CORRUPTED_TAIL_RECORDS,
    ABSOLUTE_CONSISTENCY,
    POINT_IN_TIME,
    SKIP_ANY_CORRUPTED_RECORDS,
)


@dataclass(frozen=True)
class WalDamage:
    """``length`` bytes from ``offset`` of the WAL ``file`` that held no usable write batch, and why (a
    sequence-number gap has length 0: the writes of the gap are missing)."""

    file: str
    offset: int
    length: int
    reason: str


@dataclass(frozen=True)
class RecoveryReport:
    """What opening the database did with its write-ahead logs (``DB.recovery``).

    ``records_replayed`` write batches were applied; ``records_dropped`` intact ones were not, because they
    follow the point where replay stopped (``stop_file`` at ``stop_offset``; None when every log was read to
    its end or past its damage). ``bytes_dropped`` counts every byte not replayed: the damage, and all that
    follows a stop point.
    """

    mode: str
    logs: tuple[str, ...] = ()
    records_replayed: int = 0
    records_dropped: int = 0
    bytes_dropped: int = 0
    stop_file: str | None = None
    stop_offset: int | None = None
    damage: tuple[WalDamage, ...] = ()

    @property
    def clean(self) -> bool:
        """True when every log was replayed whole."""
        return not self.damage and self.stop_file is None


@dataclass(frozen=True)
class _Batch:
    file_index: int
    offset: int
    seq: int
    ops: list[tuple[bytes, bytes | None]]


def _read_logs(path: str, names: list[str]) -> tuple[list[_Batch | WalDamage], list[int]]:
    """Every intact batch and every damaged range of the logs, in log order; and the logs' sizes."""
    events: list[tuple[int, int, _Batch | WalDamage]] = []
    sizes = []
    for index, name in enumerate(names):
        reader = LogReader(os.path.join(path, name), resync=True)
        for record in reader:
            offset = reader.record_offset
            try:
                seq, ops = decode_batch(record)
            except CorruptionError as exc:
                damage = WalDamage(
                    name, offset, reader.valid_bytes - offset, f"undecodable write batch ({exc})"
                )
                events.append((index, offset, damage))
                continue
            events.append((index, offset, _Batch(index, offset, seq, ops)))
        events.extend((index, d.offset, WalDamage(name, d.offset, d.length, d.reason)) for d in reader.damage)
        sizes.append(reader.size)
    events.sort(key=lambda e: (e[0], e[1]))
    return [e[2] for e in events], sizes


def _with_gaps(events: list[_Batch | WalDamage], names: list[str]) -> list[_Batch | WalDamage]:
    """``events`` with a zero-length damage wherever the sequence numbers jump without damage to explain it
    (a missing log): writes after a hole cannot be applied as if nothing were missing."""
    out: list[_Batch | WalDamage] = []
    expected: int | None = None
    explained = False
    for event in events:
        if isinstance(event, WalDamage):
            explained = True
        elif expected is not None and event.seq > expected and not explained:
            reason = f"sequence gap: expected sequence {expected}, found {event.seq}"
            out.append(WalDamage(names[event.file_index], event.offset, 0, reason))
        if isinstance(event, _Batch):
            expected = max(expected or 0, event.seq + len(event.ops))
            explained = False
        out.append(event)
    return out


def replay_logs(
    path: str, numbers: list[int], first_seq: int, mode: str, paranoid_checks: bool
) -> tuple[MemTable | None, RecoveryReport]:
    """Rebuild the writes of WALs ``numbers`` (ascending) as a memtable whose sequence numbers start at
    ``first_seq``, as ``mode`` allows; raise CorruptionError where it refuses. Reads only."""
    if not numbers:
        return None, RecoveryReport(mode)
    names = [log_name(n) for n in numbers]
    read, sizes = _read_logs(path, names)
    events = _with_gaps(read, names)
    damage = tuple(e for e in events if isinstance(e, WalDamage))
    batches = [e for e in events if isinstance(e, _Batch)]
    mem = MemTable(0, first_seq)
    report = RecoveryReport(mode, tuple(names), damage=damage)
    first = damage[0] if damage else None
    skip = mode == SKIP_ANY_CORRUPTED_RECORDS or not paranoid_checks
    if first is None or skip:
        applied = _apply(mem, batches)
        report = RecoveryReport(
            mode, tuple(names), applied, bytes_dropped=sum(d.length for d in damage), damage=damage
        )
        for d in damage:
            logger.error(
                "%s: skipped %d damaged bytes at offset %d (%s)%s",
                os.path.join(path, d.file),
                d.length,
                d.offset,
                d.reason,
                "" if paranoid_checks else "; ignored because paranoid_checks is off",
            )
    else:
        stop = (names.index(first.file), first.offset)
        kept = [b for b in batches if (b.file_index, b.offset) < stop]
        dropped = len(batches) - len(kept)
        where = f"{os.path.join(path, first.file)}: {first.reason} at offset {first.offset}"
        if mode == ABSOLUTE_CONSISTENCY:
            raise CorruptionError(
                f"{where}; wal_recovery_mode='absolute_consistency' accepts no damaged WAL record "
                f"({dropped} intact write batches follow it). Nothing was modified; "
                "open with wal_recovery_mode='tolerate_corrupted_tail_records' to drop a torn tail"
            )
        if mode == TOLERATE_CORRUPTED_TAIL_RECORDS and dropped:
            raise CorruptionError(
                f"{where}; {dropped} intact write batches follow it, so acknowledged writes were damaged "
                "(this is not a torn tail). Nothing was modified; open with "
                "wal_recovery_mode='point_in_time' to keep the writes before the damage, or "
                "'skip_any_corrupted_records' to keep every intact write batch"
            )
        bytes_dropped = sizes[stop[0]] - first.offset + sum(sizes[stop[0] + 1 :])
        report = RecoveryReport(
            mode, tuple(names), _apply(mem, kept), dropped, bytes_dropped, first.file, first.offset, damage
        )
        if dropped:
            logger.error(
                "%s; point-in-time recovery dropped it and the %d intact write batches after it (%d bytes)",
                where,
                dropped,
                bytes_dropped,
            )
        else:
            logger.warning("%s; dropped the torn tail (%d bytes)", where, bytes_dropped)
    logger.info(
        "%s: replayed %d write batches from %s (mode %s)%s",
        path,
        report.records_replayed,
        ", ".join(names),
        mode,
        "" if report.stop_file is None else f", stopped at {report.stop_file} offset {report.stop_offset}",
    )
    return mem, report


def _apply(mem: MemTable, batches: list[_Batch]) -> int:
    """Apply ``batches`` in order (a batch already covered by an earlier one is a duplicate); return how many
    were applied."""
    applied = 0
    expected = 0
    for b in batches:
        if b.seq < expected:
            continue
        mem.apply(b.ops, b.seq + len(b.ops) - 1)
        expected = b.seq + len(b.ops)
        applied += 1
    return applied
