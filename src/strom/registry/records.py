"""The records of the `_schemas` topic, byte-compatible with Confluent Schema Registry's.

The topic is compacted, so a key must always serialise to the same bytes: keys are compact JSON with the field
order Confluent writes (`keytype`, `subject`, `version`, `magic`). Values are JSON objects; a null value is a
tombstone (permanent delete).

| keytype        | key fields                     | value                                                   |
| SCHEMA         | subject, version, magic=1      | subject, version, id, schema, deleted, schemaType?, refs?|
| CONFIG         | subject (null: global), magic=0 | compatibilityLevel, subject?                           |
| MODE           | subject (null: global), magic=0 | mode, subject?                                         |
| DELETE_SUBJECT | subject, magic=0               | subject, version (the highest version deleted)          |
| NOOP           | magic=0                        | null (written by Confluent to learn the end offset)     |

Records of a key type we do not know (Confluent's CONTEXT, ASSOC, ...) are skipped, so a topic shared with a
newer Confluent registry stays readable.
"""

from __future__ import annotations

import json
from typing import Any


def _compact(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def schema_key(subject: str, version: int) -> bytes:
    return _compact({"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1})


def config_key(subject: str | None) -> bytes:
    return _compact({"keytype": "CONFIG", "subject": subject, "magic": 0})


def mode_key(subject: str | None) -> bytes:
    return _compact({"keytype": "MODE", "subject": subject, "magic": 0})


def delete_subject_key(subject: str) -> bytes:
    return _compact({"keytype": "DELETE_SUBJECT", "subject": subject, "magic": 0})


def schema_value(
    subject: str,
    version: int,
    schema_id: int,
    schema: str,
    schema_type: str,
    references: list[dict[str, Any]],
    deleted: bool,
) -> bytes:
    value: dict[str, Any] = {
        "subject": subject,
        "version": version,
        "id": schema_id,
        "schema": schema,
        "deleted": deleted,
    }
    if schema_type != "AVRO":
        value["schemaType"] = schema_type
    if references:
        value["references"] = references
    return _compact(value)


def config_value(subject: str | None, level: str) -> bytes:
    value: dict[str, Any] = {"compatibilityLevel": level}
    if subject is not None:
        value["subject"] = subject
    return _compact(value)


def mode_value(subject: str | None, mode: str) -> bytes:
    value: dict[str, Any] = {"mode": mode}
    if subject is not None:
        value["subject"] = subject
    return _compact(value)


def delete_subject_value(subject: str, version: int) -> bytes:
    return _compact({"subject": subject, "version": version})


def decode(data: bytes | None) -> Any:
    """A key or value as JSON (None for a tombstone value); ValueError for bytes that are not JSON."""
    return None if data is None else json.loads(data)
