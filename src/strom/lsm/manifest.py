"""MANIFEST and CURRENT: the durable record of which table files are live and where the WAL starts.

The MANIFEST uses the WAL's framing (:mod:`strom.lsm.wal`). Its first record describes the whole database
(format marker, counters, every live file); each later record is a VersionEdit. ``CURRENT`` names the live
MANIFEST and is replaced atomically: write ``CURRENT.tmp``, fsync it, rename it over ``CURRENT``, fsync the
directory. A torn final MANIFEST record was never acknowledged and is ignored.

Edit fields (tag varint, then the field): 1 format (``b"strom.lsm"`` length-prefixed, version varint),
2 log number, 3 next file number, 4 last sequence, 6 deleted file (level, number), 7 new file (level, number,
size, entries, tombstones, min seq, max seq, smallest key, largest key), all integers as varints and keys
length-prefixed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .errors import CorruptionError, IncompatibleVersionError, NotADatabaseError
from .filename import CURRENT, CURRENT_TEMP, FileType, manifest_name, parse
from .table.coding import decode_bytes, decode_varint, encode_bytes, varint
from .version import FileMeta
from .wal import LogDamage, LogReader, LogWriter

FORMAT_MAGIC = b"strom.lsm"
FORMAT_VERSION = 1

TAG_FORMAT, TAG_LOG, TAG_NEXT_FILE, TAG_LAST_SEQ, TAG_DELETED, TAG_NEW = 1, 2, 3, 4, 6, 7


def fsync_dir(path: str) -> None:
    """fsync a directory so that entries created, renamed or removed in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class VersionEdit:
    """A change to the live state; every field is optional."""

    log_number: int | None = None
    next_file: int | None = None
    last_seq: int | None = None
    deleted: list[tuple[int, int]] = field(default_factory=list)
    added: list[tuple[int, FileMeta]] = field(default_factory=list)
    format_marker: bool = False

    def encode(self) -> bytes:
        out = bytearray()
        if self.format_marker:
            out += varint(TAG_FORMAT) + encode_bytes(FORMAT_MAGIC) + varint(FORMAT_VERSION)
        for tag, value in (
            (TAG_LOG, self.log_number),
            (TAG_NEXT_FILE, self.next_file),
            (TAG_LAST_SEQ, self.last_seq),
        ):
            if value is not None:
                out += varint(tag) + varint(value)
        for level, number in self.deleted:
            out += varint(TAG_DELETED) + varint(level) + varint(number)
        for level, f in self.added:
            out += varint(TAG_NEW) + varint(level) + varint(f.number) + varint(f.size) + varint(f.entries)
            out += varint(f.tombstones) + varint(f.min_seq) + varint(f.max_seq)
            out += encode_bytes(f.smallest) + encode_bytes(f.largest)
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> VersionEdit:
        edit = cls()
        pos = 0
        while pos < len(data):
            tag, pos = decode_varint(data, pos)
            if tag == TAG_FORMAT:
                magic, pos = decode_bytes(data, pos)
                version, pos = decode_varint(data, pos)
                if magic != FORMAT_MAGIC:
                    raise NotADatabaseError(f"MANIFEST format marker is {magic!r}, not {FORMAT_MAGIC!r}")
                if version != FORMAT_VERSION:
                    raise IncompatibleVersionError(
                        f"database format version {version}; "
                        f"this strom.lsm reads version {FORMAT_VERSION} only"
                    )
                edit.format_marker = True
            elif tag in (TAG_LOG, TAG_NEXT_FILE, TAG_LAST_SEQ):
                value, pos = decode_varint(data, pos)
                if tag == TAG_LOG:
                    edit.log_number = value
                elif tag == TAG_NEXT_FILE:
                    edit.next_file = value
                else:
                    edit.last_seq = value
            elif tag == TAG_DELETED:
                level, pos = decode_varint(data, pos)
                number, pos = decode_varint(data, pos)
                edit.deleted.append((level, number))
            elif tag == TAG_NEW:
                ints = []
                for _ in range(7):
                    v, pos = decode_varint(data, pos)
                    ints.append(v)
                smallest, pos = decode_bytes(data, pos)
                largest, pos = decode_bytes(data, pos)
                level, number, size, entries, tombstones, min_seq, max_seq = ints
                edit.added.append(
                    (level, FileMeta(number, size, entries, tombstones, smallest, largest, min_seq, max_seq))
                )
            else:
                raise CorruptionError(f"unknown MANIFEST edit tag {tag}")
        return edit


def read_current(path: str) -> int | None:
    """Number of the MANIFEST that ``CURRENT`` names, or None if there is no CURRENT file."""
    try:
        with open(os.path.join(path, CURRENT), "rb") as f:
            raw = f.read(256)
    except FileNotFoundError:
        return None
    text = raw.decode("latin-1")
    named = parse(text[:-1]) if text.endswith("\n") else None
    if named is None or named[0] is not FileType.MANIFEST:
        raise NotADatabaseError(f"{path}: CURRENT does not name a MANIFEST ({raw[:40]!r})")
    return named[1]


def read_manifest(path: str, number: int) -> tuple[list[VersionEdit], LogDamage | None]:
    """The edits of MANIFEST ``number`` of the database at ``path``, up to a torn final record (returned as
    the damage, None if there is none: an edit is acknowledged only once synced, so a torn one never was).
    Reads only; modifies nothing. Raises NotADatabaseError / IncompatibleVersionError / CorruptionError."""
    mpath = os.path.join(path, manifest_name(number))
    if not os.path.exists(mpath):
        raise CorruptionError(f"{path}: CURRENT names {manifest_name(number)}, which does not exist")
    reader = LogReader(mpath)
    edits: list[VersionEdit] = []
    for record in reader:
        edit = VersionEdit.decode(record)
        if not edits and not edit.format_marker:
            raise NotADatabaseError(f"{mpath}: first record has no strom.lsm format marker")
        edits.append(edit)
    if not edits:
        raise CorruptionError(f"{mpath}: no readable record ({reader.error or 'empty file'})")
    return edits, reader.damage[0] if reader.damage else None


class ManifestWriter:
    """The live MANIFEST. Invariant: every edit returned from ``log`` is fsynced before the caller publishes
    it."""

    def __init__(self, path: str, number: int, first: VersionEdit) -> None:
        """Start MANIFEST ``number`` holding ``first`` (the whole state, with the format marker) and
        atomically point CURRENT at it."""
        self.number = number
        self.path = os.path.join(path, manifest_name(number))
        if os.path.exists(self.path):
            os.unlink(self.path)
        self._writer = LogWriter(self.path)
        self._writer.add_record(first.encode())
        self._writer.sync()
        tmp = os.path.join(path, CURRENT_TEMP)
        with open(tmp, "wb") as f:
            f.write(f"{manifest_name(number)}\n".encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(path, CURRENT))
        fsync_dir(path)

    @property
    def size(self) -> int:
        return self._writer.written

    def log(self, edit: VersionEdit) -> int:
        """Append ``edit`` durably; returns the bytes written."""
        data = edit.encode()
        before = self._writer.written
        self._writer.add_record(data)
        self._writer.sync()
        return self._writer.written - before

    def close(self) -> None:
        self._writer.close()
