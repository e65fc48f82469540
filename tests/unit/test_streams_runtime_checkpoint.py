"""The `.checkpoint` file: Kafka Streams' text layout, atomic replacement, corrupt files not trusted."""

from __future__ import annotations

from pathlib import Path

import pytest

from strom.streams.runtime.checkpoint import (
    CheckpointCorruptError,
    delete_checkpoint,
    read_checkpoint,
    write_checkpoint,
)


def test_round_trip_keeps_every_partition_offset(tmp_path: Path) -> None:
    offsets = {("app-counts-changelog", 0): 41, ("app-counts-changelog", 3): 7, ("app-join-changelog", 0): 0}
    write_checkpoint(tmp_path, offsets)
    assert read_checkpoint(tmp_path) == offsets
    text = (tmp_path / ".checkpoint").read_text()
    assert text.splitlines()[:2] == ["0", "3"]
    assert "app-counts-changelog 3 7" in text.splitlines()


def test_missing_checkpoint_means_no_trusted_state(tmp_path: Path) -> None:
    assert read_checkpoint(tmp_path) == {}
    write_checkpoint(tmp_path, {("t", 0): 5})
    delete_checkpoint(tmp_path)
    assert read_checkpoint(tmp_path) == {}


def test_rewrite_replaces_old_entries_and_leaves_no_temp_file(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, {("t", 0): 5, ("t", 1): 6})
    write_checkpoint(tmp_path, {("t", 0): 9})
    assert read_checkpoint(tmp_path) == {("t", 0): 9}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".checkpoint"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "header"),
        ("1\n0\n", "unsupported checkpoint version 1"),
        ("0\n2\nt 0 5\n", "header says 2 entries but the file has 1"),
        ("0\n1\nt 0\n", "malformed entry"),
        ("0\n1\nt zero 5\n", "malformed entry"),
    ],
)
def test_corrupt_checkpoint_is_reported_not_trusted(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / ".checkpoint").write_text(body)
    with pytest.raises(CheckpointCorruptError, match=message):
        read_checkpoint(tmp_path)
