"""Loading a partition directory, and recovering it after an unclean shutdown (Kafka's `LogLoader`).

Steps, in order:

1. Delete temporaries: `*.cleaned` and `*.deleted` segment files and `*.tmp` checkpoint files.
2. Finish interrupted swaps: a `<base>.log.swap` segment replaces every live segment whose base offset lies
   in its offset range; it is renamed live and re-validated like an unflushed segment.
3. Open the live segments. A segment entirely below the recovery point (or every segment after a clean
   shutdown) is trusted: its indexes are loaded and checked, and rebuilt when a check fails. Every other
   segment is recovered: each batch's header, length and CRC are validated, offsets must increase, the
   indexes are rebuilt, and at the first invalid batch the file is truncated and all later segments are
   deleted. Recovered segments are fsynced, so the recovery point becomes the log end offset.
4. Rebuild producer state from the newest readable `.snapshot` at or below the first recovered offset,
   replaying the batches after it (and refilling the `.txnindex` of recovered segments).

Every decision that changes or distrusts a file is logged through `logger`: a truncation (WARNING for a
torn tail of the last segment, ERROR when the cut is inside the log or deletes later segments, with the
byte position, offsets and sizes lost), each later segment deleted with it, a flushed segment found damaged,
an index rebuilt, a swap finished, temporaries and orphan indexes removed, and a snapshot that does not
read. As Kafka's LogLoader, recovery truncates at the first invalid batch of the unflushed segments and
deletes every segment after it: a batch there may depend on one lost (producer sequences, transactions),
and offsets must stay contiguous. What that costs is in the ERROR line; `strom check` reports the same
damage offline without changing anything.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from strom.log.checkpoint import fsync_dir
from strom.log.config import LogConfig
from strom.log.producer_state import SNAPSHOT_SUFFIX, CorruptSnapshotError, ProducerState
from strom.log.segment import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    FILE_KINDS,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    SWAP_SUFFIX,
    TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX,
    Segment,
    SegmentRecovery,
    file_name,
    parse_file_name,
)
from strom.log.txn_index import AbortedTxn
from strom.protocol.errors import CorruptRecordError

INDEX_KINDS = (INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class LoadedLog:
    """The result of opening a partition directory."""

    segments: list[Segment]
    producer_state: ProducerState
    recovered_segments: int
    truncated_bytes: int

    @property
    def next_offset(self) -> int:
        return self.segments[-1].next_offset


def snapshot_path(directory: Path, offset: int) -> Path:
    return directory / f"{offset:020d}{SNAPSHOT_SUFFIX}"


def snapshot_offsets(directory: Path) -> list[int]:
    """Offsets of the producer-state snapshots in `directory`, ascending."""
    out = []
    for entry in os.scandir(directory):
        stem, _, suffix = entry.name.partition(".")
        if "." + suffix == SNAPSHOT_SUFFIX and len(stem) == 20 and stem.isdigit():
            out.append(int(stem))
    return sorted(out)


def load_log(
    directory: Path,
    config: LogConfig,
    now_ms: int,
    *,
    recovery_point: int,
    log_start_offset: int,
    clean_shutdown: bool,
) -> LoadedLog:
    """Open every segment of `directory`, recovering what may not have been flushed (see module doc)."""
    swapped = _remove_temporaries_and_finish_swaps(directory, config, now_ms)
    bases = sorted(
        parsed[0]
        for entry in os.scandir(directory)
        if (parsed := parse_file_name(entry.name)) is not None and parsed[1] == LOG_SUFFIX and not parsed[2]
    )
    _remove_orphan_indexes(directory, set(bases))

    segments: list[Segment] = []
    recovering = False
    recovered = 0
    truncated = 0
    first_recovered_offset: int | None = None
    for i, base in enumerate(bases):
        next_base = bases[i + 1] if i + 1 < len(bases) else None
        flushed = clean_shutdown or (next_base is not None and next_base <= recovery_point)
        recovering = recovering or not flushed or base in swapped
        if not recovering:
            try:
                segments.append(Segment.open(directory, base, config, now_ms, trust_indexes=True))
                continue
            except CorruptRecordError as exc:
                # A "flushed" segment is damaged: validate it and everything after it.
                logger.error(
                    "%s: flushed segment %s is damaged (%s); recovering it and every later segment",
                    directory,
                    file_name(base, LOG_SUFFIX),
                    exc,
                )
                recovering = True
        seg = Segment.open(directory, base, config, now_ms, trust_indexes=False)
        expected = segments[-1].next_offset if segments else base
        result = seg.recover(expected)
        seg.flush()
        segments.append(seg)
        recovered += 1
        if first_recovered_offset is None:
            first_recovered_offset = base
        if result.truncated_bytes or result.reason is not None:
            truncated += result.truncated_bytes
            _log_truncation(directory, seg, result, bases[i + 1 :])
            for later in bases[i + 1 :]:
                for kind in FILE_KINDS:
                    (directory / file_name(later, kind)).unlink(missing_ok=True)
            break
    if recovered:
        logger.info(
            "%s: recovered %d segment(s) from offset %d; the log ends at offset %d",
            directory,
            recovered,
            first_recovered_offset,
            segments[-1].next_offset,
        )
    if not segments:
        segments.append(Segment.create(directory, max(log_start_offset, 0), config, now_ms))
    fsync_dir(directory)

    end = segments[-1].next_offset
    replay_floor = end if first_recovered_offset is None else first_recovered_offset
    rebuilt = {s.base_offset for s in segments[len(segments) - recovered :]} if recovered else set()
    state = _load_producer_state(directory, segments, replay_floor, end, rebuilt)
    return LoadedLog(segments, state, recovered, truncated)


def _log_truncation(directory: Path, seg: Segment, result: SegmentRecovery, later: list[int]) -> None:
    """Say what a truncation cost: the segment, byte position and offset of the cut, why, the bytes cut,
    and every later segment deleted with it (its offsets and size). A cut at the tail of the last segment
    is what a torn write leaves (WARNING); anything else loses bytes that were once complete (ERROR)."""
    later_bytes = sum(_size(directory / file_name(base, LOG_SUFFIX)) for base in later)
    logger.log(
        logging.WARNING if result.torn_tail and not later else logging.ERROR,
        "%s: truncating segment %s at byte %d (offset %d, after %d valid batches): %s; "
        "%d bytes cut from it, and %d later segment(s) deleted with it (%d bytes%s)",
        directory,
        seg.log_path.name,
        result.valid_bytes,
        result.next_offset,
        result.batches,
        result.reason,
        result.truncated_bytes,
        len(later),
        later_bytes,
        f", base offsets {', '.join(map(str, later))}" if later else "",
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _remove_temporaries_and_finish_swaps(directory: Path, config: LogConfig, now_ms: int) -> set[int]:
    """Step 1 and 2; returns the base offsets of segments that came from a `.swap`."""
    swaps: list[int] = []
    for entry in list(os.scandir(directory)):
        name = entry.name
        if name.endswith(".tmp"):
            logger.info("%s: removing the unfinished temporary file %s", directory, name)
            Path(entry.path).unlink(missing_ok=True)
            continue
        parsed = parse_file_name(name)
        if parsed is None:
            continue
        base, kind, suffix = parsed
        if suffix in (CLEANED_SUFFIX, DELETED_SUFFIX):
            logger.info("%s: removing %s, left by an unfinished clean or delete", directory, name)
            Path(entry.path).unlink(missing_ok=True)
        elif suffix == SWAP_SUFFIX and kind == LOG_SUFFIX:
            swaps.append(base)
    live = {
        parsed[0]
        for entry in os.scandir(directory)
        if (parsed := parse_file_name(entry.name)) is not None and parsed[1] == LOG_SUFFIX and not parsed[2]
    }
    for base in sorted(swaps):
        swap = Segment.open(directory, base, config, now_ms, trust_indexes=False, suffix=SWAP_SUFFIX)
        result = swap.recover(base)
        upper = swap.next_offset
        swap.close()
        replaced = [old for old in sorted(live) if base <= old < max(upper, base + 1)]
        if result.reason is not None:
            logger.error(
                "%s: the cleaner's swap file %s is damaged (%s); %d bytes cut from it",
                directory,
                file_name(base, LOG_SUFFIX, SWAP_SUFFIX),
                result.reason,
                result.truncated_bytes,
            )
        logger.info(
            "%s: finishing an interrupted swap: %s replaces segment(s) %s (offsets %d to %d)",
            directory,
            file_name(base, LOG_SUFFIX, SWAP_SUFFIX),
            ", ".join(map(str, replaced)) or "none",
            base,
            upper - 1,
        )
        for old in replaced:
            for kind in FILE_KINDS:
                (directory / file_name(old, kind)).unlink(missing_ok=True)
            live.discard(old)
        for kind in FILE_KINDS:
            src = directory / file_name(base, kind, SWAP_SUFFIX)
            if src.exists():
                os.replace(src, directory / file_name(base, kind))
        live.add(base)
    if swaps:
        fsync_dir(directory)
    return set(swaps)


def _remove_orphan_indexes(directory: Path, bases: set[int]) -> None:
    for entry in list(os.scandir(directory)):
        parsed = parse_file_name(entry.name)
        if parsed is not None and not parsed[2] and parsed[1] in INDEX_KINDS and parsed[0] not in bases:
            logger.info("%s: removing %s, an index without its segment", directory, entry.name)
            Path(entry.path).unlink(missing_ok=True)


def _load_producer_state(
    directory: Path, segments: list[Segment], replay_floor: int, end: int, rebuilt: set[int]
) -> ProducerState:
    """Newest valid snapshot at or below `replay_floor`, then replay up to `end` (step 4)."""
    offsets = snapshot_offsets(directory)
    for offset in offsets:
        if offset > end:
            logger.warning(
                "%s: removing producer snapshot %d, beyond the log end offset %d", directory, offset, end
            )
            snapshot_path(directory, offset).unlink()
    state: ProducerState | None = None
    start = segments[0].base_offset
    for offset in reversed([o for o in offsets if o <= min(replay_floor, end)]):
        try:
            state = ProducerState.read_snapshot(snapshot_path(directory, offset))
            start = offset
            break
        except (CorruptSnapshotError, OSError) as exc:
            logger.error(
                "%s: producer snapshot %d does not read (%s); removing it and replaying from an older one",
                directory,
                offset,
                exc,
            )
            snapshot_path(directory, offset).unlink(missing_ok=True)
    if state is None:
        state = ProducerState()
        start = segments[0].base_offset
    for seg in segments:
        if seg.next_offset <= start or seg.size == 0:
            continue
        found = seg.find(start)
        if found is None:
            continue
        for _, batch in seg.batches(found[0]):
            if batch.last_offset < start:
                continue
            done = state.replay(batch)
            if done is not None and done.aborted and seg.base_offset in rebuilt:
                lso = state.first_unstable_offset()
                seg.txn_index.append(
                    AbortedTxn(
                        done.producer_id,
                        done.first_offset,
                        done.last_offset,
                        lso if lso is not None else done.last_offset + 1,
                    )
                )
        if seg.base_offset in rebuilt:
            seg.txn_index.persist(sync=True)
    return state
