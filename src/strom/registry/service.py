"""What each registry operation does, in Confluent Schema Registry's terms, over the `_schemas` topic.

Reads answer from the in-memory state under the topic's lock. Writes are serialised in this process by
`_write_lock`: catch up with the topic, decide (id, version, compatibility) on the caught-up state, append the
record, and return once it is applied. If another registry process appended a conflicting record first, the
state ignores ours (see `strom.registry.state`) and the write is decided again on the newer state.
"""

from __future__ import annotations

import threading
from typing import Any

from strom.registry import compatibility, records
from strom.registry.compatibility import LEVELS, ParsedSchema
from strom.registry.errors import (
    IncompatibleSchema,
    InvalidCompatibilityLevel,
    InvalidMode,
    InvalidSchema,
    InvalidVersion,
    OperationNotPermitted,
    ReferenceExists,
    SchemaNotFound,
    SchemaTooLarge,
    StoreError,
    SubjectConfigNotFound,
    SubjectModeNotFound,
    SubjectNotFound,
    SubjectNotSoftDeleted,
    SubjectSoftDeleted,
    VersionNotFound,
    VersionNotSoftDeleted,
    VersionSoftDeleted,
)
from strom.registry.state import SchemaVersion, StoredSchema
from strom.registry.store import SchemasTopic

MODES = ("READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT")
LATEST = -1
# A schema travels as one `_schemas` record, and Kafka's default message.max.bytes is 1 MB.
MAX_SCHEMA_CHARS = 900_000
WRITE_ATTEMPTS = 5


def parse_version(text: str) -> int:
    """`latest` (any case) or -1 -> LATEST, else an int in 1..2^31-1 (422/42202 for anything else)."""
    if text.lower() == "latest":
        return LATEST
    try:
        version = int(text)
    except ValueError:
        raise InvalidVersion(f"The specified version '{text}' is not a valid version id") from None
    if version == LATEST or 1 <= version < 2**31:
        return version
    raise InvalidVersion(f"The specified version '{text}' is not a valid version id")


