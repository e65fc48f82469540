"""Exceptions raised by strom.lsm: one class per kind of failure, each message naming the input and the
limit."""

from __future__ import annotations


class LSMError(Exception):
    """Base class of every error strom.lsm raises on purpose."""


class CorruptionError(LSMError):
    """Stored bytes failed a checksum or a format check; the damaged data is never returned as a value."""


class NotADatabaseError(LSMError):
    """The path exists but is not a strom.lsm database; nothing in it was modified."""


class IncompatibleVersionError(LSMError):
    """The database was written by a format version this code cannot read; nothing was modified."""


class DatabaseLockedError(LSMError):
    """Another process (or another open DB object) holds the database's LOCK file."""


class DatabaseClosedError(LSMError):
    """An operation was attempted on a closed DB, snapshot or iterator."""


class BackgroundError(LSMError):
    """A background flush or compaction failed; the DB refuses writes until it is reopened.

    The original exception is chained as ``__cause__``. Reopening recovers from the WAL and the MANIFEST.
    """


class InvalidOptionError(LSMError, ValueError):
    """An option passed to ``DB.open`` is unknown or out of range."""
