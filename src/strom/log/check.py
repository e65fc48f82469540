"""An offline, read-only check of a data directory: what `strom check DATA_DIR` reports.

Recovery repairs what it must and logs it; this module only looks, so an operator can see damage before a
broker starts (and truncates), or after a log line said something was wrong. Nothing is ever written, renamed
or locked: files are opened read-only, and a broker holding the directory is only noted.

What is checked, against the formats in docs/formats.md:

- every `.log` segment, batch by batch: the header (length, magic), the CRC-32C, the codec, the records
  (decompressed into a bounded buffer; lengths, varints, count, offsets increasing within the batch, and no
  record timestamp above the batch's maxTimestamp under CreateTime), base offsets increasing from the
  segment's name, and a file that ends inside a batch (a torn tail);
- segments in order: each starts at or after the previous one's end;
- `.index`: whole entries, offsets and positions increasing, each naming the start of the batch that ends
  at its offset; `.timeindex`: whole entries, timestamps increasing, each naming a batch ending at its
  offset whose maxTimestamp is its timestamp; `.txnindex`: its format, entries inside the segment;
- producer snapshots: version, CRC and length, and no snapshot beyond the log end;
- `leader-epoch-checkpoint`, and the data directory's offset checkpoints: their format, and no recovery
  point or log start offset beyond a partition's log end.

A finding is *damage* (the exit code is 1) or a *note*: what a crash normally leaves and recovery cleans up
(temporary files, an index missing or without its segment), or something worth knowing that is not wrong.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import itertools
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from strom.log.checkpoint import (
    CLEANER_OFFSET_CHECKPOINT,
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT,
    CorruptCheckpointError,
    TopicPartition,
    read_offsets,
)
from strom.log.index import OFFSET_ENTRY, OFFSET_ENTRY_SIZE, TIME_ENTRY, TIME_ENTRY_SIZE, CorruptIndexError
from strom.log.leader_epoch import FILE_NAME as LEADER_EPOCH_FILE
from strom.log.partition import parse_partition_dir
from strom.log.producer_state import SNAPSHOT_SUFFIX, CorruptSnapshotError, ProducerState
from strom.log.segment import (
    CLEANED_SUFFIX,
    DELETED_SUFFIX,
    INDEX_SUFFIX,
    INT32_MAX,
    LOG_SUFFIX,
    SWAP_SUFFIX,
    TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX,
    file_name,
    parse_file_name,
)
from strom.log.txn_index import TransactionIndex
from strom.protocol.errors import CorruptRecordError
from strom.protocol.records import HEADER_SIZE, LOG_OVERHEAD, RecordBatch, TimestampType

# Decompressed records of one stored batch are read into at most this many bytes: a batch that would
# expand further is reported, not decompressed (a bomb stored before the validator bounded it).
RECORDS_LIMIT = 256 << 20
# Findings reported per file before the rest are summarised: one flipped length can misalign every
# header after it.
MAX_FINDINGS_PER_FILE = 20
_LENGTH = struct.Struct(">qi")
_LOCK_FILE = ".lock"
_DELETE_DIR_SUFFIX = "-delete"
_DIR_FILES = {
    RECOVERY_POINT_CHECKPOINT,
    LOG_START_OFFSET_CHECKPOINT,
    CLEANER_OFFSET_CHECKPOINT,
    _LOCK_FILE,
    ".kafka_cleanshutdown",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """One thing found: the file, where in it (a byte position and offset, an entry, a line; may be
    empty), what is wrong, and whether it is damage or a note."""

    path: Path
    where: str
    problem: str
    damage: bool = True

    def describe(self, root: Path) -> str:
        try:
            name = self.path.relative_to(root)
        except ValueError:
            name = self.path
        place = f" {self.where}" if self.where else ""
        return f"{'DAMAGE' if self.damage else 'note'}: {name}{place}: {self.problem}"


@dataclasses.dataclass(slots=True)
class CheckReport:
    """Everything a check of one data directory found, and how much it read."""

    findings: list[Finding] = dataclasses.field(default_factory=list)
    partitions: int = 0
    segments: int = 0
    batches: int = 0

    @property
    def damaged(self) -> bool:
        return any(f.damage for f in self.findings)


@dataclasses.dataclass(slots=True)
class _Segment:
    """What walking one `.log` file learnt: each valid batch's start position -> (last offset, max
    timestamp), the offset after its last valid batch, and its first base offset (None when empty)."""

    batches: dict[int, tuple[int, int]]
    next_offset: int
    first_offset: int | None


def check_data_dir(data_dir: Path) -> CheckReport:
    """Check every file of `data_dir` (see the module doc); never modifies anything."""
    report = CheckReport()
    if not data_dir.is_dir():
        report.findings.append(Finding(data_dir, "", "is not a directory"))
        return report
    if _held_by_a_broker(data_dir):
        report.findings.append(
            Finding(
                data_dir,
                "",
                "a broker has this data directory open: its active segments may change while being read",
                damage=False,
            )
        )
    log_ends: dict[TopicPartition, int] = {}
    for entry in sorted(os.scandir(data_dir), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.is_dir():
            if entry.name.endswith(_DELETE_DIR_SUFFIX):
                report.findings.append(
                    Finding(path, "", "a partition being deleted; the next start removes it", damage=False)
                )
                continue
            tp = parse_partition_dir(entry.name)
            if tp is None:
                report.findings.append(Finding(path, "", "not a partition directory", damage=False))
                continue
            report.partitions += 1
            log_ends[tp] = _check_partition(path, report)
        elif entry.name not in _DIR_FILES and not entry.name.endswith(".tmp"):
            continue  # the broker's own files (topic registry and the like) are not the log's
        elif entry.name.endswith(".tmp"):
            report.findings.append(
                Finding(path, "", "a checkpoint write that did not finish; it is ignored", damage=False)
            )
    for name in (RECOVERY_POINT_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT, CLEANER_OFFSET_CHECKPOINT):
        _check_checkpoint(data_dir / name, log_ends, report)
    return report


def _held_by_a_broker(data_dir: Path) -> bool:
    """Whether another process holds the directory's lock (tested with a shared, non-blocking flock on a
    read-only descriptor, released at once; the file is not created when missing)."""
    try:
        fd = os.open(data_dir / _LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)
    return False


def _check_partition(directory: Path, report: CheckReport) -> int:
    """Check one partition directory; returns its log end offset as far as its valid batches go."""
    bases: list[int] = []
    others: list[tuple[Path, int, str, str]] = []
    snapshots: list[tuple[Path, int]] = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        path = Path(entry.path)
        parsed = parse_file_name(entry.name)
        if entry.name.endswith(SNAPSHOT_SUFFIX) and parsed is not None:
            snapshots.append((path, parsed[0]))
        elif parsed is not None and parsed[1] == LOG_SUFFIX and not parsed[2]:
            bases.append(parsed[0])
        elif parsed is not None:
            others.append((path, *parsed))
        elif entry.name.endswith(".tmp"):
            report.findings.append(
                Finding(path, "", "a file write that did not finish; recovery removes it", damage=False)
            )
        elif entry.name != LEADER_EPOCH_FILE:
            report.findings.append(Finding(path, "", "not a file of the log", damage=False))
    live = set(bases)
    for path, base, kind, suffix in others:
        if suffix in (CLEANED_SUFFIX, DELETED_SUFFIX, SWAP_SUFFIX):
            what = (
                "the cleaner's swap, which recovery finishes"
                if suffix == SWAP_SUFFIX
                else ("left by an unfinished clean or delete; recovery removes it")
            )
            report.findings.append(Finding(path, "", what, damage=False))
        elif base not in live and kind in (INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX):
            report.findings.append(
                Finding(path, "", "an index without its segment; recovery removes it", damage=False)
            )
    end = 0
    previous_end: int | None = None
    for base in bases:
        report.segments += 1
        log_path = directory / file_name(base, LOG_SUFFIX)
        seg = _check_log(log_path, base, report)
        if previous_end is not None and seg.first_offset is not None and seg.first_offset < previous_end:
            report.findings.append(
                Finding(
                    log_path,
                    "byte 0",
                    f"starts at offset {seg.first_offset}, inside the previous segment (which ends at "
                    f"offset {previous_end - 1})",
                )
            )
        _check_offset_index(directory / file_name(base, INDEX_SUFFIX), base, seg, report)
        _check_time_index(directory / file_name(base, TIME_INDEX_SUFFIX), base, seg, report)
        _check_txn_index(directory / file_name(base, TXN_INDEX_SUFFIX), base, seg, report)
        previous_end = seg.next_offset
        end = seg.next_offset
    if not bases:
        report.findings.append(Finding(directory, "", "holds no segment; the next start creates one", False))
    for path, offset in snapshots:
        try:
            ProducerState.read_snapshot(path)
        except (CorruptSnapshotError, OSError) as exc:
            report.findings.append(Finding(path, "", f"producer snapshot does not read: {exc}"))
            continue
        if bases and offset > end:
            report.findings.append(
                Finding(path, "", f"producer snapshot at offset {offset} is beyond the log end offset {end}")
            )
    _check_leader_epochs(directory / LEADER_EPOCH_FILE, end, report)
    return end


def _batches(path: Path, report: CheckReport) -> Iterator[tuple[int, RecordBatch | None, str | None]]:
    """(position, batch, None) for each batch of a `.log` file whose bytes are all there, or (position,
    None, problem) where the file cannot be walked further."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        position = 0
        while position < size:
            head = f.read(LOG_OVERHEAD)
            if len(head) < LOG_OVERHEAD:
                yield position, None, f"the file ends {len(head)} bytes into a batch header (a torn write)"
                return
            _, length = _LENGTH.unpack(head)
            if length < HEADER_SIZE - LOG_OVERHEAD:
                yield position, None, f"batch length {length} is below the v2 minimum; nothing after it reads"
                return
            if position + LOG_OVERHEAD + length > size:
                yield (
                    position,
                    None,
                    f"batch length {length} runs {position + LOG_OVERHEAD + length - size} bytes past the "
                    "end of the file (a torn write, or a damaged length)",
                )
                return
            body = f.read(length)
            report.batches += 1
            yield position, RecordBatch(head + body), None
            position += LOG_OVERHEAD + length


