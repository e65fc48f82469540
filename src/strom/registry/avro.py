"""Avro schemas: parsing (with fastavro) and the reader/writer compatibility check Confluent uses.

Confluent Schema Registry asks Apache Avro's `SchemaCompatibility.checkReaderWriterCompatibility` whether data
written with one schema can be read with another; this module answers the same question by Avro's schema
resolution rules: fields matched by name or reader alias, a reader-only field needs a default, the numeric and
string/bytes promotions, enum symbols (unless the reader has an enum default), fixed sizes, union branches,
and named types matched by simple name or reader alias. Logical types are ignored, as Avro's checker does. The
checker returns readable messages; an empty list means compatible.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import fastavro
from fastavro.schema import SchemaParseException, UnknownType

from strom.registry.errors import InvalidSchema

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})

# Writer type -> reader types that can read it (Avro spec, "Schema Resolution").
PROMOTIONS: Mapping[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


class AvroSchema:
    """A parsed Avro schema: `root` as fastavro expands it and `names`, every named type by full name."""

    __slots__ = ("names", "root")

    def __init__(self, root: Any, names: dict[str, Any]) -> None:
        self.root = root
        self.names = names


def parse(text: str, references: list[str]) -> AvroSchema:
    """Parse `text`, with the schemas it references (their texts, dependencies first) providing named types.

    Raises InvalidSchema with fastavro's reason when the text is not JSON or not a valid Avro schema.
    """
    names: dict[str, Any] = {}
    try:
        for referenced in references:
            fastavro.parse_schema(json.loads(referenced), named_schemas=names, _write_hint=False)
        document = json.loads(text)
        _require_fields(document)
        root = fastavro.parse_schema(document, named_schemas=names, _write_hint=False)
    except json.JSONDecodeError as error:
        raise InvalidSchema(f"Invalid schema: not JSON: {error}") from None
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError, AttributeError) as error:
        raise InvalidSchema(f"Invalid schema: {type(error).__name__}: {error}") from None
    return AvroSchema(root, names)


def _require_fields(schema: Any) -> None:
    """Refuse a record without `fields`, as Avro does (fastavro would read it as a record with none)."""
    if isinstance(schema, list):
        for branch in schema:
            _require_fields(branch)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "error"):
            if not isinstance(schema.get("fields"), list):
                raise InvalidSchema(f"Invalid schema: record {schema.get('name')!r} has no fields list")
            for field in schema["fields"]:
                if isinstance(field, dict):
                    _require_fields(field.get("type"))
        elif isinstance(schema.get("type"), (dict, list)):
            _require_fields(schema["type"])
        _require_fields(schema.get("items"))
        _require_fields(schema.get("values"))


def canonical(document: Any) -> str:
    """The text Confluent's registry stores and compares: Avro's `Schema.toString()` of the parsed schema.

    Two texts name the same schema (and get one id) when they differ only in spacing, attribute order, a
    full name versus name plus namespace, a namespace repeated from the enclosing type, `{"type": P}` versus
    `P`, or an `"order": "ascending"`; `doc`, aliases, defaults and other attributes (`logicalType`, custom
    properties) stay, since Avro keeps them and Confluent gives a schema that differs in them a new id.
    `document` must be a valid schema (the caller parses the result).
    """
    return json.dumps(_AvroJson().write(document, None), separators=(",", ":"))


# Attributes Avro writes in a fixed place per kind; any other attribute is a property, kept in its order.
_PLACED = {
    "record": ("type", "name", "namespace", "doc", "fields", "aliases"),
    "enum": ("type", "name", "namespace", "doc", "symbols", "aliases", "default"),
    "fixed": ("type", "name", "namespace", "doc", "size", "aliases"),
    "array": ("type", "items"),
    "map": ("type", "values"),
}
_FIELD_PLACED = ("name", "type", "doc", "default", "order", "aliases")


class _AvroJson:
    """Writes a schema as Avro's `Schema.toJson` does; `defined` holds the full names written so far."""

    def __init__(self) -> None:
        self.defined: set[str] = set()

    def write(self, schema: Any, space: str | None) -> Any:
        if isinstance(schema, list):
            return [self.write(branch, space) for branch in schema]
        if isinstance(schema, str):
            return schema if schema in PRIMITIVES else self.reference(schema, space)
        kind = schema["type"]
        if kind in PRIMITIVES:
            props = {key: value for key, value in schema.items() if key != "type"}
            return {"type": kind, **props} if props else kind
        if kind not in _PLACED and kind != "error":  # {"type": <a schema or a named type>}
            return self.write(kind, space)
        placed = _PLACED["record" if kind == "error" else kind]
        out: dict[str, Any] = {"type": kind}
        own_space = space
        if "name" in placed:
            full = _full_name(schema["name"], schema.get("namespace"), space)
            self.defined.add(full)
            own_space, _, simple = full.rpartition(".")
            own_space = own_space or None
            out["name"] = simple
            if own_space != space:
                out["namespace"] = own_space or ""
            if "doc" in schema:
                out["doc"] = schema["doc"]
        if kind in ("record", "error"):
            out["fields"] = [self.field(field, own_space) for field in schema["fields"]]
        elif kind == "enum":
            out["symbols"] = schema["symbols"]
        elif kind == "fixed":
            out["size"] = schema["size"]
        elif kind == "array":
            out["items"] = self.write(schema["items"], space)
        else:
            out["values"] = self.write(schema["values"], space)
        out.update((key, value) for key, value in schema.items() if key not in placed)
        if schema.get("aliases"):
            out["aliases"] = [_relative(_full_name(a, None, own_space), own_space) for a in schema["aliases"]]
        if kind == "enum" and "default" in schema:
            out["default"] = schema["default"]
        return out

    def field(self, field: dict[str, Any], space: str | None) -> dict[str, Any]:
        out = {"name": field["name"], "type": self.write(field["type"], space)}
        for key in ("doc", "default"):
            if key in field:
                out[key] = field[key]
        if field.get("order", "ascending") != "ascending":
            out["order"] = field["order"]
        out.update((key, value) for key, value in field.items() if key not in _FIELD_PLACED)
        if field.get("aliases"):
            out["aliases"] = field["aliases"]
        return out

    def reference(self, name: str, space: str | None) -> str:
        """A named type used by name: Avro looks it up in the enclosing namespace first, then as given."""
        full = _full_name(name, None, space)
        if full not in self.defined and "." not in name:
            full = name
        return _relative(full, space)


