"""VersionSet: the one owner of the database state that outlives a memtable (LevelDB's VersionSet).

It holds the file-number counter, the last sequence number given to a write, the sequence number the tables
reach, the number of the oldest WAL still needed, the current Version and the live MANIFEST. Nothing else
keeps a copy: the DB asks it for file and sequence numbers and hands it edits, and the MANIFEST's first record
is written from it. Recovery (replaying a MANIFEST) and a live change go through the same fold of an edit into
the state, so what a reopened database sees is what the running one saw.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable

from .filename import log_name, manifest_name
from .manifest import ManifestWriter, VersionEdit, read_manifest
from .table.sstable import Table
from .version import FileMeta, Version

logger = logging.getLogger(__name__)

# The live MANIFEST is replaced by one holding only the current state once it grows past this.
MANIFEST_ROLL_SIZE = 4 * 1024 * 1024

# number -> (level, file)
_Files = dict[int, tuple[int, FileMeta]]


class VersionSet:
    """The counters, the current Version and the live MANIFEST of one open database.

    Invariants: ``current`` is the Version that the durable MANIFEST describes (an edit is fsynced before the
    Version it yields becomes ``current``); ``next_file`` is above every file number in the directory or in
    the MANIFEST, so a number is never reused; ``table_sequence`` <= ``last_sequence``. Failure survived: a
    crash while a new MANIFEST is written leaves CURRENT naming the previous, complete one.

    Locking is the DB's: ``last_sequence`` is read and advanced under its write lock; everything else is
    called with its ``_cv`` held.
    """

    def __init__(
        self,
        path: str,
        num_levels: int,
        skip_last_filter: bool,
        paranoid_checks: bool,
        open_table: Callable[[int], Table],
    ) -> None:
        """An empty database at ``path``; :meth:`recover` loads an existing one. ``open_table`` opens a
        table file by number (the DB's, so tables share its block cache and read counter)."""
        self.path = path
        self._num_levels = num_levels
        self._skip_last_filter = skip_last_filter
        self._paranoid_checks = paranoid_checks
        self._open_table = open_table
        self.next_file = 2
        self.last_sequence = 0  # given to the newest write (it may still be only in a memtable)
        self.table_sequence = 0  # the newest write in a table (MANIFEST tag "last sequence")
        self.log_number = 0  # WALs numbered below it are fully flushed
        self.manifest_number = 0
        self.manifest_bytes_written = 0
        self.current = self._version({})
        self._manifest: ManifestWriter | None = None

    def recover(self, manifest_number: int) -> None:
        """Load the state MANIFEST ``manifest_number`` describes and open every table it lists (a missing or
        corrupt one raises CorruptionError)."""
        files: _Files = {}
        edits, torn = read_manifest(self.path, manifest_number)
        name = manifest_name(manifest_number)
        if torn is not None:
            logger.warning(
                "%s: ignored a torn final record (%s at offset %d, %d bytes): it was never acknowledged",
                os.path.join(self.path, name),
                torn.reason,
                torn.offset,
                torn.length,
            )
        for edit in edits:
            self._apply(edit, files)
        for _level, meta in files.values():
            meta.table = self._open_table(meta.number)
        self.manifest_number = manifest_number
        self.last_sequence = self.table_sequence
        self.current = self._version(files)
        self.current.check_invariants()
        logger.info(
            "replayed %s: %d edits, %d tables, last sequence %d, WALs from %s on",
            os.path.join(self.path, name),
            len(edits),
            len(files),
            self.table_sequence,
            log_name(self.log_number) if self.log_number else "none",
        )

    def mark_file_number_used(self, number: int) -> None:
        """Keep the counter above ``number`` (a file found in the directory, referenced or not)."""
        self.next_file = max(self.next_file, number + 1)

    def new_file_number(self) -> int:
        number = self.next_file
        self.next_file += 1
        return number

    def log_and_apply(self, edit: VersionEdit) -> Version:
        """Make ``edit`` durable in the MANIFEST, then make the Version it yields ``current`` and return it.

        Without a live MANIFEST (at open), or when the live one has grown past ``MANIFEST_ROLL_SIZE``, a new
        MANIFEST holding the whole resulting state is started, CURRENT switched to it, and the old one
        deleted.
        """
        edit.next_file = self.next_file
        files = {f.number: (level, f) for level, f in self.current.files()}
        self._apply(edit, files)
        version = self._version(files)
        if self._paranoid_checks:
            version.check_invariants()
        if self._manifest is None or self._manifest.size > MANIFEST_ROLL_SIZE:
            self._start_manifest(version)
        else:
            self.manifest_bytes_written += self._manifest.log(edit)
        self.current = version
        return version

    def close(self) -> None:
        if self._manifest is not None:
            self._manifest.close()

    def _apply(self, edit: VersionEdit, files: _Files) -> None:
        """Fold ``edit`` into the counters and into ``files``."""
        if edit.log_number is not None:
            self.log_number = edit.log_number
        if edit.next_file is not None:
            self.next_file = edit.next_file
        if edit.last_seq is not None:
            self.table_sequence = edit.last_seq
        for _level, number in edit.deleted:
            files.pop(number, None)
        for level, f in edit.added:
            files[f.number] = (level, f)

    def _version(self, files: _Files) -> Version:
        levels: list[list[FileMeta]] = [[] for _ in range(self._num_levels)]
        for level, f in files.values():
            while level >= len(levels):
                levels.append([])
            levels[level].append(f)
        return Version(levels, self._skip_last_filter)

    def _start_manifest(self, version: Version) -> None:
        old = self._manifest
        self.manifest_number = self.new_file_number()
        first = VersionEdit(
            log_number=self.log_number,
            next_file=self.next_file,
            last_seq=self.table_sequence,
            added=sorted(version.files(), key=lambda lf: lf[1].number),
            format_marker=True,
        )
        self._manifest = ManifestWriter(self.path, self.manifest_number, first)
        self.manifest_bytes_written += self._manifest.size
        if old is not None:
            old.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.path, manifest_name(old.number)))