class SchemaRegistry:
    """The registry's operations; every method returns the JSON body Confluent's registry answers with."""

    def __init__(self, topic: SchemasTopic) -> None:
        self.topic = topic
        self.state = topic.state
        self._write_lock = threading.Lock()

    # ---- reads ----

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        with self.topic.lock:
            return _schema_body(self._stored(schema_id))

    def subjects_of(self, schema_id: int, deleted: bool) -> list[str]:
        with self.topic.lock:
            self._stored(schema_id)
            uses = self.state.uses_of(schema_id)
            return sorted({u.subject for u in uses if deleted or not u.deleted})

    def versions_of(self, schema_id: int, deleted: bool) -> list[dict[str, Any]]:
        with self.topic.lock:
            self._stored(schema_id)
            uses = self.state.uses_of(schema_id)
            return [{"subject": u.subject, "version": u.version} for u in uses if deleted or not u.deleted]

    def subjects(self, prefix: str, deleted: bool, deleted_only: bool) -> list[str]:
        with self.topic.lock:
            names = []
            for subject in sorted(self.state.subjects):
                entries = self.state.versions(subject, deleted=True)
                live = any(not e.deleted for e in entries)
                if subject.startswith(prefix) and (live != deleted_only or (deleted and not deleted_only)):
                    names.append(subject)
            return names

    def schemas(self, prefix: str, deleted: bool, latest_only: bool) -> list[dict[str, Any]]:
        """GET /schemas: every version (or each subject's latest) of the subjects starting with `prefix`."""
        with self.topic.lock:
            found = []
            for subject in sorted(s for s in self.state.subjects if s.startswith(prefix)):
                entries = self.state.versions(subject, deleted)
                found += [self._version_body(e) for e in (entries[-1:] if latest_only else entries)]
            return found

    def subject_versions(self, subject: str, deleted: bool, deleted_only: bool) -> list[int]:
        with self.topic.lock:
            entries = self._versions(subject, deleted or deleted_only)
            return [e.version for e in entries if not deleted_only or e.deleted]

    def version(self, subject: str, version: int, deleted: bool) -> dict[str, Any]:
        with self.topic.lock:
            entry = self._version(subject, version, deleted)
            return self._version_body(entry)

    def referenced_by(self, subject: str, version: int) -> list[int]:
        with self.topic.lock:
            entry = self._version(subject, version, deleted=True)
            return self.state.referenced_by(subject, entry.version)

    def lookup(self, subject: str, body: Any, deleted: bool) -> dict[str, Any]:
        """The version of `subject` that is this schema (POST /subjects/{subject})."""
        schema = self._parse_body(body)
        with self.topic.lock:
            entries = self._versions(subject, deleted)
            refs = _references(body)
            for entry in reversed(entries):
                if self._is(entry, schema, refs):
                    return self._version_body(entry)
        raise SchemaNotFound("Schema not found")

    def compatibility_check(
        self, subject: str, version: int | None, body: Any, verbose: bool
    ) -> dict[str, Any]:
        """POST /compatibility/subjects/{s}/versions[/{v}]: may `body` follow that version, or the level's?"""
        try:
            schema = self._parse_body(body)
        except InvalidSchema as error:
            if verbose:
                return {"is_compatible": False, "messages": [str(error)]}
            raise
        with self.topic.lock:
            level = self.state.compatibility(subject)
            if version is None or version == LATEST:
                entries = self.state.versions(subject)
                if version == LATEST:
                    entries = entries[-1:]
            else:
                entries = [self._version(subject, version, deleted=False)]
            previous = [self._parsed(self.state.schemas[e.schema_id]) for e in entries]
        found = compatibility.errors(level, schema, previous)
        answer: dict[str, Any] = {"is_compatible": not found}
        if verbose:
            answer["messages"] = found
        return answer

    def config(self, subject: str | None, default_to_global: bool) -> dict[str, Any]:
        with self.topic.lock:
            if subject is not None and subject not in self.state.configs and not default_to_global:
                raise SubjectConfigNotFound(
                    f"Subject '{subject}' does not have subject-level compatibility configured"
                )
            return {"compatibilityLevel": self.state.compatibility(subject)}

    def mode(self, subject: str | None, default_to_global: bool) -> dict[str, Any]:
        with self.topic.lock:
            if subject is not None and subject not in self.state.modes and not default_to_global:
                raise SubjectModeNotFound(f"Subject '{subject}' does not have subject-level mode configured")
            return {"mode": self.state.mode(subject)}

    # ---- writes ----

    def register(self, subject: str, body: Any) -> dict[str, Any]:
        """POST /subjects/{s}/versions: the id of this schema under `subject`, registering it if new."""
        schema = self._parse_body(body)
        refs = _references(body)
        with self._write_lock:
            for _ in range(WRITE_ATTEMPTS):
                self.topic.catch_up()
                with self.topic.lock:
                    decided = self._decide_registration(subject, schema, refs, body)
                if isinstance(decided, dict):
                    return decided
                version, schema_id = decided
                value = records.schema_value(
                    subject, version, schema_id, schema.canonical, schema.schema_type, refs, deleted=False
                )
                self.topic.append(records.schema_key(subject, version), value)
                with self.topic.lock:
                    entry = self.state.subjects.get(subject, {}).get(version)
                    if entry is not None and entry.schema_id == schema_id:
                        return {"id": schema_id}
                # Our record lost to an earlier one (for this key, or for this id under another key).
                # Compaction keeps only the last record of a key, so restate what the key holds now (the
                # winner, or a tombstone if nothing): an ignored record must not outlive the one that beat it.
                self.topic.catch_up()
                with self.topic.lock:
                    entry = self.state.subjects.get(subject, {}).get(version)
                    current = self._record_of(entry) if entry is not None else None
                self.topic.append(records.schema_key(subject, version), current)
        raise StoreError(f"could not register under {subject}: other registries kept writing first")

    def _decide_registration(
        self, subject: str, schema: ParsedSchema, refs: list[dict[str, Any]], body: dict[str, Any]
    ) -> dict[str, Any] | tuple[int, int]:
        """Either the answer (already registered) or the (version, id) to write."""
        mode = self.state.mode(subject)
        if mode in ("READONLY", "READONLY_OVERRIDE"):
            raise OperationNotPermitted(f"Subject {subject} is in read-only mode")
        all_entries = self.state.versions(subject, deleted=True)
        live = [e for e in all_entries if not e.deleted]
        for entry in live:
            if self._is(entry, schema, refs):
                return {"id": entry.schema_id}
        wanted_id = body.get("id")
        if mode == "IMPORT" and isinstance(wanted_id, int) and wanted_id > 0:
            known = self.state.schemas.get(wanted_id)
            if known is not None and not known.same_as(
                StoredSchema(schema.canonical, schema.schema_type, refs)
            ):
                raise OperationNotPermitted(f"Overwrite new schema with id {wanted_id} not permitted.")
            wanted_version = body.get("version")
            version = wanted_version if isinstance(wanted_version, int) and wanted_version > 0 else None
            if version is None:
                version = (all_entries[-1].version if all_entries else 0) + 1
            elif any(e.version == version for e in all_entries):
                raise OperationNotPermitted(f"Version {version} of {subject} already exists")
            return version, wanted_id
        if wanted_id is not None and mode != "IMPORT":
            raise OperationNotPermitted("A schema id can only be given in IMPORT mode")
        level = self.state.compatibility(subject)
        previous = [self._parsed(self.state.schemas[e.schema_id]) for e in live]
        found = compatibility.errors(level, schema, previous)
        if found:
            raise IncompatibleSchema(
                f'Schema being registered is incompatible with an earlier schema for subject "{subject}"; '
                + "; ".join(found)
            )
        schema_id = self._id_of(StoredSchema(schema.canonical, schema.schema_type, refs))
        version = (all_entries[-1].version if all_entries else 0) + 1
        return version, schema_id

    def delete_version(self, subject: str, version: int, permanent: bool) -> int:
        with self._write_lock:
            self.topic.catch_up()
            with self.topic.lock:
                self._writable(subject)
                # `latest` names the latest live version; a number may name a soft-deleted one (40406).
                entry = self._version(subject, version, deleted=version != LATEST)
                if permanent and not entry.deleted:
                    raise VersionNotSoftDeleted(
                        f"Subject '{subject}' Version {entry.version} was not deleted first before being"
                        " permanently deleted"
                    )
                if not permanent and entry.deleted:
                    raise VersionSoftDeleted(f"Subject '{subject}' Version {entry.version} was soft deleted")
                if self.state.referenced_by(subject, entry.version):
                    raise ReferenceExists(
                        f"Subject '{subject}' Version {entry.version} is referenced by a schema"
                    )
                value = self._record_of(SchemaVersion(subject, entry.version, entry.schema_id, deleted=True))
            self.topic.append(records.schema_key(subject, entry.version), None if permanent else value)
            return entry.version

    def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        with self._write_lock:
            self.topic.catch_up()
            with self.topic.lock:
                self._writable(subject)
                entries = self.state.versions(subject, deleted=True)
                if not entries:
                    raise SubjectNotFound(f"Subject '{subject}' not found.")
                live = [e for e in entries if not e.deleted]
                if permanent and live:
                    raise SubjectNotSoftDeleted(
                        f"Subject '{subject}' was not deleted first before being permanently deleted"
                    )
                if not permanent and not live:
                    raise SubjectSoftDeleted(
                        f"Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
                    )
                for entry in live:
                    if self.state.referenced_by(subject, entry.version):
                        raise ReferenceExists(
                            f"Subject '{subject}' Version {entry.version} is referenced by a schema"
                        )
                has_config = subject in self.state.configs
                has_mode = subject in self.state.modes
            if not permanent:
                self.topic.append(
                    records.delete_subject_key(subject),
                    records.delete_subject_value(subject, entries[-1].version),
                )
                return [e.version for e in live]
            for entry in reversed(entries):
                self.topic.append(records.schema_key(subject, entry.version), None)
            if has_config:
                self.topic.append(records.config_key(subject), None)
            if has_mode:
                self.topic.append(records.mode_key(subject), None)
            return [e.version for e in entries]

    def set_config(self, subject: str | None, body: Any) -> dict[str, Any]:
        level = body.get("compatibility") if isinstance(body, dict) else None
        if not isinstance(level, str) or level.upper() not in LEVELS:
            raise InvalidCompatibilityLevel(
                f"Invalid compatibility level {level!r}. Valid values are {', '.join(LEVELS)}"
            )
        with self._write_lock:
            self.topic.catch_up()
            with self.topic.lock:
                if subject is not None:
                    self._writable(subject)
            self.topic.append(records.config_key(subject), records.config_value(subject, level.upper()))
        return {"compatibility": level.upper()}

    def delete_config(self, subject: str | None) -> dict[str, Any]:
        with self._write_lock:
            self.topic.catch_up()
            with self.topic.lock:
                if subject is not None and subject not in self.state.configs:
                    raise SubjectNotFound(f"Subject '{subject}' not found.")
                old = self.state.compatibility(subject)
            self.topic.append(records.config_key(subject), None)
        return {"compatibilityLevel": old}

    def set_mode(self, subject: str | None, body: Any, force: bool) -> dict[str, Any]:
        mode = body.get("mode") if isinstance(body, dict) else None
        if not isinstance(mode, str) or mode.upper() not in MODES:
            raise InvalidMode(f"Invalid mode {mode!r}. Valid values are {', '.join(MODES)}")
        mode = mode.upper()
        with self._write_lock:
            self.topic.catch_up()
            with self.topic.lock:
                scope_has_schemas = bool(
                    self.state.versions(subject) if subject is not None else self.state.subjects
                )
            if mode == "IMPORT" and scope_has_schemas and not force:
                raise OperationNotPermitted(
                    "Cannot import since found existing subjects; use force=true to switch to IMPORT anyway"
                )
            self.topic.append(records.mode_key(subject), records.mode_value(subject, mode))
        return {"mode": mode}

    def delete_mode(self, subject: str | None) -> dict[str, Any]:
        with self._write_lock:
            self.topic.catch_up()
            with self.topic.lock:
                if subject is not None and subject not in self.state.modes:
                    raise SubjectNotFound(f"Subject '{subject}' not found.")
                old = self.state.mode(subject)
            self.topic.append(records.mode_key(subject), None)
        return {"mode": old}

    # ---- inside (callers hold topic.lock) ----

    def _stored(self, schema_id: int) -> StoredSchema:
        stored = self.state.schemas.get(schema_id)
        if stored is None:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        return stored

    def _versions(self, subject: str, deleted: bool) -> list[SchemaVersion]:
        entries = self.state.versions(subject, deleted)
        if not entries:
            raise SubjectNotFound(f"Subject '{subject}' not found.")
        return entries

    def _version(self, subject: str, version: int, deleted: bool) -> SchemaVersion:
        entries = self._versions(subject, deleted)
        if version == LATEST:
            return entries[-1]
        for entry in entries:
            if entry.version == version:
                return entry
        raise VersionNotFound(f"Version {version} not found.")

    def _version_body(self, entry: SchemaVersion) -> dict[str, Any]:
        body = {"subject": entry.subject, "version": entry.version, "id": entry.schema_id}
        body.update(_schema_body(self.state.schemas[entry.schema_id]))
        return body

    def _record_of(self, entry: SchemaVersion) -> bytes:
        stored = self.state.schemas[entry.schema_id]
        return records.schema_value(
            entry.subject,
            entry.version,
            entry.schema_id,
            stored.schema,
            stored.schema_type,
            stored.references,
            entry.deleted,
        )

    def _writable(self, subject: str) -> None:
        if self.state.mode(subject) in ("READONLY", "READONLY_OVERRIDE"):
            raise OperationNotPermitted(f"Subject {subject} is in read-only mode")

    def _is(self, entry: SchemaVersion, schema: ParsedSchema, refs: list[dict[str, Any]]) -> bool:
        return self.state.schemas[entry.schema_id].same_as(
            StoredSchema(schema.canonical, schema.schema_type, refs)
        )

    def _id_of(self, wanted: StoredSchema) -> int:
        """The id this schema already has anywhere in the registry, else the next free one."""
        for schema_id, stored in self.state.schemas.items():
            if stored.same_as(wanted):
                return schema_id
        return self.state.max_id + 1

    def _parsed(self, stored: StoredSchema) -> ParsedSchema:
        return compatibility.parse(
            stored.schema_type, stored.schema, self._reference_texts(stored.references, [])
        )

    def _reference_texts(self, refs: list[dict[str, Any]], path: list[tuple[str, int]]) -> list[str]:
        """The texts of `refs` and of what they reference, dependencies first; a cycle is invalid."""
        texts: list[str] = []
        for ref in refs:
            subject, version = ref.get("subject"), ref.get("version")
            if not isinstance(subject, str) or not isinstance(version, int):
                raise InvalidSchema(
                    f"Invalid schema: reference {ref!r} needs a subject and an integer version"
                )
            if (subject, version) in path:
                raise InvalidSchema(f"Invalid schema: reference cycle through {subject} version {version}")
            try:
                entry = self._version(subject, version, deleted=False)
            except (SubjectNotFound, VersionNotFound):
                raise InvalidSchema(
                    f"Invalid schema: reference {ref.get('name')!r} names {subject} version {version}, which"
                    " does not exist"
                ) from None
            stored = self.state.schemas[entry.schema_id]
            texts += self._reference_texts(stored.references, [*path, (subject, version)])
            texts.append(stored.schema)
        return texts

    def _parse_body(self, body: Any) -> ParsedSchema:
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            raise InvalidSchema('Invalid schema: the body needs a "schema" string')
        text: str = body["schema"]
        if len(text) > MAX_SCHEMA_CHARS:
            raise SchemaTooLarge(f"Schema of {len(text)} characters exceeds the limit of {MAX_SCHEMA_CHARS}")
        schema_type = body.get("schemaType") or "AVRO"
        refs = _references(body)
        with self.topic.lock:
            texts = self._reference_texts(refs, [])
        return compatibility.parse(str(schema_type).upper(), text, texts)


def _references(body: dict[str, Any]) -> list[dict[str, Any]]:
    refs = body.get("references") or []
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise InvalidSchema("Invalid schema: references must be a list of {name, subject, version}")
    return [{"name": r.get("name"), "subject": r.get("subject"), "version": r.get("version")} for r in refs]


def _schema_body(stored: StoredSchema) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": stored.schema}
    if stored.schema_type != "AVRO":
        body["schemaType"] = stored.schema_type
    if stored.references:
        body["references"] = stored.references
    return body
