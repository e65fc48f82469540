"""Kafka's offset checkpoint files and the atomic file replacement every strom file rewrite uses.

Format (Kafka `CheckpointFile`, used for `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`
and `cleaner-offset-checkpoint`): text lines

    0                      version
    <n>                    number of entries
    <topic> <partition> <offset>   n times

A checkpoint is replaced atomically: write `<name>.tmp`, fsync it, rename over the old file, fsync the
directory. A crash therefore leaves either the old or the new checkpoint, never a mix; a leftover `.tmp` is
ignored and overwritten next time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from strom.log.errors import LogStorageError

TopicPartition = tuple[str, int]

RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
CLEANER_OFFSET_CHECKPOINT = "cleaner-offset-checkpoint"

_VERSION = 0


class CorruptCheckpointError(LogStorageError):
    """A checkpoint file does not follow the format above (the message names the file and the line)."""


def fsync_dir(path: Path) -> None:
    """Make renames and unlinks inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new content."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_offsets(path: Path, offsets: Mapping[TopicPartition, int]) -> None:
    """Atomically write an offset checkpoint with one line per partition (sorted for stable diffs)."""
    lines = [str(_VERSION), str(len(offsets))]
    for (topic, partition), offset in sorted(offsets.items()):
        lines.append(f"{topic} {partition} {offset}")
    write_atomically(path, ("\n".join(lines) + "\n").encode())


def read_offsets(path: Path) -> dict[TopicPartition, int]:
    """Read an offset checkpoint; a missing file is an empty checkpoint.

    Raises CorruptCheckpointError when the version, the count or an entry line is malformed. Callers
    treat a corrupt recovery-point checkpoint as "recover everything", which is always safe.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    lines = text.splitlines()
    if len(lines) < 2:
        raise CorruptCheckpointError(f"{path}: expected a version and a count line, found {len(lines)} lines")
    if lines[0].strip() != str(_VERSION):
        raise CorruptCheckpointError(f"{path}: unsupported checkpoint version {lines[0]!r}, expected 0")
    try:
        count = int(lines[1])
    except ValueError:
        raise CorruptCheckpointError(f"{path}: entry count {lines[1]!r} is not a number") from None
    entries = [line for line in lines[2:] if line.strip()]
    if len(entries) != count:
        raise CorruptCheckpointError(f"{path}: header says {count} entries, file has {len(entries)}")
    out: dict[TopicPartition, int] = {}
    for number, line in enumerate(entries, start=3):
        parts = line.split()
        if len(parts) != 3:
            raise CorruptCheckpointError(f"{path} line {number}: expected 'topic partition offset': {line!r}")
        try:
            out[(parts[0], int(parts[1]))] = int(parts[2])
        except ValueError:
            raise CorruptCheckpointError(
                f"{path} line {number}: partition or offset is not a number"
            ) from None
    return out
