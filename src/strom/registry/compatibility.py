"""Compatibility levels and which schema reads which: the rule Confluent applies before accepting a version.

BACKWARD: the new schema reads data written with the latest live version. FORWARD: the latest version reads
data written with the new one. FULL: both. The `_TRANSITIVE` levels apply the same rule to every live version,
newest first; NONE checks nothing. Versions of another schema type are always incompatible, as in Confluent's
registry. The per-type question ("can reader read writer?") lives in the module of each type: `avro` and
`json_schema`.
"""

from __future__ import annotations

import json
from typing import Any

from strom.registry import avro, json_schema
from strom.registry.errors import InvalidSchema

LEVELS = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)

SCHEMA_TYPES = ("AVRO", "JSON")


class ParsedSchema:
    """A valid schema: its type, the canonical text stored and compared, and the parsed form."""

    __slots__ = ("canonical", "parsed", "schema_type")

    def __init__(self, schema_type: str, canonical: str, parsed: Any) -> None:
        self.schema_type = schema_type
        self.canonical = canonical
        self.parsed = parsed


def parse(schema_type: str, text: str, references: list[str]) -> ParsedSchema:
    """Validate `text` as a `schema_type` schema; `references` are the texts it refers to, dependencies first.

    The canonical text is what is stored and compared, so a schema written otherwise registers as the same
    schema, with the same id. JSON Schema: the JSON, compact and in its own key order. Avro: the text Avro's
    `Schema.toString()` gives, which Confluent's registry stores and compares (see `avro.canonical`).
    """
    if schema_type not in SCHEMA_TYPES:
        raise InvalidSchema(
            f"Invalid schema type {schema_type!r}: this registry accepts {', '.join(SCHEMA_TYPES)}"
        )
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, TypeError) as error:
        raise InvalidSchema(f"Invalid schema: not JSON: {error}") from None
    if schema_type == "AVRO":
        parsed = avro.parse(text, references)  # validates before canonical() walks the document
        return ParsedSchema(schema_type, avro.canonical(document), parsed)
    canonical = json.dumps(document, separators=(",", ":"))
    if not isinstance(document, (dict, bool)):
        raise InvalidSchema("Invalid schema: a JSON Schema is an object or a boolean")
    return ParsedSchema(schema_type, canonical, document)


def reader_errors(reader: ParsedSchema, writer: ParsedSchema) -> list[str]:
    """Why data written with `writer` cannot be read with `reader`; empty when it can."""
    if reader.schema_type != writer.schema_type:
        return [f"schema type {reader.schema_type} cannot read {writer.schema_type}"]
    if reader.schema_type == "AVRO":
        return avro.reader_errors(reader.parsed, writer.parsed)
    return json_schema.reader_errors(reader.parsed, writer.parsed)


def errors(level: str, new: ParsedSchema, previous: list[ParsedSchema]) -> list[str]:
    """Why `new` may not follow `previous` (live versions, oldest first) under `level`; empty when it may."""
    if level == "NONE" or not previous:
        return []
    against = list(reversed(previous)) if level.endswith("_TRANSITIVE") else [previous[-1]]
    found: list[str] = []
    for old in against:
        if level.startswith(("BACKWARD", "FULL")):
            found += reader_errors(new, old)
        if level.startswith(("FORWARD", "FULL")):
            found += reader_errors(old, new)
    return found
