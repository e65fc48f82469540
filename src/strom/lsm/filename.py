"""Names of the files in a database directory: every name strom.lsm makes, and the one parser that reads them.

The table of names is docs/lsm-format.md, "Files in a database directory". Numbered files (WALs, tables,
MANIFESTs) share one counter, so a number names one file for the life of the database; recovery reads the
numbers back from the directory to resume the counter past every file present, and deletes what the live
MANIFEST does not reference by asking :func:`parse` what each name is.
"""

from __future__ import annotations

import enum
import re

LOCK = "LOCK"
CURRENT = "CURRENT"
CURRENT_TEMP = "CURRENT.tmp"
TEMP_SUFFIX = ".tmp"


class FileType(enum.Enum):
    """What a file in a database directory is."""

    LOG = "log"
    TABLE = "table"
    TEMP_TABLE = "temp table"
    MANIFEST = "manifest"


_NUMBERED = re.compile(r"(\d{6,})\.(log|sst|sst\.\d+\.tmp)\Z|MANIFEST-(\d{6,})\Z")
_TYPE_OF_SUFFIX = {"log": FileType.LOG, "sst": FileType.TABLE}


def log_name(number: int) -> str:
    """The write-ahead log of the memtable started with file number ``number``."""
    return f"{number:06d}.log"


def table_name(number: int) -> str:
    """A finished, immutable table."""
    return f"{number:06d}.sst"


def temp_table_name(number: int, pid: int) -> str:
    """A table being written by process ``pid``: unique to that process, so an orphaned worker of a crashed
    parent can never write over a live name (see :mod:`strom.lsm.jobs`)."""
    return f"{table_name(number)}.{pid}{TEMP_SUFFIX}"


def manifest_name(number: int) -> str:
    """A MANIFEST (the version history); ``CURRENT`` names the live one."""
    return f"MANIFEST-{number:06d}"


def parse(name: str) -> tuple[FileType, int] | None:
    """``(type, number)`` of a numbered file strom.lsm makes, or None for any other name (LOCK, CURRENT,
    CURRENT.tmp and files that are not ours)."""
    m = _NUMBERED.match(name)
    if m is None:
        return None
    number, suffix, manifest = m.groups()
    if manifest is not None:
        return FileType.MANIFEST, int(manifest)
    return _TYPE_OF_SUFFIX.get(suffix, FileType.TEMP_TABLE), int(number)
