"""strom.lsm: an embedded, ordered, crash-safe key-value store built as an LSM tree, in pure Python.

    from strom.lsm import DB, WriteBatch

    with DB.open("/tmp/db") as db:
        db.put(b"k", b"v")
        db.write(WriteBatch().put(b"a", b"1").delete(b"k"))
        for key, value in db.scan(b"a", b"z"):
            ...

On-disk formats and crash-safety rules: docs/lsm-format.md.
"""

from .batch import WriteBatch
from .db import DB, Snapshot, Statistics
from .errors import (
    BackgroundError,
    CorruptionError,
    DatabaseClosedError,
    DatabaseLockedError,
    IncompatibleVersionError,
    InvalidOptionError,
    LSMError,
    NotADatabaseError,
)
from .options import Options
from .recovery import RecoveryReport, WalDamage

__all__ = [
    "DB",
    "BackgroundError",
    "CorruptionError",
    "DatabaseClosedError",
    "DatabaseLockedError",
    "IncompatibleVersionError",
    "InvalidOptionError",
    "LSMError",
    "NotADatabaseError",
    "Options",
    "RecoveryReport",
    "Snapshot",
    "Statistics",
    "WalDamage",
    "WriteBatch",
]
