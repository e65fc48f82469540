"""The registry's in-memory view of the `_schemas` topic, built only by applying its records in offset order.

Every registry process reads the same records in the same order, so every process builds the same view; that
is what makes two registries agree without talking to each other. Writers never change this view directly:
they append a record and wait until their reader has applied it.

Invariants (enforced when a record is applied, so a conflicting record from a racing writer is ignored by
every reader alike, and the writer that lost sees it and retries):
- a subject's version, once taken, keeps its schema id (a rewrite may only flip `deleted`);
- an id names one schema (type, text and references) everywhere it is used.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_COMPATIBILITY = "BACKWARD"
DEFAULT_MODE = "READWRITE"


class SchemaVersion:
    """One version of a subject: which schema (by id) it is and whether it is soft-deleted."""

    __slots__ = ("deleted", "schema_id", "subject", "version")

    def __init__(self, subject: str, version: int, schema_id: int, deleted: bool) -> None:
        self.subject = subject
        self.version = version
        self.schema_id = schema_id
        self.deleted = deleted


class StoredSchema:
    """A schema as registered: its text, type and references (`[{"name","subject","version"}]`)."""

    __slots__ = ("references", "schema", "schema_type")

    def __init__(self, schema: str, schema_type: str, references: list[dict[str, Any]]) -> None:
        self.schema = schema
        self.schema_type = schema_type
        self.references = references

    def same_as(self, other: StoredSchema) -> bool:
        return (self.schema, self.schema_type, self.references) == (
            other.schema,
            other.schema_type,
            other.references,
        )


class RegistryState:
    """Subjects, versions, schemas by id, configs and modes, as of `applied_offset`."""

    def __init__(self) -> None:
        self.subjects: dict[str, dict[int, SchemaVersion]] = {}
        self.schemas: dict[int, StoredSchema] = {}
        self.configs: dict[str | None, str] = {}
        self.modes: dict[str | None, str] = {}
        self.max_id = 0
        self.applied_offset = -1

    def apply(self, offset: int, key: Any, value: Any) -> None:
        """Apply the record at `offset` (key and value already decoded from JSON)."""
        self.applied_offset = offset
        if not isinstance(key, dict):
            return
        keytype = key.get("keytype")
        if keytype == "SCHEMA":
            self._apply_schema(key, value)
        elif keytype == "CONFIG":
            self._apply_setting(self.configs, key.get("subject"), value, "compatibilityLevel")
        elif keytype == "MODE":
            self._apply_setting(self.modes, key.get("subject"), value, "mode")
        elif keytype == "DELETE_SUBJECT" and isinstance(value, dict):
            for entry in self.subjects.get(key["subject"], {}).values():
                if entry.version <= value["version"]:
                    entry.deleted = True

    def _apply_setting(
        self, table: dict[str | None, str], subject: str | None, value: Any, field: str
    ) -> None:
        if value is None:
            table.pop(subject, None)
        else:
            table[subject] = value[field]

    def _apply_schema(self, key: dict[str, Any], value: Any) -> None:
        subject, version = key["subject"], key["version"]
        versions = self.subjects.get(subject, {})
        if value is None:
            removed = versions.pop(version, None)
            if not versions:
                self.subjects.pop(subject, None)
            if removed is not None and not self.uses_of(removed.schema_id):
                # Permanently deleted everywhere: unknown by id from now on, as in Confluent's registry.
                self.schemas.pop(removed.schema_id, None)
            return
        schema_id = value["id"]
        stored = StoredSchema(value["schema"], value.get("schemaType", "AVRO"), value.get("references") or [])
        known = self.schemas.get(schema_id)
        current = versions.get(version)
        if (known is not None and not known.same_as(stored)) or (
            current is not None and current.schema_id != schema_id
        ):
            logger.warning(
                "ignoring %s version %s id %s: conflicts with an earlier record", subject, version, schema_id
            )
            return
        self.schemas[schema_id] = stored
        self.max_id = max(self.max_id, schema_id)
        entry = SchemaVersion(subject, version, schema_id, bool(value.get("deleted")))
        self.subjects.setdefault(subject, {})[version] = entry

    def compatibility(self, subject: str | None) -> str:
        """The level that applies to `subject`: its own, else the global one, else BACKWARD."""
        if subject is not None and subject in self.configs:
            return self.configs[subject]
        return self.configs.get(None, DEFAULT_COMPATIBILITY)

    def mode(self, subject: str | None) -> str:
        if subject is not None and subject in self.modes:
            return self.modes[subject]
        return self.modes.get(None, DEFAULT_MODE)

    def versions(self, subject: str, deleted: bool = False) -> list[SchemaVersion]:
        """The subject's versions in order (soft-deleted ones only if `deleted`)."""
        entries = self.subjects.get(subject, {})
        return [entries[v] for v in sorted(entries) if deleted or not entries[v].deleted]

    def uses_of(self, schema_id: int) -> list[SchemaVersion]:
        """Every version, deleted or not, that is the schema `schema_id`."""
        return [
            entry
            for subject in sorted(self.subjects)
            for entry in self.versions(subject, deleted=True)
            if entry.schema_id == schema_id
        ]

    def referenced_by(self, subject: str, version: int) -> list[int]:
        """Ids of live schemas whose references name this subject version."""
        ids = set()
        for versions in self.subjects.values():
            for entry in versions.values():
                refs = self.schemas[entry.schema_id].references
                if not entry.deleted and any(
                    r["subject"] == subject and r["version"] == version for r in refs
                ):
                    ids.add(entry.schema_id)
        return sorted(ids)
