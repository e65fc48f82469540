"""Write-ahead log and MANIFEST framing: LevelDB's log format (32 KiB blocks, 7-byte checksummed headers).

Layout (docs/lsm-format.md, "Log framing"): the file is a sequence of 32 KiB blocks. Each physical record is
``masked crc32c (u32 LE) | length (u16 LE) | type (u8) | payload``; the CRC covers the type byte and the
payload. A record never starts in the last 6 bytes of a block (they are zero-filled); a payload that does not
fit in the rest of the block is split into FIRST / MIDDLE... / LAST fragments. A reader finds the next record
after damage by its checksummed header (see ``LogReader``); what damage means at open is decided by the WAL
recovery mode (:mod:`strom.lsm.recovery`).
"""

from __future__ import annotations

import os
import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from .table.checksum import crc32c, mask

BLOCK_SIZE = 32768
HEADER_SIZE = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4

_HEADER = struct.Struct("<IHB")
_CRC_OF_TYPE = {t: crc32c(bytes((t,))) for t in (FULL, FIRST, MIDDLE, LAST)}
_CRC_FULL = _CRC_OF_TYPE[FULL]
_ZEROS = bytes(HEADER_SIZE)
# The type byte of a record a reader may resume at (FULL or FIRST), the last byte of its header.
_START_TYPES = re.compile(b"[\\x01\\x02]")


def _write_all(fd: int, data: bytes, written: int | None = None) -> None:
    """``os.write`` until every byte is handed to the OS (a regular file may accept a short write)."""
    if written is None:
        written = os.write(fd, data)
    while written < len(data):
        written += os.write(fd, memoryview(data)[written:])


