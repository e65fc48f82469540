"""The `.checkpoint` file of a task's state directory: how far each persistent store's changelog is reflected
locally.

Format (text, the same layout as Kafka Streams' OffsetCheckpoint so operators recognise it):

    0                      <- format version
    N                      <- number of entries
    <topic> <partition> <offset>   (N lines)

`offset` is the offset of the last changelog record contained in the local store, so a restore resumes at
offset + 1 and replays only the delta. The file is replaced atomically (write temp, fsync, rename, fsync dir),
so a crash leaves either the old or the new checkpoint, never a torn one. A missing file means "no local state
is known to be valid": the store is restored from the changelog's beginning.
"""

from __future__ import annotations

import os
from pathlib import Path

from strom.streams.errors import StreamsError

CHECKPOINT_FILE_NAME = ".checkpoint"
_VERSION = 0


class CheckpointCorruptError(StreamsError):
    """A `.checkpoint` file cannot be parsed; the caller discards it and restores from scratch."""


def read_checkpoint(directory: Path) -> dict[tuple[str, int], int]:
    """Return {(changelog topic, partition): last restored offset}; empty when there is no checkpoint."""
    path = directory / CHECKPOINT_FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    lines = text.splitlines()
    try:
        version = int(lines[0])
        count = int(lines[1])
    except (IndexError, ValueError) as exc:
        raise CheckpointCorruptError(f"{path}: header is not '<version>\\n<count>': {exc}") from exc
    if version != _VERSION:
        raise CheckpointCorruptError(
            f"{path}: unsupported checkpoint version {version} (expected {_VERSION})"
        )
    entries = lines[2:]
    if len(entries) != count:
        raise CheckpointCorruptError(f"{path}: header says {count} entries but the file has {len(entries)}")
    offsets: dict[tuple[str, int], int] = {}
    for line in entries:
        parts = line.split(" ")
        if len(parts) != 3:
            raise CheckpointCorruptError(
                f"{path}: malformed entry {line!r} (expected 'topic partition offset')"
            )
        try:
            offsets[(parts[0], int(parts[1]))] = int(parts[2])
        except ValueError as exc:
            raise CheckpointCorruptError(f"{path}: malformed entry {line!r}: {exc}") from exc
    return offsets


def write_checkpoint(directory: Path, offsets: dict[tuple[str, int], int]) -> None:
    """Atomically replace the checkpoint of `directory` with `offsets`."""
    path = directory / CHECKPOINT_FILE_NAME
    tmp = directory / (CHECKPOINT_FILE_NAME + ".tmp")
    body = [str(_VERSION), str(len(offsets))]
    body += [f"{topic} {partition} {offset}" for (topic, partition), offset in sorted(offsets.items())]
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(body) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def delete_checkpoint(directory: Path) -> None:
    """Remove the checkpoint, e.g. before wiping a store whose local state can no longer be trusted."""
    (directory / CHECKPOINT_FILE_NAME).unlink(missing_ok=True)
