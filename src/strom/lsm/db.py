"""DB: the public key-value store. Writes go WAL -> memtable; full memtables are flushed to level-0 tables and
compacted in the background; reads merge the memtables with the current Version.

Opening is four steps, as LevelDB's ``DB::Open``: lock the directory, recover (the MANIFEST, then the WALs
it does not cover), start a new WAL and MANIFEST, delete the files nothing references.

Threads: callers (any number), one flush thread, one compaction thread. Writers are serialised by
``_write_lock`` (which also guards the VersionSet's last sequence); gets take no lock (they read ``_state``,
a tuple swapped atomically). ``_cv`` guards the state tuple, the VersionSet (file numbers, the MANIFEST) and
background bookkeeping; it is never held while merging or writing table data.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from .batch import WriteBatch, check_bytes, encode_batch, encode_put
from .compaction import Compaction, CompactionPolicy, full_compaction, pick
from .errors import (
    BackgroundError,
    CorruptionError,
    DatabaseClosedError,
    DatabaseLockedError,
    LSMError,
    NotADatabaseError,
)
from .filename import CURRENT_TEMP, LOCK, TEMP_SUFFIX, FileType, log_name, parse, table_name, temp_table_name
from .iterator import merged_scan
from .jobs import JOBS
from .manifest import VersionEdit, fsync_dir, read_current, read_manifest
from .memtable import MemTable
from .options import Options
from .recovery import RecoveryReport, replay_logs
from .table.block import COMPRESSION_BY_NAME
from .table.cache import BlockCache
from .table.sstable import MISSING, Table, TableInfo, TableSettings
from .version import FileMeta, Version
from .version_set import VersionSet
from .wal import LogWriter
from .worker import WorkerDiedError, worker

logger = logging.getLogger(__name__)

_SNAPSHOT_COPY_LIMIT = 4096  # a snapshot copies a memtable this small instead of sealing it
_WAIT_SLICE = 1.0  # seconds between re-checks of a background error while waiting

# (live memtable, sealed memtables newest first, version)
_State = tuple[MemTable, tuple[MemTable, ...], Version]


@dataclass
class Statistics:
    """Counters since the DB was opened. ``write_amplification`` = bytes written to disk / user bytes
    written."""

    user_bytes_written: int
    wal_bytes_written: int
    flush_bytes_written: int
    compaction_bytes_written: int
    manifest_bytes_written: int
    bytes_read: int
    compaction_bytes_read: int
    flushes: int
    compactions: int
    trivial_moves: int
    write_stalls: int
    stall_seconds: float
    block_cache_misses: int
    files_per_level: list[int]
    bytes_per_level: list[int]

    @property
    def bytes_written(self) -> int:
        return (
            self.wal_bytes_written
            + self.flush_bytes_written
            + self.compaction_bytes_written
            + self.manifest_bytes_written
        )

    @property
    def write_amplification(self) -> float:
        return self.bytes_written / self.user_bytes_written if self.user_bytes_written else 0.0


def _check_range(start: object, end: object) -> tuple[bytes | None, bytes | None]:
    s = None if start is None else check_bytes(start, "start")
    e = None if end is None else check_bytes(end, "end")
    return s, e


def _prefix_end(prefix: bytes) -> bytes | None:
    """Smallest key greater than every key starting with ``prefix`` (None if there is none)."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return None
    p[-1] += 1
    return bytes(p)


def _validate_location(path: str) -> bool:
    """Check ``path`` without modifying it; return True if a database exists there."""
    if not os.path.exists(path):
        return False
    if not os.path.isdir(path):
        raise NotADatabaseError(f"{path} exists and is not a directory")
    number = read_current(path)
    if number is None:
        leftovers = [n for n in os.listdir(path) if n not in (LOCK, CURRENT_TEMP) and not _is_manifest(n)]
        if leftovers:
            raise NotADatabaseError(
                f"{path} is not a strom.lsm database (no CURRENT file; it holds {sorted(leftovers)[:5]})"
            )
        return False
    read_manifest(path, number)  # raises NotADatabaseError / IncompatibleVersionError / CorruptionError
    return True