class LogWriter:
    """Appends framed records to one log file.

    Invariants: ``written`` is the file size handed to the OS; ``synced`` <= ``written`` is the prefix known
    to be on stable storage. Each ``add_record`` reaches the OS before it returns, so a killed process loses
    nothing that was acknowledged; ``sync_to`` gives durability against power loss, and concurrent callers
    share one ``fdatasync`` (group commit). A failed ``fdatasync`` raises and the writer refuses further use,
    because Linux may have dropped the dirty pages (fsyncgate): the owner must treat it as fatal.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        size = os.fstat(self._fd).st_size
        self.written = size
        self.synced = size
        self._block_off = size % BLOCK_SIZE
        self._sync_lock = threading.Lock()
        self._failed: BaseException | None = None

    def add_record(self, payload: bytes) -> int:
        """Append one logical record; return the file offset just past it. Callers serialise appends."""
        n = len(payload)
        off = self._block_off
        if off + HEADER_SIZE + n <= BLOCK_SIZE:
            data = _HEADER.pack(mask(crc32c(payload, _CRC_FULL)), n, FULL) + payload
            w = os.write(self._fd, data)
            if w != len(data):
                _write_all(self._fd, data, w)
            off += HEADER_SIZE + n
            self._block_off = off if off < BLOCK_SIZE else 0
            self.written += HEADER_SIZE + n
            return self.written
        return self._add_fragmented(payload)

    def _add_fragmented(self, payload: bytes) -> int:
        out = bytearray()
        off = self._block_off
        pos = 0
        n = len(payload)
        first = True
        while True:
            left = BLOCK_SIZE - off
            if left < HEADER_SIZE:
                out += _ZEROS[:left]
                off = 0
                left = BLOCK_SIZE
            avail = left - HEADER_SIZE
            frag = payload[pos : pos + avail]
            end = pos + len(frag) >= n
            if first and end:
                rtype = FULL
            elif first:
                rtype = FIRST
            elif end:
                rtype = LAST
            else:
                rtype = MIDDLE
            out += _HEADER.pack(mask(crc32c(frag, _CRC_OF_TYPE[rtype])), len(frag), rtype)
            out += frag
            off += HEADER_SIZE + len(frag)
            pos += len(frag)
            first = False
            if end:
                break
        _write_all(self._fd, bytes(out))
        self._block_off = off % BLOCK_SIZE
        self.written += len(out)
        return self.written

    def sync_to(self, offset: int) -> None:
        """Make the file durable at least up to ``offset``; one fdatasync serves every waiting caller."""
        if self.synced >= offset:
            return
        with self._sync_lock:
            if self.synced >= offset:
                return
            if self._failed is not None:
                raise OSError(f"log {self.path} is unusable after a failed fdatasync") from self._failed
            target = self.written
            try:
                os.fdatasync(self._fd)
            except OSError as exc:
                self._failed = exc
                raise
            self.synced = target

    def sync(self) -> None:
        """fdatasync everything written so far."""
        self.sync_to(self.written)

    def close(self, sync: bool = True) -> None:
        """Close the file, first syncing it when ``sync`` (so waiters in ``sync_to`` are satisfied)."""
        with self._sync_lock:
            if self._fd < 0:
                return
            try:
                if sync and self.synced < self.written:
                    os.fdatasync(self._fd)
                    self.synced = self.written
            finally:
                os.close(self._fd)
                self._fd = -1


@dataclass(frozen=True)
class LogDamage:
    """``length`` bytes from ``offset`` of a log that yielded no record, and why."""

    offset: int
    length: int
    reason: str


class LogReader:
    """Reads the records of one log file, stopping at the first torn or corrupt record unless ``resync``.

    A torn tail and mid-file corruption look the same to one record, so what damage means is the caller's
    decision (the WAL recovery modes in :mod:`strom.lsm.recovery`). With ``resync`` the reader skips from
    a damaged record to the next intact FULL or FIRST record wherever it starts (not only at the next block
    boundary, so an intact record that shares a block with the damage is kept) and goes on; without it
    reading ends there. ``damage`` lists every range that yielded nothing, ``error`` is the first one's
    reason (None when the file is clean), ``record_offset`` is where the record last yielded starts and
    ``valid_bytes`` where it ends.
    """

    def __init__(self, path: str | os.PathLike[str], resync: bool = False) -> None:
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            self._data = f.read()
        self.size = len(self._data)
        self._resync = resync
        self.damage: list[LogDamage] = []
        self.error: str | None = None
        self.record_offset = 0
        self.valid_bytes = 0

    def _damaged(self, offset: int, reason: str, searched_from: int) -> int | None:
        """Note damage starting at ``offset``; return where reading resumes (None: it ends)."""
        if self.error is None:
            self.error = f"{reason} at offset {offset}"
        resume = self._next_record(searched_from) if self._resync else None
        self.damage.append(LogDamage(offset, (self.size if resume is None else resume) - offset, reason))
        return resume

    def _next_record(self, start: int) -> int | None:
        """Offset of the first intact FULL or FIRST physical record at or after ``start``."""
        data = self._data
        size = self.size
        for m in _START_TYPES.finditer(data, start + HEADER_SIZE - 1):
            pos = m.start() - (HEADER_SIZE - 1)
            left = BLOCK_SIZE - pos % BLOCK_SIZE
            if left < HEADER_SIZE:
                continue
            crc, length, rtype = _HEADER.unpack_from(data, pos)
            end = pos + HEADER_SIZE + length
            if (
                length <= left - HEADER_SIZE
                and end <= size
                and mask(crc32c(data[pos + HEADER_SIZE : end], _CRC_OF_TYPE[rtype])) == crc
            ):
                return pos
        return None

    def __iter__(self) -> Iterator[bytes]:
        data = self._data
        size = self.size
        pos: int | None = 0
        pending: list[bytes] = []
        record_start = 0
        while pos is not None and pos < size:
            left = BLOCK_SIZE - pos % BLOCK_SIZE
            if left < HEADER_SIZE:
                pos += left
                continue
            start = record_start if pending else pos
            if pos + HEADER_SIZE > size:
                pos = self._damaged(start, "truncated record header", size)
                pending = []
                continue
            crc, length, rtype = _HEADER.unpack_from(data, pos)
            if rtype not in _CRC_OF_TYPE:
                if rtype == 0 and crc == 0 and length == 0 and not any(data[pos:]):
                    pos = self._damaged(start, "zero-filled tail", size)
                else:
                    pos = self._damaged(start, f"bad record type {rtype}", pos + 1)
                pending = []
                continue
            end = pos + HEADER_SIZE + length
            if end > size or length > left - HEADER_SIZE:
                pos = self._damaged(
                    start, f"record of {length} bytes runs past its block or the file", pos + 1
                )
                pending = []
                continue
            frag = data[pos + HEADER_SIZE : end]
            if mask(crc32c(frag, _CRC_OF_TYPE[rtype])) != crc:
                pos = self._damaged(start, "checksum mismatch in record", pos + 1)
                pending = []
                continue
            if rtype in (FULL, FIRST):
                if pending:
                    # The interrupted record is lost; the one starting here is intact.
                    self._damaged(record_start, "fragmented record interrupted", pos)
                    pending = []
                    if not self._resync:
                        return
                record_start = pos
            elif not pending:
                pos = self._damaged(pos, "fragment without a FIRST record", pos + 1)
                continue
            pos = end
            if rtype == FULL:
                self.record_offset = record_start
                self.valid_bytes = pos
                yield frag
            elif rtype == LAST:
                pending.append(frag)
                self.record_offset = record_start
                self.valid_bytes = pos
                yield b"".join(pending)
                pending = []
            else:
                pending.append(frag)
        if pending:
            self._damaged(record_start, "incomplete fragmented record", size)