def _check_log(path: Path, base: int, report: CheckReport) -> _Segment:
    """Walk one segment file batch by batch (see the module doc).

    Every batch whose bytes are all there is remembered for the index checks, valid or not, so a damaged
    batch is reported once rather than again through each index entry naming it. A base offset above the
    previous batch's end is a gap (compaction leaves them); when the batch after a gap overlaps it, the
    first of the two is reported, since either base offset may be the damaged one.
    """
    found: list[Finding] = []
    seg = _Segment({}, base, None)
    expected = base
    gap: tuple[int, int] | None = None  # (position, base offset) of the last batch if it followed a gap
    try:
        for position, batch, problem in _batches(path, report):
            if batch is None:
                found.append(Finding(path, f"byte {position} (offset {expected})", problem or ""))
                break
            where = f"byte {position} (offset {batch.base_offset})"
            seg.batches[position] = (batch.last_offset, batch.max_timestamp)
            try:
                batch.validate()
            except CorruptRecordError as exc:
                found.append(Finding(path, where, str(exc)))
                continue
            if batch.base_offset < expected:
                if gap is not None:
                    found.append(
                        Finding(
                            path,
                            f"byte {gap[0]} (offset {gap[1]})",
                            f"base offset {gap[1]} leaves a gap that the next batch (byte {position}, base "
                            f"offset {batch.base_offset}) overlaps: one of the two base offsets is damaged",
                        )
                    )
                else:
                    found.append(
                        Finding(
                            path,
                            where,
                            f"base offset {batch.base_offset} is below {expected}, where the previous batch "
                            "(or the segment's name) says the next one starts",
                        )
                    )
                gap = None
                continue
            if batch.last_offset - base > INT32_MAX:
                found.append(
                    Finding(path, where, f"last offset {batch.last_offset} is out of the segment's range")
                )
                continue
            problem = _records_problem(batch)
            if problem is not None:
                found.append(Finding(path, where, problem))
                continue
            gap = (position, batch.base_offset) if batch.base_offset > expected else None
            if seg.first_offset is None:
                seg.first_offset = batch.base_offset
            expected = seg.next_offset = batch.next_offset
    except OSError as exc:
        found.append(Finding(path, "", f"cannot be read: {exc}"))
    _add(report, path, found)
    return seg


