"""One log segment: a `.log` file of RecordBatches back to back, with its offset, time and txn indexes.

File names are the segment's base offset zero-padded to 20 digits plus a kind (`.log`, `.index`,
`.timeindex`, `.txnindex`) and an optional state suffix (`.cleaned`, `.swap`, `.deleted`), as in Kafka, so
that `kafka-dump-log` reads them. The byte layout is in docs/formats.md.

Appends go to the end of the file with one `writev` per append (patched headers and the untouched batch
bodies); index entries are added in memory every `index.interval.bytes` and written on flush. Readers get
byte ranges of the file (`LogSlice`) that can be sent as-is.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import struct
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from strom.log.config import LogConfig
from strom.log.errors import CorruptSegmentError, LogClosedError
from strom.log.index import (
    OFFSET_ENTRY,
    OFFSET_ENTRY_SIZE,
    TIME_ENTRY,
    TIME_ENTRY_SIZE,
    CorruptIndexError,
    OffsetIndex,
    TimeIndex,
)
from strom.log.txn_index import TransactionIndex
from strom.protocol.errors import CorruptRecordError, TruncatedBatchError
from strom.protocol.records import (
    HEADER_SIZE,
    LAST_OFFSET_DELTA_OFFSET,
    LENGTH_OFFSET,
    LOG_OVERHEAD,
    MAX_TIMESTAMP_OFFSET,
    RecordBatch,
)

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
TXN_INDEX_SUFFIX = ".txnindex"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
DELETED_SUFFIX = ".deleted"
FILE_KINDS = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)

logger = logging.getLogger(__name__)

NO_TIMESTAMP = -1
INT32_MAX = 2**31 - 1
_CHUNK = 1 << 20  # bytes read at a time when walking a segment
_LOOKUP_CHUNK = 16 << 10  # bytes read at a time when scanning forward from an index entry
_IOV_MAX = 1024
_HEAD = struct.Struct(">qi")  # baseOffset, batchLength
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


def file_name(base_offset: int, kind: str, suffix: str = "") -> str:
    """`00000000000000000042.log` for base offset 42 and kind `.log`."""
    return f"{base_offset:020d}{kind}{suffix}"


def parse_file_name(name: str) -> tuple[int, str, str] | None:
    """(base offset, kind, state suffix) of a segment file name, or None if it is not one."""
    stem, dot, rest = name.partition(".")
    if len(stem) != 20 or not stem.isdigit() or not dot:
        return None
    kind, _, suffix = rest.partition(".")
    return int(stem), "." + kind, ("." + suffix) if suffix else ""


def _read_tail(path: Path, size: int, count: int) -> bytes:
    """The last `count` bytes of a file of `size` bytes."""
    with open(path, "rb") as f:
        f.seek(size - count)
        data = f.read(count)
    if len(data) != count:
        raise CorruptIndexError(f"{path}: shorter than its size {size}")
    return data


class BatchInfo(NamedTuple):
    """What an append needs to know of each batch written: its size, last offset and max timestamp.

    A named tuple rather than a frozen dataclass: one is built per appended batch, at half the cost."""

    size: int
    last_offset: int
    max_timestamp: int


class SegmentRecovery(NamedTuple):
    """What `Segment.recover` found: the valid bytes kept, the bytes cut off after them, the next offset of
    the kept batches and how many there are, and why the walk stopped early (None when every byte was
    valid): the reasons recovery logs, so that no truncation is silent."""

    valid_bytes: int
    truncated_bytes: int
    next_offset: int
    batches: int
    reason: str | None
    torn_tail: bool  # the file ends inside its last batch: what a write cut short by a crash leaves


@dataclasses.dataclass(frozen=True, slots=True)
class LogSlice:
    """A byte range of a segment file: whole batches from `position`, possibly a partial batch at the end
    (as Kafka's Fetch does when `max_bytes` cuts a batch). Send it with
    `os.sendfile(sock_fd, slice.fileno(), slice.position, slice.size)` or read it with `read()`; never seek
    the shared file descriptor. The descriptor stays open until the segment is deleted, which happens
    `file.delete.delay.ms` after retention or compaction removed it, so a slice outlives those for a while.
    """

    segment: Segment | None
    position: int
    size: int
    first_offset: int

    def fileno(self) -> int:
        if self.segment is None:
            raise ValueError("an empty LogSlice has no file")
        return self.segment.fileno()

    def read(self) -> bytes:
        """The bytes of the range (a copy)."""
        if self.segment is None or self.size == 0:
            return b""
        return self.segment.read_at(self.position, self.size)


def _write_all(fd: int, buffers: Sequence[bytes | bytearray | memoryview]) -> None:
    """writev every buffer, continuing after short writes and in groups of IOV_MAX."""
    pending = list(buffers)
    i = 0
    while True:
        while i < len(pending) and memoryview(pending[i]).nbytes == 0:
            i += 1
        if i == len(pending):
            return
        n = os.writev(fd, pending[i : i + _IOV_MAX])
        while n:
            size = memoryview(pending[i]).nbytes
            if n >= size:
                n -= size
                i += 1
            else:
                pending[i] = memoryview(pending[i]).cast("B")[n:]
                n = 0


class Segment:
    """One segment of a partition log.

    Invariants kept:
    - the `.log` file holds exactly `size` bytes of complete batches, with base offsets increasing and
      `next_offset` = last batch's last offset + 1 (= base_offset when empty);
    - every last offset fits in an int32 relative to base_offset (the partition rolls before it would not);
    - index entries point at batch starts and carry that batch's last offset (offset index) or the largest
      timestamp so far (time index); they are a cache of the log: whenever they might be stale or fail
      their checks (at load, or the entry a lookup uses) they are rebuilt from the `.log` file, never
      trusted. A trusted segment loads them lazily, on first use.
    Failures survived: an append that fails half-way (disk full) is cut off again (ftruncate) so the file
    never holds a partial batch; a closed segment refuses reads (`LogClosedError`) and ignores `flush`; a
    file that shrank behind the log's back raises `TruncatedBatchError` instead of being misread; a batch
    header damaged outside the CRC (its base offset) in a trusted segment is found before it is served:
    the headers of a trusted segment are checked in order, once, as reads first reach them (`_verified`),
    and a read stops before a batch whose offsets break the order (`CorruptSegmentError`, logged once).
    """

    def __init__(
        self, directory: Path, base_offset: int, config: LogConfig, created_ms: int, suffix: str
    ) -> None:
        self.dir = directory
        self.base_offset = base_offset
        self.suffix = suffix
        self.created_ms = created_ms
        self.size = 0
        self.next_offset = base_offset
        self.max_timestamp = NO_TIMESTAMP
        self.offset_of_max_timestamp = base_offset - 1
        self.rolling_timestamp = NO_TIMESTAMP  # max timestamp of the first batch (drives segment.ms)
        self.jitter_ms = 0
        self._config = config
        self._index_interval = config.index_interval_bytes
        self._bytes_since_index = 0
        self._unflushed = False
        self._closed = False
        self._lock = threading.Lock()  # orders flush against close and rename (held during fsync)
        self._fd_lock = threading.Lock()  # orders reads against closing the descriptor (never held long)
        # None = not loaded yet: a trusted segment reads its index files only when a lookup needs them.
        self._oi: OffsetIndex | None = OffsetIndex(
            self.path(INDEX_SUFFIX), base_offset, config.segment_index_bytes
        )
        self._ti: TimeIndex | None = TimeIndex(
            self.path(TIME_INDEX_SUFFIX), base_offset, config.segment_index_bytes
        )
        self._indexed_max_timestamp = NO_TIMESTAMP  # last time-index timestamp on disk while not loaded
        self.txn_index = TransactionIndex(self.path(TXN_INDEX_SUFFIX))
        self._fd = -1
        # Batch headers checked in order from byte 0 (appends and recovery check what they write; a trusted
        # segment's are checked as reads reach them), and the lowest base offset the next one may have.
        self._verified = 0
        self._verified_next = base_offset
        self._damaged_at: int | None = None  # position of a header that broke the order, once found

    # ----- construction -----

    @classmethod
    def create(
        cls, directory: Path, base_offset: int, config: LogConfig, now_ms: int, suffix: str = ""
    ) -> Segment:
        """A new, empty segment (its `.log` file is created, truncating any leftover of the same name).

        The cleaner creates its output with suffix `.cleaned` and fills it with `append_batches`.
        """
        seg = cls(directory, base_offset, config, now_ms, suffix)
        seg._fd = os.open(seg.log_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        for kind in (INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX):
            seg.path(kind).unlink(missing_ok=True)
        return seg

    @classmethod
    def open(
        cls,
        directory: Path,
        base_offset: int,
        config: LogConfig,
        now_ms: int,
        *,
        trust_indexes: bool,
        suffix: str = "",
    ) -> Segment:
        """Open an existing segment.

        With `trust_indexes` (a segment known to be flushed) the index files are loaded and checked
        (`CorruptIndexError` from any check, or a missing file, leads to a rebuild from the log); the log
        itself is not re-validated. Without it the caller must call `recover()`.
        """
        seg = cls(directory, base_offset, config, now_ms, suffix)
        seg._fd = os.open(seg.log_path, os.O_RDWR | os.O_APPEND)
        seg.size = os.fstat(seg._fd).st_size
        seg.created_ms = int(os.fstat(seg._fd).st_mtime * 1000)
        if trust_indexes:
            try:
                try:
                    seg._load_indexes(config)
                except (CorruptIndexError, CorruptRecordError, FileNotFoundError) as exc:
                    seg.rebuild_indexes(f"its indexes do not load: {exc}")  # raises if the log is damaged
            except BaseException:
                seg._release_fd()
                raise
        return seg

    def _load_indexes(self, config: LogConfig) -> None:
        """Open a trusted segment cheaply: read only the last entry of each index file (checking the offset
        index's against the batch it names), find the log end by scanning the headers after it, and leave
        the full indexes to be loaded on first use (`_ensure_indexes`), as Kafka does."""
        index_path = self.path(INDEX_SUFFIX)
        index_size = index_path.stat().st_size
        if index_size % OFFSET_ENTRY_SIZE:
            raise CorruptIndexError(
                f"{index_path}: size {index_size} is not a multiple of {OFFSET_ENTRY_SIZE}"
            )
        start = 0
        if index_size:
            rel, position = OFFSET_ENTRY.unpack(_read_tail(index_path, index_size, OFFSET_ENTRY_SIZE))
            if (
                rel < 0
                or not 0 <= position < self.size
                or self._header_at(position)[2] != self.base_offset + rel
            ):
                raise CorruptIndexError(
                    f"{index_path}: last entry ({rel}, {position}) does not match the log"
                )
            start = position
        next_offset, max_ts, max_ts_offset = self._scan_tail(start)
        self.next_offset = next_offset
        time_path = self.path(TIME_INDEX_SUFFIX)
        time_size = time_path.stat().st_size
        if time_size % TIME_ENTRY_SIZE:
            raise CorruptIndexError(f"{time_path}: size {time_size} is not a multiple of {TIME_ENTRY_SIZE}")
        if time_size:
            ts, rel = TIME_ENTRY.unpack(_read_tail(time_path, time_size, TIME_ENTRY_SIZE))
            if not 0 <= rel <= next_offset - 1 - self.base_offset:
                raise CorruptIndexError(f"{time_path}: last entry ({ts}, {rel}) lies outside the segment")
            self.max_timestamp, self.offset_of_max_timestamp = ts, self.base_offset + rel
            self._indexed_max_timestamp = ts
        if max_ts > self.max_timestamp:
            self.max_timestamp, self.offset_of_max_timestamp = max_ts, max_ts_offset
        self.txn_index = TransactionIndex.load(self.path(TXN_INDEX_SUFFIX))
        if self.txn_index.entries and self.txn_index.entries[-1].last_offset >= next_offset:
            raise CorruptIndexError(f"{self.txn_index.path}: entry beyond the segment's last offset")
        if self.size:
            self.rolling_timestamp = self._header_at(0)[3]
        self._oi = self._ti = None

    def _ensure_indexes(self) -> tuple[OffsetIndex, TimeIndex]:
        """The loaded indexes: read and checked on first use (every entry's order and bounds, a sample of
        entries against the log); anything wrong, or a missing file, means a rebuild from the log."""
        if self._oi is not None and self._ti is not None:
            return self._oi, self._ti
        try:
            oi = OffsetIndex.load(
                self.path(INDEX_SUFFIX), self.base_offset, self._config.segment_index_bytes, self.size
            )
            self._check_offset_index_sample(oi)
            ti = TimeIndex.load(
                self.path(TIME_INDEX_SUFFIX),
                self.base_offset,
                self._config.segment_index_bytes,
                self.next_offset - 1,
            )
        except (CorruptIndexError, CorruptRecordError, FileNotFoundError) as exc:
            self.rebuild_indexes(f"its indexes do not load: {exc}")
            assert self._oi is not None and self._ti is not None
            return self._oi, self._ti
        self._oi, self._ti = oi, ti
        return oi, ti

    @property
    def offset_index(self) -> OffsetIndex:
        return self._ensure_indexes()[0]

    @property
    def time_index(self) -> TimeIndex:
        return self._ensure_indexes()[1]

    def _check_offset_index_sample(self, index: OffsetIndex) -> None:
        """Check that sampled index entries (always the first and last) name the last offset of the batch at
        their position."""
        n = len(index)
        step = max(1, n // 32)
        for i in sorted({*range(0, n, step), n - 1}) if n else ():
            offset, position = index.entry(i)
            base, _, last, _ = self._header_at(position)
            if last != offset or base < self.base_offset:
                raise CorruptIndexError(
                    f"{index.path}: entry {i} says offset {offset} at position {position}, "
                    f"the batch there ends at offset {last}"
                )

    def _scan_tail(self, start: int) -> tuple[int, int, int]:
        """Walk batch headers from `start` to the end: (next offset, max timestamp, its offset)."""
        next_offset = self.base_offset
        max_ts, max_ts_offset = NO_TIMESTAMP, self.base_offset - 1
        for _, batch in self._walk(start, self.size):
            next_offset = batch.next_offset
            if batch.max_timestamp > max_ts:
                max_ts, max_ts_offset = batch.max_timestamp, batch.last_offset
        return next_offset, max_ts, max_ts_offset

    # ----- paths and files -----

    def path(self, kind: str) -> Path:
        return self.dir / file_name(self.base_offset, kind, self.suffix)

    @property
    def log_path(self) -> Path:
        return self.path(LOG_SUFFIX)

    def fileno(self) -> int:
        return self._fd

    @property
    def closed(self) -> bool:
        return self._closed

    def read_at(self, position: int, size: int) -> bytes:
        """`size` bytes of the `.log` file from `position` (fewer at end of file). Raises LogClosedError once
        the segment is closed (its descriptor number may already belong to another file)."""
        with self._fd_lock:
            if self._closed:
                raise LogClosedError(f"segment {self.log_path} is closed")
            return os.pread(self._fd, size, position)

    def __repr__(self) -> str:
        last = self.next_offset - 1
        return f"Segment({self.log_path.name}, size={self.size}, offsets={self.base_offset}..{last})"

    # ----- appending -----

    def append(self, buffers: Sequence[bytes | bytearray | memoryview], batches: Sequence[BatchInfo]) -> None:
        """Write `buffers` (which concatenate to the batches described by `batches`) with one writev.

        The caller has assigned offsets already. On an OSError the file is cut back to its old size and the
        error re-raised, so the segment never keeps part of an append.
        """
        start = self.size
        try:
            _write_all(self._fd, buffers)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, start)
            except OSError as cut:
                logger.error(
                    "segment %s: an append failed (%s) and cannot be cut back to byte %d (%s); reads stop "
                    "there, and recovery cuts the partial batch at the next start",
                    self.log_path,
                    exc,
                    start,
                    cut,
                )
            else:
                logger.warning(
                    "segment %s: an append failed (%s); cut back to byte %d, the end of its last batch",
                    self.log_path,
                    exc,
                    start,
                )
            raise
        self._unflushed = True
        self._index_batches(start, batches)
        if self._verified == start:
            self._verified, self._verified_next = self.size, self.next_offset

    def append_batches(self, data: bytes | bytearray | memoryview) -> None:
        """Append already-offset batches verbatim (the cleaner's output path); validates nothing."""
        view = memoryview(data).cast("B")
        infos = []
        pos = 0
        while pos < len(view):
            base, length = _HEAD.unpack_from(view, pos)
            (delta,) = _I32.unpack_from(view, pos + LAST_OFFSET_DELTA_OFFSET)
            (max_ts,) = _I64.unpack_from(view, pos + MAX_TIMESTAMP_OFFSET)
            infos.append(BatchInfo(length + LOG_OVERHEAD, base + delta, max_ts))
            pos += length + LOG_OVERHEAD
        self.append([view], infos)

    def _index_batches(self, position: int, batches: Sequence[BatchInfo]) -> None:
        interval = self._index_interval
        for info in batches:
            if position == 0:
                self.rolling_timestamp = info.max_timestamp
            if info.max_timestamp > self.max_timestamp:
                self.max_timestamp = info.max_timestamp
                self.offset_of_max_timestamp = info.last_offset
            if self._bytes_since_index > interval:
                self.offset_index.append(info.last_offset, position)
                self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
                self._bytes_since_index = 0
            position += info.size
            self._bytes_since_index += info.size
            self.next_offset = info.last_offset + 1
        self.size = position

    @property
    def indexes_full(self) -> bool:
        return self.offset_index.is_full or self.time_index.is_full

    # ----- reading -----

    def _header_at(self, position: int) -> tuple[int, int, int, int]:
        """(base offset, size, last offset, max timestamp) of the batch at `position`."""
        head = self.read_at(position, HEADER_SIZE)
        if len(head) < HEADER_SIZE:
            raise TruncatedBatchError(f"{self.log_path}: batch header at position {position} is cut off")
        base, length = _HEAD.unpack_from(head, 0)
        (delta,) = _I32.unpack_from(head, LAST_OFFSET_DELTA_OFFSET)
        (max_ts,) = _I64.unpack_from(head, MAX_TIMESTAMP_OFFSET)
        return base, length + LOG_OVERHEAD, base + delta, max_ts

    def find(self, offset: int) -> tuple[int, int] | None:
        """(position, base offset) of the first batch whose last offset is >= `offset`, or None when every
        batch of the segment ends before it. Uses the offset index, then scans headers forward in chunks.

        The index entry used is checked against the batch it points at (its last offset must match); an
        entry that does not is proof of a damaged index, which is then rebuilt from the log, so a bad entry
        can never make a read skip records."""
        found = self._find(offset)
        if found is None or found[2]:
            return None if found is None else (found[0], found[1])
        self.rebuild_indexes(f"the offset index entry used to find offset {offset} does not match the log")
        again = self._find(offset)
        if again is None or again[2]:
            return None if again is None else (again[0], again[1])
        raise CorruptIndexError(f"{self.offset_index.path}: rebuilt index still disagrees with the log")

    def _find(self, offset: int) -> tuple[int, int, bool] | None:
        """Like `find`, plus whether the index entry it started from matched the log."""
        entry_offset, position = self.offset_index.lookup(offset)
        check = position > 0
        end = self.size
        while position < end:
            chunk = self.read_at(position, min(_LOOKUP_CHUNK, end - position))
            pos = 0
            while pos + HEADER_SIZE <= len(chunk):
                base, length = _HEAD.unpack_from(chunk, pos)
                (delta,) = _I32.unpack_from(chunk, pos + LAST_OFFSET_DELTA_OFFSET)
                if check:
                    if base + delta != entry_offset:
                        return position, base, False
                    check = False
                if base + delta >= offset:
                    return position + pos, base, True
                pos += length + LOG_OVERHEAD
            if pos == 0:  # a header straddles the chunk boundary; read it on its own
                base, size, last, _ = self._header_at(position)
                if check and last != entry_offset:
                    return position, base, False
                check = False
                if last >= offset:
                    return position, base, True
                pos = size
            position += pos
        return None

    def search_start_for_timestamp(self, timestamp: int) -> int:
        """The offset from which to scan for the first record with a timestamp >= `timestamp`: just after
        the last time-index entry older than it. The entry is checked first — the batch ending at its offset
        must carry exactly its timestamp, as Kafka's own index verification demands — and the indexes are
        rebuilt from the log if it does not."""
        for _ in range(2):
            entry = self.time_index.lookup(timestamp)
            if entry is None:
                return self.base_offset
            ts, offset = entry
            found = self.find(offset)
            if found is not None:
                _, _, last, max_ts = self._header_at(found[0])
                if last == offset and max_ts == ts:
                    return offset + 1
            self.rebuild_indexes(f"its time index entry ({ts}, {offset}) disagrees with the log")
        raise CorruptIndexError(f"{self.time_index.path}: rebuilt index still disagrees with the log")

    def slice(self, offset: int, max_bytes: int, max_offset: int | None, min_one: bool) -> LogSlice | None:
        """The byte range starting at the batch holding `offset` (KIP-74: the first batch whole when
        `min_one`), up to `max_bytes` and not reaching batches at or beyond `max_offset`; None when the
        segment has no batch ending at or after `offset`."""
        found = self.find(offset)
        if found is None:
            return None
        position, base = found
        end = self.size
        if max_offset is not None and max_offset < self.next_offset:
            if base >= max_offset:
                return LogSlice(None, 0, 0, offset)
            bound = self.find(max_offset)
            if bound is not None:
                end = bound[0] if bound[1] >= max_offset else bound[0] + self._header_at(bound[0])[1]
        size = max(0, min(end - position, max_bytes))
        if min_one and size < end - position:
            first = self._header_at(position)[1]
            size = max(size, min(first, end - position))
        checked = self._verify_headers(position + size)
        if checked <= position:
            raise CorruptSegmentError(
                f"{self.log_path}: the batch header at byte {checked} breaks the offset order; reads of "
                f"offset {offset} stop there (run `strom check` on the data directory)"
            )
        return LogSlice(self, position, min(size, checked - position), base)

    def _verify_headers(self, end: int) -> int:
        """Check the batch headers from the verified prefix up to `end` (each base offset at least the
        previous batch's next offset, each last offset at least its base and below the segment's next
        offset); return how far the log is now known good, which stops before a damaged header.

        A compacted segment may leave a gap between batches, so a base offset above the previous batch's
        end is allowed; but when the batch after such a gap overlaps it, either may be the damaged one,
        so the read stops before the first of the two. The check therefore never ends just after a gap:
        the next header is read too.
        """
        if self._damaged_at is not None:
            return self._damaged_at
        position, floor = self._verified, self._verified_next
        limit = self.size
        gap_at: int | None = None  # the last batch checked, if it started above the previous one's end
        while position < limit and (position < end or gap_at is not None):
            base, size, last, _ = self._header_at(position)
            if base < floor or last < base or last >= self.next_offset or size <= LOG_OVERHEAD:
                damaged = gap_at if gap_at is not None and base < floor else position
                self._damaged_at = damaged
                logger.error(
                    "segment %s is damaged: the batch at byte %d claims offsets %d to %d, but the previous "
                    "batch ends before offset %d and the segment before offset %d; reads stop at byte %d "
                    "(run `strom check` on the data directory)",
                    self.log_path,
                    position,
                    base,
                    last,
                    floor,
                    self.next_offset,
                    damaged,
                )
                return damaged
            gap_at = position if base > floor else None
            floor = last + 1
            position += size
        if position > self._verified:
            self._verified, self._verified_next = position, floor
        return max(position, self._verified)

    def batches(self, start_position: int = 0) -> Iterator[tuple[int, RecordBatch]]:
        """(position, batch view) of every batch from `start_position`, read in 1 MiB chunks.

        CRCs are not checked (call `batch.validate()`); a damaged header raises a CorruptRecordError. The
        views are backed by private `bytes` copies, so they stay valid after the segment changes.
        """
        yield from self._walk(start_position, self.size)

    def _walk(self, start: int, end: int) -> Iterator[tuple[int, RecordBatch]]:
        pos = start
        need = _CHUNK
        while pos < end:
            requested = min(max(need, _CHUNK), end - pos)
            buf = self.read_at(pos, requested)
            n = len(buf)
            if n == 0:
                raise TruncatedBatchError(f"{self.log_path}: file ends at {pos}, expected {end} bytes")
            if n < requested:
                end = pos + n  # the file is shorter than expected: its last batch is cut off
            view = memoryview(buf)
            off = 0
            need = _CHUNK
            while off < n:
                file_left = end - (pos + off)
                if n - off >= LOG_OVERHEAD:
                    size = _I32.unpack_from(buf, off + LENGTH_OFFSET)[0] + LOG_OVERHEAD
                    if n - off < size <= file_left:
                        need = size
                        break
                elif n - off < file_left:
                    need = HEADER_SIZE
                    break
                else:
                    size = n - off
                batch = RecordBatch(view[off : off + size] if size >= HEADER_SIZE else view[off:])
                yield pos + off, batch
                off += batch.size_in_bytes
            pos += off

    # ----- recovery -----

    def recover(self, expected_first_offset: int) -> SegmentRecovery:
        """Validate every batch (CRC, header, offsets increasing from `expected_first_offset`), rebuild the
        indexes, and truncate the file at the first invalid batch; the result says what was cut and why."""
        self.offset_index.clear()
        self.time_index.clear()
        self.txn_index.clear()
        size_before = self.size
        valid = batches = 0
        reason: str | None = None
        torn_tail = False
        self.size = 0
        self.next_offset = self.base_offset
        self.max_timestamp = NO_TIMESTAMP
        self.offset_of_max_timestamp = self.base_offset - 1
        self.rolling_timestamp = NO_TIMESTAMP
        self._bytes_since_index = 0
        expected = max(expected_first_offset, self.base_offset)
        try:
            for position, batch in self._walk(0, size_before):
                batch.validate()
                if batch.base_offset < expected:
                    reason = (
                        f"the batch at byte {position} has base offset {batch.base_offset}, "
                        f"below the next expected offset {expected}"
                    )
                    break
                if batch.last_offset - self.base_offset > INT32_MAX:
                    reason = (
                        f"the batch at byte {position} ends at offset {batch.last_offset}, out of the "
                        f"segment's 32-bit range from {self.base_offset}"
                    )
                    break
                self._index_batches(
                    position, [BatchInfo(batch.size_in_bytes, batch.last_offset, batch.max_timestamp)]
                )
                expected = batch.next_offset
                valid = position + batch.size_in_bytes
                batches += 1
        except TruncatedBatchError as exc:
            reason = f"the file ends inside the batch at byte {valid}: {exc}"
            torn_tail = True
        except CorruptRecordError as exc:
            reason = f"the batch at byte {valid} is invalid: {exc}"
        truncated = size_before - valid
        if truncated:
            os.ftruncate(self._fd, valid)
            self._unflushed = True
        self.size = valid
        self._verified, self._verified_next = valid, self.next_offset
        return SegmentRecovery(valid, truncated, self.next_offset, batches, reason, torn_tail)

    def rebuild_indexes(self, reason: str) -> None:
        """Recompute the offset, time and transaction indexes from the batch headers (the log itself is
        trusted, e.g. flushed), logging `reason`. The new indexes are built aside and swapped in at the
        end, so a concurrent reader of `size`, `next_offset` or `batches()` (the cleaner) never sees a
        half-built state."""
        logger.warning("rebuilding the indexes of segment %s: %s", self.log_path, reason)
        shadow = Segment(self.dir, self.base_offset, self._config, self.created_ms, self.suffix)
        for position, batch in self._walk(0, self.size):
            shadow._index_batches(
                position, [BatchInfo(batch.size_in_bytes, batch.last_offset, batch.max_timestamp)]
            )
        shadow.add_final_time_index_entry()
        try:
            txn_index = TransactionIndex.load(self.path(TXN_INDEX_SUFFIX))
        except CorruptIndexError:
            txn_index = TransactionIndex(self.path(TXN_INDEX_SUFFIX))
            txn_index.clear()
        with self._lock:
            self._oi = shadow._oi
            self._ti = shadow._ti
            self.txn_index = txn_index
            self.next_offset = shadow.next_offset
            self.max_timestamp = shadow.max_timestamp
            self.offset_of_max_timestamp = shadow.offset_of_max_timestamp
            self.rolling_timestamp = shadow.rolling_timestamp
            self._bytes_since_index = shadow._bytes_since_index
            self._unflushed = True

    # ----- durability and lifecycle -----

    def seal(self) -> None:
        """Called when the segment stops being active: add the final time-index entry (the segment's max
        timestamp), then fsync log and indexes."""
        self.add_final_time_index_entry()
        self.flush()

    def add_final_time_index_entry(self) -> None:
        """Index the segment's largest timestamp (Kafka writes this entry when a segment becomes inactive).
        An index not loaded yet already ends with it unless a later batch raised the maximum."""
        if self.max_timestamp == NO_TIMESTAMP:
            return
        if self._ti is None and self.max_timestamp <= self._indexed_max_timestamp:
            return
        self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)

    def flush(self) -> None:
        """fsync the `.log` file and write + fsync the indexes. A no-op on a closed segment."""
        with self._lock:
            if self._closed:
                return
            if self._unflushed:
                os.fsync(self._fd)
                self._unflushed = False
            self._persist_indexes()

    def sync_data(self) -> None:
        """fdatasync the `.log` file (its bytes and size, not the indexes); a no-op on a closed segment.
        Appends do not take the segment lock, so they go on during the sync."""
        with self._lock:
            if not self._closed:
                os.fdatasync(self._fd)

    def close(self) -> None:
        """Write and fsync the indexes (with the final time-index entry), then release the descriptor,
        which is released even when a write fails (a full disk): the error is raised after."""
        with self._lock:
            if self._closed:
                return
            try:
                self.add_final_time_index_entry()
                if self._unflushed:
                    os.fsync(self._fd)
                self._persist_indexes()
            finally:
                self._close_fd()

    def _persist_indexes(self) -> None:
        """Write and fsync what changed; indexes never loaded have not changed."""
        if self._oi is not None:
            self._oi.persist(sync=True)
        if self._ti is not None:
            self._ti.persist(sync=True)
        self.txn_index.persist(sync=True)

    def rename(self, suffix: str) -> None:
        """Rename every file of the segment to carry state `suffix` (`""` = live). Open descriptors stay
        valid, so in-flight reads are unaffected. Serialised with `flush` (which may run on the roll-flush
        thread), so index bytes never go to a file name that already belongs to another segment."""
        with self._lock:
            for kind in FILE_KINDS:
                old = self.path(kind)
                new = self.dir / file_name(self.base_offset, kind, suffix)
                if kind == LOG_SUFFIX or old.exists():
                    os.replace(old, new)
            self.suffix = suffix
            if self._oi is not None:
                self._oi.path = self.path(INDEX_SUFFIX)
            if self._ti is not None:
                self._ti.path = self.path(TIME_INDEX_SUFFIX)
            self.txn_index.path = self.path(TXN_INDEX_SUFFIX)

    def _release_fd(self) -> None:
        """Release the descriptor of a segment that failed to open, leaving its files alone."""
        with self._lock:
            self._close_fd()

    def _close_fd(self) -> None:
        with self._fd_lock:
            if not self._closed:
                self._closed = True
                os.close(self._fd)

    def delete_files(self) -> None:
        """Close the segment without writing anything and unlink all of its files."""
        with self._lock:
            self._close_fd()
        for kind in FILE_KINDS:
            self.path(kind).unlink(missing_ok=True)
