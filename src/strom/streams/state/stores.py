"""Store specifications (what a topology declares) and opening them for a task (what a task owns).

``Stores.key_value_store(...)`` / ``Stores.window_store(...)`` are the user-facing builders for stores
attached to ``KStream.process``; the DSL makes the same specs for its aggregations and tables. A spec is
independent of the application id and the partition; ``open_store`` binds it to a task's directory, collector
and cache.

Backends (``backend=`` on the spec, else the ``default.dsl.store`` config): ``lsm`` (strom.lsm, persistent,
the default), ``in_memory`` and ``rocksdict`` (optional dependency).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strom.lsm import CorruptionError
from strom.streams.errors import StoreError, TopologyError
from strom.streams.runtime.checkpoint import CHECKPOINT_FILE_NAME
from strom.streams.serdes import Serde, SessionWindowedSerde, resolve_serde
from strom.streams.state.bytes_store import InMemoryKeyValueBytesStore, KeyValueBytesStore
from strom.streams.state.cache import Changelogger, RecordCacheBudget
from strom.streams.state.kv_store import KeyValueStore
from strom.streams.state.session_store import SessionStore
from strom.streams.state.window_bytes import InMemoryWindowBytesStore, SegmentedWindowBytesStore
from strom.streams.state.window_store import WindowStore

log = logging.getLogger("strom.streams")

BACKENDS = ("lsm", "in_memory", "rocksdict")
DEFAULT_BACKEND = "lsm"
# windowstore.changelog.additional.retention.ms: a windowed changelog keeps a day beyond the store retention.
WINDOW_CHANGELOG_ADDITIONAL_RETENTION_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class StoreSpec:
    """A declared state store. ``kind`` is ``key_value``, ``window`` or ``session``; window stores need size
    and retention, session stores retention."""

    name: str
    kind: str
    key_serde: Serde[Any] | None = None  # None: the config's default.key.serde
    value_serde: Serde[Any] | None = None
    backend: str | None = None
    logging: bool = True
    caching: bool = False
    window_size_ms: int = 0
    retention_ms: int = 0
    changelog_configs: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\\0"):
            raise TopologyError(f"invalid store name {self.name!r}: use letters, digits, '.', '_' or '-'")
        if self.kind not in ("key_value", "window", "session"):
            raise TopologyError(f"store {self.name!r}: unknown kind {self.kind!r}")
        if self.backend is not None and self.backend not in BACKENDS:
            raise TopologyError(
                f"store {self.name!r}: unknown backend {self.backend!r}, expected one of {BACKENDS}"
            )
        if self.kind == "session" and self.retention_ms <= 0:
            raise TopologyError(f"session store {self.name!r} needs retention_ms > 0 ({self.retention_ms})")
        if self.kind == "window" and (self.window_size_ms <= 0 or self.retention_ms < self.window_size_ms):
            raise TopologyError(
                f"window store {self.name!r}: needs window_size_ms > 0 and retention_ms >= window_size_ms, "
                f"got {self.window_size_ms} and {self.retention_ms}"
            )

    def changelog_topic(self, application_id: str) -> str:
        return f"{application_id}-{self.name}-changelog"

    def topic_configs(self) -> dict[str, str]:
        """Configs the changelog topic must be created with (Kafka Streams' defaults, then the user's)."""
        if self.kind in ("window", "session"):
            base = {
                "cleanup.policy": "compact,delete",
                "retention.ms": str(self.retention_ms + WINDOW_CHANGELOG_ADDITIONAL_RETENTION_MS),
            }
        else:
            base = {"cleanup.policy": "compact"}
        base.update(self.changelog_configs)
        return base


class Stores:
    """Builders for stores used with ``KStream.process(..., stores=[...])``."""

    @staticmethod
    def key_value_store(
        name: str,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        *,
        backend: str | None = None,
        logging: bool = True,
        caching: bool = False,
        changelog_configs: dict[str, str] | None = None,
    ) -> StoreSpec:
        return StoreSpec(
            name,
            "key_value",
            key_serde,
            value_serde,
            backend,
            logging,
            caching,
            changelog_configs=dict(changelog_configs or {}),
        )

    @staticmethod
    def session_store(
        name: str,
        retention_ms: int,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        *,
        backend: str | None = None,
        logging: bool = True,
        caching: bool = False,
        changelog_configs: dict[str, str] | None = None,
    ) -> StoreSpec:
        return StoreSpec(
            name, "session", key_serde, value_serde, backend, logging, caching,
            retention_ms=retention_ms, changelog_configs=dict(changelog_configs or {}),
        )  # fmt: skip

    @staticmethod
    def window_store(
        name: str,
        window_size_ms: int,
        retention_ms: int,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        *,
        backend: str | None = None,
        logging: bool = True,
        caching: bool = False,
        changelog_configs: dict[str, str] | None = None,
    ) -> StoreSpec:
        return StoreSpec(
            name,
            "window",
            key_serde,
            value_serde,
            backend,
            logging,
            caching,
            window_size_ms,
            retention_ms,
            dict(changelog_configs or {}),
        )


def _open_backend(backend: str, path: Path) -> KeyValueBytesStore:
    if backend == "in_memory":
        return InMemoryKeyValueBytesStore()
    if backend == "rocksdict":
        from strom.streams.state.rocksdict_store import RocksDictKeyValueBytesStore

        return RocksDictKeyValueBytesStore(path)
    from strom.streams.state.lsm_store import LsmKeyValueBytesStore

    return LsmKeyValueBytesStore(path)


def store_backend(spec: StoreSpec, config: dict[str, Any]) -> str:
    backend = spec.backend or str(config.get("default.dsl.store", DEFAULT_BACKEND))
    aliases = {"rocksDB": "rocksdict", "rocksdb": "rocksdict", "in-memory": "in_memory"}
    backend = aliases.get(backend, backend)
    if backend not in BACKENDS:
        raise StoreError(f"default.dsl.store={backend!r} is not one of {BACKENDS}")
    return backend


def store_path(spec: StoreSpec, backend: str, task_dir: Path) -> Path:
    """``<task dir>/<backend>/<store>``, like Kafka Streams' ``<task dir>/rocksdb/<store>``."""
    return task_dir / backend / spec.name


