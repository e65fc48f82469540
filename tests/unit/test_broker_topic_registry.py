"""`TopicRegistry` writes before it changes: a write the disk refuses leaves memory and file as they were."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from strom.broker import topics as topics_module
from strom.broker.errors import StorageError
from strom.broker.topics import TopicRegistry


def _refuse_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(topics_module, "write_atomically", full)


def test_a_refused_write_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = TopicRegistry(tmp_path, 0)
    kept = registry.create("kept", 2, {"retention.ms": "1000"})
    on_disk = (tmp_path / "topics.json").read_bytes()
    _refuse_writes(monkeypatch)

    with pytest.raises(StorageError, match="No space left on device"):
        registry.create("new", 1, {})
    with pytest.raises(StorageError):
        registry.delete("kept")
    with pytest.raises(StorageError):
        registry.set_partitions("kept", 5)
    with pytest.raises(StorageError):
        registry.set_configs("kept", {})
    with pytest.raises(StorageError):
        registry.adopt("stray", 3)

    assert registry.get("new") is None and registry.get("stray") is None
    assert registry.get("kept") == kept
    assert registry.deleting() == set()
    assert (tmp_path / "topics.json").read_bytes() == on_disk


def test_a_deleted_topic_is_remembered_until_its_files_are_gone(tmp_path: Path) -> None:
    registry = TopicRegistry(tmp_path, 0)
    registry.create("doomed", 1, {})
    registry.delete("doomed")
    assert TopicRegistry(tmp_path, 0).deleting() == {"doomed"}
    registry.deleted({"doomed"})
    assert TopicRegistry(tmp_path, 0).deleting() == set()


def test_recreating_a_topic_being_deleted_forgets_the_deletion(tmp_path: Path) -> None:
    registry = TopicRegistry(tmp_path, 0)
    registry.create("again", 1, {})
    registry.delete("again")
    registry.create("again", 1, {})
    reopened = TopicRegistry(tmp_path, 0)
    assert reopened.deleting() == set() and reopened.get("again") is not None