def _records_problem(batch: RecordBatch) -> str | None:
    """What is wrong with a stored batch's records, or None."""
    try:
        offsets = [(r.offset, r.timestamp) for r in batch.records(RECORDS_LIMIT)]
    except CorruptRecordError as exc:
        return str(exc)
    previous = batch.base_offset - 1
    for offset, _ in offsets:
        if not previous < offset <= batch.last_offset:
            return (
                f"record offset {offset} is not between the previous record's {previous} and the batch's "
                f"last offset {batch.last_offset}"
            )
        previous = offset
    if batch.timestamp_type is TimestampType.CREATE_TIME and not batch.is_control and offsets:
        newest = max(ts for _, ts in offsets)
        if newest > batch.max_timestamp:
            return f"a record is stamped {newest}, above the batch's maxTimestamp {batch.max_timestamp}"
    return None


def _read(path: Path, report: CheckReport) -> bytes | None:
    """A file's bytes, None when missing (the segment's index is then rebuilt on load: a note)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        report.findings.append(Finding(path, "", f"cannot be read: {exc}"))
        return None


def _read_index(path: Path, seg: _Segment, report: CheckReport) -> bytes | None:
    """An index file's bytes; a missing index of a segment that holds batches is only a note, since the next
    start rebuilds it."""
    data = _read(path, report)
    if data is None and seg.batches:
        report.findings.append(Finding(path, "", "missing; the next start rebuilds it", damage=False))
    return data


def _check_offset_index(path: Path, base: int, seg: _Segment, report: CheckReport) -> None:
    data = _read_index(path, seg, report)
    if data is None:
        return
    found: list[Finding] = []
    if len(data) % OFFSET_ENTRY_SIZE:
        found.append(Finding(path, "", f"size {len(data)} is not a multiple of {OFFSET_ENTRY_SIZE}"))
    previous = (-1, -1)
    for number, (relative, position) in enumerate(OFFSET_ENTRY.iter_unpack(data[: len(data) // 8 * 8])):
        where = f"entry {number} (offset {base + relative}, byte {position})"
        if relative <= previous[0] or position <= previous[1]:
            found.append(Finding(path, where, "offsets and positions must both increase"))
        elif seg.batches.get(position, (None,))[0] != base + relative:
            found.append(Finding(path, where, "does not name the start of the batch ending at its offset"))
        previous = (relative, position)
    _add(report, path, found)


def _check_time_index(path: Path, base: int, seg: _Segment, report: CheckReport) -> None:
    data = _read_index(path, seg, report)
    if data is None:
        return
    found: list[Finding] = []
    if len(data) % TIME_ENTRY_SIZE:
        found.append(Finding(path, "", f"size {len(data)} is not a multiple of {TIME_ENTRY_SIZE}"))
    max_timestamps = dict(seg.batches.values())
    previous = (-(2**63), -1)
    usable = len(data) // TIME_ENTRY_SIZE * TIME_ENTRY_SIZE
    for number, (timestamp, relative) in enumerate(TIME_ENTRY.iter_unpack(data[:usable])):
        where = f"entry {number} (timestamp {timestamp}, offset {base + relative})"
        if timestamp <= previous[0] or relative < previous[1]:
            found.append(Finding(path, where, "timestamps must increase and offsets must not decrease"))
        elif max_timestamps.get(base + relative) != timestamp:
            found.append(
                Finding(path, where, "no batch ends at its offset with its timestamp as maxTimestamp")
            )
        previous = (timestamp, relative)
    _add(report, path, found)


def _check_txn_index(path: Path, base: int, seg: _Segment, report: CheckReport) -> None:
    try:
        index = TransactionIndex.load(path)
    except (CorruptIndexError, OSError) as exc:
        report.findings.append(Finding(path, "", str(exc)))
        return
    for number, txn in enumerate(index.entries):
        if not base <= txn.last_offset < seg.next_offset:
            report.findings.append(
                Finding(
                    path,
                    f"entry {number}",
                    f"aborted transaction ending at offset {txn.last_offset} lies outside the segment "
                    f"(offsets {base} to {seg.next_offset - 1})",
                )
            )


def _check_leader_epochs(path: Path, end: int, report: CheckReport) -> None:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError) as exc:
        report.findings.append(Finding(path, "", f"cannot be read: {exc}"))
        return
    try:
        if lines[0] != "0":
            raise ValueError(f"version {lines[0]!r}, expected 0")
        count = int(lines[1])
        pairs = [tuple(int(x) for x in line.split()) for line in lines[2:] if line.strip()]
        if len(pairs) != count or any(len(p) != 2 for p in pairs):
            raise ValueError(
                f"the count line says {count} entries of 'epoch offset', found {len(pairs)} lines"
            )
    except (ValueError, IndexError) as exc:
        report.findings.append(Finding(path, "", f"malformed: {exc}"))
        return
    for a, b in itertools.pairwise(pairs):
        if not (a[0] < b[0] and a[1] <= b[1]):
            report.findings.append(Finding(path, "", f"epochs out of order: {a} then {b}"))
            return
    if pairs and pairs[-1][1] > end:
        report.findings.append(
            Finding(
                path, "", f"epoch {pairs[-1][0]} starts at offset {pairs[-1][1]}, beyond the log end {end}"
            )
        )


def _check_checkpoint(path: Path, log_ends: dict[TopicPartition, int], report: CheckReport) -> None:
    try:
        offsets = read_offsets(path)
    except CorruptCheckpointError as exc:
        report.findings.append(Finding(path, "", str(exc)))
        return
    except OSError as exc:
        report.findings.append(Finding(path, "", f"cannot be read: {exc}"))
        return
    for (topic, partition), offset in sorted(offsets.items()):
        end = log_ends.get((topic, partition))
        where = f"entry {topic} {partition}"
        if end is None:
            report.findings.append(Finding(path, where, "names a partition with no directory", damage=False))
        elif offset > end and path.name != CLEANER_OFFSET_CHECKPOINT:
            report.findings.append(
                Finding(
                    path,
                    where,
                    f"offset {offset} is beyond the partition's log end {end}: records it says are "
                    "there are missing",
                )
            )


def _add(report: CheckReport, path: Path, found: list[Finding]) -> None:
    """Add a file's findings, at most MAX_FINDINGS_PER_FILE of them."""
    report.findings.extend(found[:MAX_FINDINGS_PER_FILE])
    if len(found) > MAX_FINDINGS_PER_FILE:
        report.findings.append(
            Finding(path, "", f"{len(found) - MAX_FINDINGS_PER_FILE} more problems in this file not shown")
        )