def _full_name(name: str, namespace: str | None, space: str | None) -> str:
    if "." in name:
        return name
    scope = namespace if namespace is not None else space
    return f"{scope}.{name}" if scope else name


def _relative(full: str, space: str | None) -> str:
    """Avro's `Name.getQualified`: the simple name inside its own namespace, the full name elsewhere."""
    scope, _, simple = full.rpartition(".")
    return simple if scope and scope == space else full


def reader_errors(reader: AvroSchema, writer: AvroSchema) -> list[str]:
    """Why data written with `writer` cannot be read with `reader` (empty: it can)."""
    return _Resolution(reader.names, writer.names).check(reader.root, writer.root, "/")


class _Resolution:
    """One reader/writer comparison; `seen` stops the recursion through recursive named types."""

    def __init__(self, reader_names: dict[str, Any], writer_names: dict[str, Any]) -> None:
        self.reader_names = reader_names
        self.writer_names = writer_names
        self.seen: set[tuple[str, str]] = set()

    def resolve(self, schema: Any, names: dict[str, Any]) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return names[schema]
        return schema

    def check(self, reader: Any, writer: Any, path: str) -> list[str]:
        reader = self.resolve(reader, self.reader_names)
        writer = self.resolve(writer, self.writer_names)
        if isinstance(writer, list):
            errors = []
            for branch in writer:
                errors += self.check(reader, branch, path)
            return errors
        if isinstance(reader, list):
            for branch in reader:
                if not self.check(branch, writer, path):
                    return []
            return [f"{path}: reader union {_describe(reader)} lacks a branch for writer {_describe(writer)}"]
        reader_type, writer_type = _type_of(reader), _type_of(writer)
        if reader_type != writer_type:
            if reader_type in PROMOTIONS.get(writer_type, frozenset()):
                return []
            return [f"{path}: reader type {reader_type} cannot read writer type {writer_type}"]
        if reader_type in PRIMITIVES:
            return []
        if reader_type == "array":
            return self.check(reader["items"], writer["items"], f"{path}items/")
        if reader_type == "map":
            return self.check(reader["values"], writer["values"], f"{path}values/")
        if not _names_match(reader, writer):
            return [f"{path}: reader {reader['name']} does not name writer {writer['name']} nor alias it"]
        if reader_type == "fixed":
            if reader["size"] != writer["size"]:
                return [
                    f"{path}: fixed {reader['name']} size {reader['size']} != writer size {writer['size']}"
                ]
            return []
        if reader_type == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                return [f"{path}: reader enum {reader['name']} lacks writer symbols {missing}"]
            return []
        return self.check_record(reader, writer, path)

    def check_record(self, reader: Any, writer: Any, path: str) -> list[str]:
        pair = (reader["name"], writer["name"])
        if pair in self.seen:
            return []
        self.seen.add(pair)
        writer_fields = {field["name"]: field for field in writer["fields"]}
        errors = []
        for field in reader["fields"]:
            names = [field["name"], *field.get("aliases", [])]
            written = next((writer_fields[name] for name in names if name in writer_fields), None)
            if written is not None:
                errors += self.check(field["type"], written["type"], f"{path}{field['name']}/")
            elif "default" not in field:
                errors.append(f"{path}: reader field {field['name']} is not written and has no default")
        return errors


def _type_of(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    kind: str = schema["type"]
    return "record" if kind == "error" else kind


def _simple(name: str) -> str:
    return name.rpartition(".")[2]


def _names_match(reader: Mapping[str, Any], writer: Mapping[str, Any]) -> bool:
    """Avro compares simple names, or the writer's full name with the reader's namespace-qualified aliases."""
    if _simple(reader["name"]) == _simple(writer["name"]):
        return True
    namespace = reader["name"].rpartition(".")[0]
    aliases = {
        alias if "." in alias or not namespace else f"{namespace}.{alias}"
        for alias in reader.get("aliases", [])
    }
    return writer["name"] in aliases or _simple(writer["name"]) in reader.get("aliases", [])


def _describe(schema: Any) -> str:
    if isinstance(schema, list):
        return "[" + ", ".join(_describe(branch) for branch in schema) + "]"
    return _type_of(schema) if not isinstance(schema, dict) or "name" not in schema else schema["name"]