def open_backend(spec: StoreSpec, config: dict[str, Any], task_dir: Path) -> Any:
    """The byte-level backend of ``spec`` in ``task_dir`` (reopening existing files)."""
    backend = store_backend(spec, config)
    path = store_path(spec, backend, task_dir)
    if spec.kind == "window":
        if backend == "in_memory":
            return InMemoryWindowBytesStore(spec.retention_ms)
        return SegmentedWindowBytesStore(path, spec.retention_ms, lambda p: _open_backend(backend, p))
    return _open_backend(backend, path)


def open_store(
    spec: StoreSpec,
    config: dict[str, Any],
    task_dir: Path,
    changelog: Changelogger | None,
    budget: RecordCacheBudget | None,
    current_timestamp: Callable[[], int],
    *,
    rebuildable: bool | None = None,
) -> KeyValueStore | WindowStore:
    """Open (or reopen, keeping its files) the store ``spec`` for one task (a session store is a key-value
    store with windowed keys). ``rebuildable`` says whether a topic holds the store's contents (default: its
    changelog is on; a global store's source topic is its changelog) so corrupt local files may be wiped."""
    backend = _open_or_rebuild(spec, config, task_dir, spec.logging if rebuildable is None else rebuildable)
    cache = budget if spec.caching else None
    logger = changelog if spec.logging else None
    key_serde = resolve_serde(spec.key_serde, config, "key", f"store {spec.name!r}")
    value_serde = resolve_serde(spec.value_serde, config, "value", f"store {spec.name!r}")
    if spec.kind == "session":
        session = SessionStore(
            spec.name, backend, SessionWindowedSerde(key_serde), value_serde, cache, logger, current_timestamp
        )
        session.retention_ms = spec.retention_ms
        return session
    if spec.kind == "window":
        return WindowStore(
            spec.name,
            backend,
            key_serde,
            value_serde,
            spec.window_size_ms,
            spec.retention_ms,
            cache,
            logger,
            current_timestamp,
        )
    return KeyValueStore(spec.name, backend, key_serde, value_serde, cache, logger, current_timestamp)


def _open_or_rebuild(spec: StoreSpec, config: dict[str, Any], task_dir: Path, rebuildable: bool) -> Any:
    """Open the backend; when its local files are corrupt, wipe them and drop the task's checkpoint so the
    runtime restores the store from its topic's beginning (local state is a cache of the changelog, as in
    Kafka Streams' TaskCorruptedException handling). A store without a changelog cannot be rebuilt, so its
    files are left alone and opening fails."""
    try:
        return open_backend(spec, config, task_dir)
    except CorruptionError as exc:
        path = store_path(spec, store_backend(spec, config), task_dir)
        if not rebuildable:
            raise StoreError(
                f"store {spec.name!r} of task {task_dir.name} has corrupt local state in {path} and no "
                f"changelog to rebuild it from (logging disabled): {exc}"
            ) from exc
        log.error(
            "task %s: store %r has corrupt local state in %s (%s): wiping it and restoring it from the "
            "changelog",
            task_dir.name,
            spec.name,
            path,
            exc,
        )
        # Without the checkpoint the restore starts at the changelog's beginning for every store of the task;
        # replaying onto the other stores' intact state converges to the same contents.
        (task_dir / CHECKPOINT_FILE_NAME).unlink(missing_ok=True)
        wipe_store_files(spec, config, task_dir)
        return open_backend(spec, config, task_dir)


def wipe_store_files(spec: StoreSpec, config: dict[str, Any], task_dir: Path) -> None:
    """Delete a (closed) store's files so it reopens empty."""
    shutil.rmtree(store_path(spec, store_backend(spec, config), task_dir), ignore_errors=True)
