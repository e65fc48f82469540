"""JSON Schema compatibility: may data valid under the writer's schema be read (validated) by the reader's?

Confluent's registry diffs the old schema against the new one and accepts the change only if every difference
is of a kind it lists as compatible (`json-schema-provider/.../json/diff/`, STRICT policy). This module walks
both schemas the same way and reports the differences that are not: a reader must accept at least what the
writer accepted. The content model decides what added or removed properties mean:
- open (`additionalProperties` absent or true): the writer may have written any extra property, so the reader
  may not add a property (it would constrain data written as "extra"), but may drop one;
- closed (`additionalProperties: false`): the writer wrote no extras, so the reader may add properties, and
  may drop one only if the writer's schema for it was `false`;
- partially open (`additionalProperties` is a schema): an added or dropped property must agree with it.
Local `$ref`s (`#/definitions/...`, `#/$defs/...`) are followed; recursion through them stops on a revisit.
"""

from __future__ import annotations

from typing import Any

UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
TYPES = ("null", "boolean", "object", "array", "number", "string", "integer")


def reader_errors(reader: Any, writer: Any) -> list[str]:
    """Why data valid under `writer` may fail `reader` (empty: it may not), by Confluent's STRICT rules."""
    return _Diff(reader, writer).check(reader, writer, "#")


class _Diff:
    def __init__(self, reader_root: Any, writer_root: Any) -> None:
        self.reader_root = reader_root
        self.writer_root = writer_root
        self.seen: set[tuple[int, int]] = set()

    def resolve(self, schema: Any, root: Any) -> Any:
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if not isinstance(ref, str) or not ref.startswith("#"):
            return schema
        target = root
        for part in ref.lstrip("#").strip("/").split("/"):
            if not part:
                continue
            if not isinstance(target, dict) or part not in target:
                return schema
            target = target[part]
        return target

    def check(self, reader: Any, writer: Any, path: str) -> list[str]:
        reader = self.resolve(reader, self.reader_root)
        writer = self.resolve(writer, self.writer_root)
        if writer is False or reader is True or reader == {}:
            return []
        if reader is False:
            return [f"{path}: the reader accepts nothing"]
        if writer is True:
            writer = {}
        pair = (id(reader), id(writer))
        if pair in self.seen:
            return []
        self.seen.add(pair)
        errors = self.check_combined(reader, writer, path)
        if errors is not None:
            return errors
        errors = self.check_types(reader, writer, path)
        errors += self.check_values(reader, writer, path)
        errors += self.check_object(reader, writer, path)
        if "items" in reader:
            if "items" not in writer:
                errors.append(f"{path}: items schema added")
            elif isinstance(reader["items"], list) or isinstance(writer["items"], list):
                if reader["items"] != writer["items"]:
                    errors.append(f"{path}: tuple items changed")
            else:
                errors += self.check(reader["items"], writer["items"], f"{path}/items")
        return errors

    def check_combined(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str] | None:
        """oneOf/anyOf as sum types: every writer branch is read by some reader branch. None: not a sum."""
        keyword = next((k for k in ("oneOf", "anyOf") if k in reader), None)
        writer_keyword = next((k for k in ("oneOf", "anyOf") if k in writer), None)
        if keyword is None and writer_keyword is None:
            if reader.get("allOf") != writer.get("allOf") or reader.get("not") != writer.get("not"):
                return [f"{path}: combined subschemas changed"]
            return None
        writer_branches = writer[writer_keyword] if writer_keyword else [writer]
        reader_branches = reader[keyword] if keyword else [reader]
        errors = []
        for index, branch in enumerate(writer_branches):
            if all(self.check(option, branch, f"{path}/{keyword}") for option in reader_branches):
                errors.append(f"{path}: writer branch {index} is matched by no reader branch")
        return errors

    def check_types(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
        reader_types = _types(reader)
        writer_types = _types(writer)
        widened = reader_types | ({"integer"} if "number" in reader_types else set())
        lost = writer_types - widened
        return [f"{path}: type narrowed, {sorted(lost)} no longer accepted"] if lost else []

    def check_values(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
        errors = []
        for bound in UPPER_BOUNDS:
            if bound in reader and (bound not in writer or reader[bound] < writer[bound]):
                errors.append(f"{path}: {bound} added or decreased")
        for bound in LOWER_BOUNDS:
            if bound in reader and (bound not in writer or reader[bound] > writer[bound]):
                errors.append(f"{path}: {bound} added or increased")
        if "pattern" in reader and reader["pattern"] != writer.get("pattern"):
            errors.append(f"{path}: pattern added or changed")
        if "multipleOf" in reader:
            old = writer.get("multipleOf")
            if old is None or old % reader["multipleOf"] != 0:
                errors.append(f"{path}: multipleOf added or not a divisor of the old one")
        if "enum" in reader and not all(value in reader["enum"] for value in writer.get("enum", [object()])):
            errors.append(f"{path}: enum narrowed")
        if "const" in reader and reader["const"] != writer.get("const"):
            errors.append(f"{path}: const added or changed")
        if reader.get("uniqueItems") and not writer.get("uniqueItems"):
            errors.append(f"{path}: uniqueItems added")
        return errors

    def check_object(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
        errors = []
        reader_props: dict[str, Any] = reader.get("properties", {})
        writer_props: dict[str, Any] = writer.get("properties", {})
        reader_extra = _additional(reader)
        writer_extra = _additional(writer)
        for name, schema in reader_props.items():
            where = f"{path}/properties/{name}"
            if name in writer_props:
                errors += self.check(schema, writer_props[name], where)
            elif writer_extra is True:
                errors.append(f"{where}: property added to an open content model")
            elif writer_extra is not False:
                errors += self.check(schema, writer_extra, where)
        for name, schema in writer_props.items():
            if name not in reader_props and reader_extra is not True:
                where = f"{path}/properties/{name}"
                if reader_extra is False:
                    if schema is not False:
                        errors.append(f"{where}: property removed from a closed content model")
                else:
                    errors += self.check(reader_extra, schema, where)
        if writer_extra is True and reader_extra is not True:
            errors.append(f"{path}: additionalProperties narrowed")
        elif writer_extra is not False and reader_extra is not True:
            errors += self.check(reader_extra, writer_extra, f"{path}/additionalProperties")
        for name in set(reader.get("required", [])) - set(writer.get("required", [])):
            prop = reader_props.get(name)
            if not (isinstance(prop, dict) and "default" in prop):
                errors.append(f"{path}: required property {name} added")
        return errors


def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    if kind is None:
        return set(TYPES)
    return {kind} if isinstance(kind, str) else set(kind)


def _additional(schema: dict[str, Any]) -> Any:
    """True (open), False (closed) or the schema extra properties must follow (partially open)."""
    extra = schema.get("additionalProperties", True)
    if "patternProperties" in schema and extra is True:
        return {}  # partially open: Confluent treats pattern properties as a (lenient) schema for extras
    return True if extra == {} else extra