def _is_manifest(name: str) -> bool:
    parsed = parse(name)
    return parsed is not None and parsed[0] is FileType.MANIFEST


class _Lock:
    """The LOCK file, held with a POSIX record lock (``fcntl(F_SETLK)``) for as long as the DB is open.

    A record lock belongs to the process, not to the open file: a child forked by this process never holds
    it, so a restart after kill -9 is never refused because a child the dead owner forked (the worker
    between subprocess's fork and exec, or a user's fork) still lives, as it was with ``flock``, whose lock
    every copy of the descriptor shares. Record locks do not exclude a second opener in the same process,
    so the process-wide ``_HELD`` set does, as LevelDB's and RocksDB's lock tables do. The kernel drops the
    lock when this process closes *any* descriptor of the file, so nothing else in strom.lsm opens LOCK.
    """

    _HELD: set[tuple[int, int]] = set()
    _HELD_LOCK = threading.Lock()

    def __init__(self, path: str) -> None:
        fd = os.open(os.path.join(path, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        st = os.fstat(fd)
        self._key = (st.st_dev, st.st_ino)
        with self._HELD_LOCK:
            try:
                if self._key in self._HELD:
                    raise DatabaseLockedError(f"{path} is already open in this process (another DB object)")
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno not in (errno.EACCES, errno.EAGAIN):
                        raise
                    raise DatabaseLockedError(f"{path} is locked by another process") from None
            except BaseException:
                os.close(fd)
                raise
            self._HELD.add(self._key)
        self._fd = fd

    def release(self) -> None:
        with self._HELD_LOCK:
            if self._fd >= 0:
                os.close(self._fd)  # closing the descriptor drops the record lock
                self._fd = -1
                self._HELD.discard(self._key)


class DB:
    """An ordered, durable key-value store (bytes -> bytes) built as an LSM tree.

    Invariants kept: a write is in the WAL (handed to the OS; fsynced in ``sync`` mode) before it is applied
    and acknowledged; a batch is applied wholly or not at all, in the WAL and after recovery; a table is
    fsynced and its MANIFEST edit is fsynced before any reader sees it, and a WAL or table file is deleted
    only after a synced MANIFEST edit no longer needs it; levels >= 1 never overlap. Failures survived: kill
    -9 at any point (recovery replays the WAL and drops a torn tail), a torn MANIFEST tail, a second opener
    (DatabaseLockedError). Damage inside a WAL is handled as ``wal_recovery_mode`` says and never dropped
    silently: ``recovery`` reports what replay did. A corrupt table block raises CorruptionError, never a
    wrong value.
    """

    recovery: RecoveryReport

    def __init__(self, path: str, options: Options) -> None:
        """Use :meth:`DB.open`."""
        self.path = path
        self.options = options
        self._closed = True
        exists = _validate_location(path)
        if not exists:
            if not options.create_if_missing:
                raise NotADatabaseError(f"{path} does not hold a database and create_if_missing is False")
            os.makedirs(path, exist_ok=True)
        self._lock = _Lock(path)
        try:
            self._configure()
            self._recover_manifest(exists)
            self._start_log_and_manifest(self._recover_logs())
            self._delete_obsolete_files()
            self._start_background()
        except BaseException:
            self._lock.release()
            raise

    # ------------------------------------------------------------------ opening and recovery

    @classmethod
    def open(cls, path: str | os.PathLike[str], **options: Any) -> DB:
        """Open (or create) the database at ``path``. See :class:`strom.lsm.options.Options` for the
        options."""
        return cls(os.fspath(path), Options.from_kwargs(options))

    def _configure(self) -> None:
        """Derive the settings from the options and create the locks and counters (touches no file)."""
        opts = self.options
        self._policy = CompactionPolicy(
            opts.compaction_style,
            opts.level0_file_trigger,
            opts.level1_size,
            opts.level_size_ratio,
            opts.num_levels,
            opts.tiered_size_ratio,
            opts.tiered_max_size_amplification,
        )
        self._compression = COMPRESSION_BY_NAME[opts.compression]
        self._memtable_size = opts.memtable_size
        self._sync = opts.wal == "sync"
        self._cache = BlockCache(opts.block_cache_size) if opts.block_cache_size else None
        self._read_stats = [0]
        self._counters = dict.fromkeys(
            (
                "flush_bytes_written",
                "compaction_bytes_written",
                "compaction_bytes_read",
                "flushes",
                "compactions",
                "trivial_moves",
                "write_stalls",
                "wal_bytes_closed",
                "user_bytes_flushed",
            ),
            0,
        )
        self._stall_seconds = 0.0
        self._write_lock = threading.Lock()
        self._cv = threading.Condition(threading.Lock())
        self._compaction_lock = threading.Lock()
        self._bg_error: BaseException | None = None
        self._closing = False
        self._pointers: dict[int, bytes] = {}

    def _recover_manifest(self, exists: bool) -> None:
        """Load the state the live MANIFEST describes (nothing for a new database) and resume the file-number
        counter past every numbered file in the directory, referenced or not."""
        opts = self.options
        versions = self._versions = VersionSet(
            self.path, opts.num_levels, opts.optimize_filters_for_hits, opts.paranoid_checks, self._open_table
        )
        if exists:
            number = read_current(self.path)
            assert number is not None
            versions.recover(number)
        for _, number in self._numbered_files():
            versions.mark_file_number_used(number)

    def _recover_logs(self) -> VersionEdit:
        """Replay the WALs the MANIFEST does not cover, as the WAL recovery mode allows (the outcome is
        ``self.recovery``), and write what they held as a level-0 table; the returned edit adds that table.
        A refusal raises before anything is written."""
        versions = self._versions
        logs = sorted(
            n for kind, n in self._numbered_files() if kind is FileType.LOG and n >= versions.log_number
        )
        edit = VersionEdit()
        opts = self.options
        recovered, self.recovery = replay_logs(
            self.path, logs, versions.last_sequence + 1, opts.wal_recovery_mode, opts.paranoid_checks
        )
        if recovered is not None:
            if recovered.data:
                flushed = self._write_memtables([recovered], in_thread=True)
                if flushed is not None:
                    edit.added.append((0, flushed))
                    logger.info(
                        "%s: wrote the %d keys recovered from the WALs as level-0 table %s",
                        self.path,
                        flushed.entries,
                        table_name(flushed.number),
                    )
            versions.last_sequence = max(versions.last_sequence, recovered.max_seq)
        return edit

    def _start_log_and_manifest(self, edit: VersionEdit) -> None:
        """Start the new WAL and memtable, then a new MANIFEST holding the whole state (``edit`` included)
        and switch CURRENT to it. Every recovered write is in a table by now, so it needs no older WAL."""
        versions = self._versions
        wal_number = versions.new_file_number() if self.options.wal != "off" else 0
        self._wal = LogWriter(os.path.join(self.path, log_name(wal_number))) if wal_number else None
        if self._wal is not None:
            fsync_dir(self.path)
        edit.log_number = wal_number
        edit.last_seq = versions.last_sequence
        self._mem = MemTable(wal_number, versions.last_sequence + 1)
        self._state: _State = (self._mem, (), versions.log_and_apply(edit))

    def _numbered_files(self) -> list[tuple[FileType, int]]:
        return [parsed for name in os.listdir(self.path) if (parsed := parse(name)) is not None]

    def _delete_obsolete_files(self) -> None:
        """Delete every file the new MANIFEST does not reference: flushed WALs, old MANIFESTs, tables a crash
        orphaned, and ``*.tmp`` files. Runs at open only, once the new MANIFEST is durable and one WAL is
        live."""
        versions = self._versions
        live_tables = {f.number for _, f in versions.current.files()}
        for name in sorted(os.listdir(self.path)):
            parsed = parse(name)
            if name.endswith(TEMP_SUFFIX):
                why = "a temporary file"
            elif parsed is None:
                continue
            elif parsed[0] is FileType.TABLE and parsed[1] not in live_tables:
                why = "an orphaned table"
            elif parsed[0] is FileType.LOG and parsed[1] != versions.log_number:
                why = "an obsolete WAL: its writes are in tables"
            elif parsed[0] is FileType.MANIFEST and parsed[1] != versions.manifest_number:
                why = "an old MANIFEST"
            else:
                continue
            os.unlink(os.path.join(self.path, name))
            logger.info("%s: deleted %s (%s)", self.path, name, why)

    def _start_background(self) -> None:
        self._closed = False
        self._flush_thread = threading.Thread(
            target=self._flush_loop, name=f"lsm-flush:{self.path}", daemon=True
        )
        self._compact_thread = threading.Thread(
            target=self._compact_loop, name=f"lsm-compact:{self.path}", daemon=True
        )
        self._flush_thread.start()
        self._compact_thread.start()
        with self._cv:
            self._cv.notify_all()

    def _table_path(self, number: int) -> str:
        return os.path.join(self.path, table_name(number))

    def _open_table(self, number: int) -> Table:
        path = self._table_path(number)
        if not os.path.exists(path):
            raise CorruptionError(f"{self.path}: the MANIFEST lists {table_name(number)}, which is missing")
        return Table(path, number, self._cache, self._read_stats)

    # ------------------------------------------------------------------ writes

    def _check_writable(self) -> None:
        if self._closed:
            raise DatabaseClosedError(f"database {self.path} is closed")
        if self._bg_error is not None:
            raise BackgroundError(
                f"database {self.path} stopped accepting writes after a background failure; reopen it"
            ) from self._bg_error

    def put(self, key: bytes, value: bytes) -> None:
        """Set ``key`` to ``value``."""
        # The one-entry case of _write spelled out (no ops list, no loop, the memtable updated in line):
        # it is the hottest path, and a shared helper would cost a call per write.
        if type(key) is not bytes:
            key = check_bytes(key, "key")
        if type(value) is not bytes:
            value = check_bytes(value, "value")
        with self._write_lock:
            if self._closed or self._bg_error is not None:
                self._check_writable()
            versions = self._versions
            seq = versions.last_sequence + 1
            wal = self._wal
            if wal is not None:
                try:
                    end = wal.add_record(encode_put(seq, key, value))
                except OSError as exc:
                    self._fail(exc)
                    raise
            versions.last_sequence = seq
            mem = self._mem
            data = mem.data
            if key not in data:
                mem.pending.append(key)
            data[key] = value
            mem.max_seq = seq
            n = mem.user_bytes = mem.user_bytes + len(key) + len(value)
            if n >= self._memtable_size:
                self._rotate()
        if wal is not None and self._sync:
            self._sync_wal(wal, end)

    def delete(self, key: bytes) -> None:
        """Remove ``key`` (a no-op if it is absent)."""
        if type(key) is not bytes:
            key = check_bytes(key, "key")
        self._write([(key, None)])

    def write(self, batch: WriteBatch) -> None:
        """Apply every entry of ``batch`` atomically: after a crash either all of it is present or none."""
        if not isinstance(batch, WriteBatch):
            raise TypeError(f"batch must be a WriteBatch, not {type(batch).__name__}")
        if batch.ops:
            self._write(batch.ops)

    def _write(self, ops: list[tuple[bytes, bytes | None]]) -> None:
        with self._write_lock:
            self._check_writable()
            versions = self._versions
            seq = versions.last_sequence + 1
            wal = self._wal
            if wal is not None:
                try:
                    end = wal.add_record(encode_batch(seq, ops))
                except OSError as exc:
                    self._fail(exc)
                    raise
            last = versions.last_sequence = seq + len(ops) - 1
            mem = self._mem
            mem.apply(ops, last)
            if mem.user_bytes >= self._memtable_size:
                self._rotate()
        if wal is not None and self._sync:
            self._sync_wal(wal, end)

    def _sync_wal(self, wal: LogWriter, end: int) -> None:
        try:
            wal.sync_to(end)
        except OSError as exc:
            self._fail(exc)
            raise

    def _fail(self, exc: BaseException) -> None:
        """Record a fatal error: the DB refuses writes from now on (fsync errors are not retried)."""
        with self._cv:
            if self._bg_error is None:
                self._bg_error = exc
            self._cv.notify_all()

    def _rotate(self) -> None:
        """Seal the live memtable and start a new one with a new WAL. Caller holds ``_write_lock``."""
        with self._cv:
            started = None
            while (
                len(self._state[1]) >= self.options.max_immutable_memtables
                or len(self._state[2].levels[0]) >= self.options.level0_stop_trigger
            ) and self._bg_error is None:
                if started is None:
                    started = time.monotonic()
                    self._counters["write_stalls"] += 1
                self._cv.wait(_WAIT_SLICE)
            if started is not None:
                self._stall_seconds += time.monotonic() - started
            if self._bg_error is not None:
                self._check_writable()
            old = self._mem
            wal_number = 0
            if self._wal is not None:
                wal_number = self._versions.new_file_number()
                new_wal = LogWriter(os.path.join(self.path, log_name(wal_number)))
                fsync_dir(self.path)
                self._counters["wal_bytes_closed"] += self._wal.written
                self._wal.close(sync=self.options.wal == "sync")
                self._wal = new_wal
            self._mem = MemTable(wal_number, self._versions.last_sequence + 1)
            _mem, imms, version = self._state
            self._state = (self._mem, (old, *imms), version)
            self._cv.notify_all()

    # ------------------------------------------------------------------ reads

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        """The value of ``key``, or ``default`` if it is absent."""
        if type(key) is not bytes:
            key = check_bytes(key, "key")
        if self._closed:
            raise DatabaseClosedError(f"database {self.path} is closed")
        mem, imms, version = self._state
        v = mem.data.get(key, MISSING)
        if v is MISSING:
            for m in imms:
                v = m.data.get(key, MISSING)
                if v is not MISSING:
                    break
            else:
                v = version.get(key)
        if v is None or v is MISSING:
            return default
        return v  # type: ignore[return-value]

    def __getitem__(self, key: bytes) -> bytes:
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) is not None

    def scan(
        self, start: bytes | None = None, end: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` pairs with ``start <= key < end`` (None = unbounded), ascending or descending.

        The iterator sees the database as it was when ``scan`` was called; later writes do not show up.
        """
        s, e = _check_range(start, end)
        with self._write_lock:
            if self._closed:
                raise DatabaseClosedError(f"database {self.path} is closed")
            mem, imms, version = self._state
            live = mem.range_items(s, e, reverse)
        return merged_scan([live], imms, version, s, e, reverse)

    def prefix(self, prefix: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """Pairs whose key starts with ``prefix``, in key order (or reversed)."""
        p = check_bytes(prefix, "prefix")
        return self.scan(p, _prefix_end(p), reverse)

    def snapshot(self) -> Snapshot:
        """A read-only view of the database as it is now, unaffected by later writes."""
        with self._write_lock:
            if self._closed:
                raise DatabaseClosedError(f"database {self.path} is closed")
            mem = self._mem
            if len(mem) <= _SNAPSHOT_COPY_LIMIT:
                _, imms, version = self._state
                return Snapshot(self, (mem.frozen_copy(), *imms), version)
            self._rotate()
            _, imms, version = self._state
            return Snapshot(self, imms, version)

    # ------------------------------------------------------------------ flush

    def flush(self) -> None:
        """Write the memtable to a table file and wait until it is durable in the MANIFEST."""
        with self._write_lock:
            self._check_writable()
            if self._mem.data:
                self._rotate()
            target = self._state[1]
        self._wait(lambda: not any(m in self._state[1] for m in target), "flush")

    def _wait(self, done: Any, what: str) -> None:
        with self._cv:
            while not done():
                if self._bg_error is not None:
                    raise BackgroundError(f"{what} failed in the background") from self._bg_error
                if self._closing:
                    raise DatabaseClosedError(f"database {self.path} closed during {what}")
                self._cv.wait(_WAIT_SLICE)

    def _flush_loop(self) -> None:
        while True:
            with self._cv:
                while not self._state[1] and not self._closing and self._bg_error is None:
                    self._cv.wait()
                if self._bg_error is not None or (self._closing and not self._state[1]):
                    return
                imms = self._state[1]
            try:
                self._flush(imms)
            except BaseException as exc:
                self._fail(exc)
                return

    def _write_memtables(self, mems: list[MemTable], in_thread: bool = False) -> FileMeta | None:
        """Write ``mems`` (newest first) as one level-0 table; None if they hold nothing."""
        if len(mems) == 1:
            data = mems[0].data
        else:
            data = {}
            for m in reversed(mems):
                data.update(m.data)
        if not data:
            return None
        with self._cv:
            number = self._versions.new_file_number()
        settings = self._settings(float("inf"))
        infos = self._run_job("flush", "flush", in_thread, data, self._outputs([number]), settings)
        self._install_outputs(infos)
        self._counters["flush_bytes_written"] += infos[0].size
        self._counters["flushes"] += 1
        return self._meta(infos[0], mems[-1].min_seq, mems[0].max_seq)

    def _settings(self, target: float) -> TableSettings:
        opts = self.options
        return TableSettings(opts.block_size, opts.bloom_bits_per_key, self._compression, target)

    def _outputs(self, numbers: list[int]) -> list[tuple[int, str]]:
        """Temporary output paths for ``numbers``; unique to this process (see strom.lsm.jobs)."""
        pid = os.getpid()
        return [(n, os.path.join(self.path, temp_table_name(n, pid))) for n in numbers]

    def _install_outputs(self, infos: list[TableInfo]) -> None:
        """Rename finished (fsynced) outputs to their table names and make the renames durable."""
        pid = os.getpid()
        for info in infos:
            tmp = os.path.join(self.path, temp_table_name(info.number, pid))
            os.replace(tmp, os.path.join(self.path, table_name(info.number)))
        fsync_dir(self.path)

    def _run_job(self, kind: str, job: str, in_thread: bool, *args: Any) -> list[TableInfo]:
        """Run a job in the worker process (or in this thread if so configured, or if the worker died)."""
        if self.options.background == "process" and not in_thread:
            try:
                result: list[TableInfo] = worker(kind).call(job, *args)
                return result
            except WorkerDiedError:
                pass  # retry here: the job is idempotent (same temporary outputs, rewritten from scratch)
        return JOBS[job](*args)

    def _meta(self, info: TableInfo, min_seq: int, max_seq: int) -> FileMeta:
        meta = FileMeta(**vars(info), min_seq=min_seq, max_seq=max_seq)
        meta.table = self._open_table(info.number)
        return meta

    def _event(self, name: str, **details: Any) -> None:
        listener = self.options.event_listener
        if listener is not None:
            listener(name, details)

    def _flush(self, imms: tuple[MemTable, ...]) -> None:
        self._event("flush_begin", memtables=len(imms))
        meta = self._write_memtables(list(imms))
        with self._cv:
            mem, current_imms, _version = self._state
            remaining = tuple(m for m in current_imms if all(m is not f for f in imms))
            edit = VersionEdit(last_seq=imms[0].max_seq)
            if self._wal is not None:
                edit.log_number = min(m.wal_number for m in (*remaining, mem))
            if meta is not None:
                edit.added.append((0, meta))
            version = self._versions.log_and_apply(edit)
            self._counters["user_bytes_flushed"] += sum(m.user_bytes for m in imms)
            self._state = (mem, remaining, version)
            self._cv.notify_all()
            obsolete = [n for n in (m.wal_number for m in imms) if n and n < (edit.log_number or 0)]
        for n in obsolete:
            self._unlink(log_name(n))
        self._event("flush_end", file=meta.number if meta is not None else None)

    def _unlink(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.path, name))

    # ------------------------------------------------------------------ compaction

    def _compact_loop(self) -> None:
        while True:
            with self._cv:
                while True:
                    if self._closing or self._bg_error is not None:
                        return
                    plan = pick(self._state[2], self._policy, self._pointers)
                    if plan is not None:
                        break
                    self._cv.wait()
            try:
                with self._compaction_lock:
                    # Re-plan under the lock: a manual compaction may have changed the version meanwhile.
                    plan = pick(self._state[2], self._policy, self._pointers)
                    if plan is not None:
                        self._run_compaction(plan)
            except BaseException as exc:
                self._fail(exc)
                return

    def _run_compaction(self, plan: Compaction) -> None:
        inputs = plan.all_inputs()
        self._event("compaction_begin", inputs=[f.number for _, f in inputs], output_level=plan.output_level)
        edit = VersionEdit(deleted=[(lvl, f.number) for lvl, f in inputs])
        if plan.trivial_move:
            ((_, f),) = inputs
            edit.added.append((plan.output_level, f))
            self._counters["trivial_moves"] += 1
        else:
            read = sum(f.size for _, f in inputs)
            target = float("inf") if plan.output_level == 0 else self.options.target_file_size
            with self._cv:
                count = 2 + (int(read // target) if target != float("inf") else 0)
                numbers = [self._versions.new_file_number() for _ in range(count + 2)]
            sources = [[self._table_path(f.number) for f in run] for run in plan.sources()]
            infos = self._run_job(
                "compaction",
                "merge",
                False,
                sources,
                plan.drop_tombstones,
                self._outputs(numbers),
                self._settings(target),
            )
            self._install_outputs(infos)
            min_seq = min(f.min_seq for _, f in inputs)
            max_seq = max(f.max_seq for _, f in inputs)
            for info in infos:
                edit.added.append((plan.output_level, self._meta(info, min_seq, max_seq)))
            self._counters["compaction_bytes_read"] += read
            self._counters["compaction_bytes_written"] += sum(i.size for i in infos)
            self._counters["compactions"] += 1
        with self._cv:
            mem, imms, _version = self._state
            self._state = (mem, imms, self._versions.log_and_apply(edit))
            self._cv.notify_all()
        if not plan.trivial_move:
            for _, f in inputs:
                self._unlink(table_name(f.number))
        self._event("compaction_end", outputs=[f.number for _, f in edit.added])

    def compact_range(self, start: bytes | None = None, end: bytes | None = None) -> None:
        """Flush, then merge every file holding keys in ``[start, end]`` down to the bottom level.

        Tombstones and overwritten values in the range are discarded (if nothing lies beneath). Blocks until
        done.
        """
        s, e = _check_range(start, end)
        self.flush()
        with self._compaction_lock:
            self._check_writable()
            plan = full_compaction(self._state[2], self._policy, s, e)
            if plan is not None:
                try:
                    self._run_compaction(plan)
                except BaseException as exc:
                    self._fail(exc)
                    raise
        with self._cv:
            self._cv.notify_all()

    def wait_for_compactions(self, timeout: float = 600.0) -> None:
        """Block until no compaction is due (for tests and benchmarks that want a settled tree)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._compaction_lock, self._cv:
                if self._bg_error is not None:
                    raise BackgroundError("a background compaction failed") from self._bg_error
                if not self._state[1] and pick(self._state[2], self._policy, dict(self._pointers)) is None:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"compactions of {self.path} still pending after {timeout} s")
            with self._cv:
                self._cv.notify_all()
                self._cv.wait(0.05)

    # ------------------------------------------------------------------ introspection

    def verify_checksums(self) -> None:
        """Read every block of every live table and check its checksum (raises CorruptionError)."""
        if self._closed:
            raise DatabaseClosedError(f"database {self.path} is closed")
        for _, f in self._state[2].files():
            f.table.verify()  # type: ignore[union-attr]

    def check_invariants(self) -> None:
        """Raise CorruptionError if the current version violates a level invariant."""
        self._state[2].check_invariants()

    def levels(self) -> list[list[tuple[int, bytes, bytes]]]:
        """Per level, ``(file number, smallest key, largest key)`` of each file (for tests and tools)."""
        return [[(f.number, f.smallest, f.largest) for f in lv] for lv in self._state[2].levels]

    def stats(self) -> Statistics:
        """A copy of the counters."""
        c = self._counters
        mem, imms, version = self._state
        wal_now = self._wal.written if self._wal is not None else 0
        user = c["user_bytes_flushed"] + mem.user_bytes + sum(m.user_bytes for m in imms)
        return Statistics(
            user_bytes_written=user,
            wal_bytes_written=c["wal_bytes_closed"] + wal_now,
            flush_bytes_written=c["flush_bytes_written"],
            compaction_bytes_written=c["compaction_bytes_written"],
            manifest_bytes_written=self._versions.manifest_bytes_written,
            bytes_read=self._read_stats[0] + c["compaction_bytes_read"],
            compaction_bytes_read=c["compaction_bytes_read"],
            flushes=c["flushes"],
            compactions=c["compactions"],
            trivial_moves=c["trivial_moves"],
            write_stalls=c["write_stalls"],
            stall_seconds=self._stall_seconds,
            block_cache_misses=self._cache.misses if self._cache else 0,
            files_per_level=[len(lv) for lv in version.levels],
            bytes_per_level=[sum(f.size for f in lv) for lv in version.levels],
        )

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Flush the memtable, stop the background threads and release the LOCK. Idempotent."""
        if self._closed:
            return
        error: BaseException | None = None
        with self._write_lock:
            if self._closed:
                return
            try:
                if self._bg_error is None and self._mem.data:
                    self._rotate()
            except LSMError as exc:
                error = exc
        if error is None and self._bg_error is None:
            try:
                self._wait(lambda: not self._state[1], "close")
            except LSMError as exc:
                error = exc
        with self._write_lock:
            with self._cv:
                self._closing = True
                self._cv.notify_all()
            self._flush_thread.join()
            self._compact_thread.join()
            with self._compaction_lock:
                pass
            if self._wal is not None:
                self._wal.close(sync=True)
            self._versions.close()
            self._closed = True
            self._lock.release()
        if error is not None:
            raise error

    def __enter__(self) -> DB:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DB({self.path!r}, {'closed' if self._closed else 'open'})"


class Snapshot:
    """A read-only, consistent view: the memtables and files as they were when it was taken.

    It holds its files open, so compactions that delete them do not disturb it (the space is freed when the
    snapshot is dropped).
    """

    def __init__(self, db: DB, mems: tuple[MemTable, ...], version: Version) -> None:
        self._db = db
        self._mems = mems
        self._version = version

    def _check(self) -> None:
        if self._db._closed:
            raise DatabaseClosedError(f"database {self._db.path} is closed")

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        """The value of ``key`` in the snapshot, or ``default``."""
        key = check_bytes(key, "key")
        self._check()
        for m in self._mems:
            v = m.data.get(key, MISSING)
            if v is not MISSING:
                break
        else:
            v = self._version.get(key)
        if v is None or v is MISSING:
            return default
        return v  # type: ignore[return-value]

    def scan(
        self, start: bytes | None = None, end: bytes | None = None, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Like :meth:`DB.scan`, over the snapshot."""
        s, e = _check_range(start, end)
        self._check()
        return merged_scan([], self._mems, self._version, s, e, reverse)

    def prefix(self, prefix: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """Like :meth:`DB.prefix`, over the snapshot."""
        p = check_bytes(prefix, "prefix")
        return self.scan(p, _prefix_end(p), reverse)

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Drop the snapshot's references so its files can be freed."""
        self._mems = ()
        self._version = Version([[]])
