"""JSON Schema compatibility verdicts (BACKWARD: the new schema reads data valid under the old one).

Sources (STRICT policy, old -> new):
- EX: confluentinc/schema-registry `json-schema-provider/src/test/resources/diff-schema-examples.json`, the
  cases quoted in ../shared/reference/schema-registry.md section 5;
- RULE: Confluent's classification of each `Difference.Type` as compatible or not
  (`json-schema-provider/.../json/diff/`, summarised in section 4.3 of the same note).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from strom.registry import compatibility

OPEN_FOO = {"type": "object", "properties": {"foo": {"type": "string"}}}
CLOSED_FOO = {**OPEN_FOO, "additionalProperties": False}
PARTIAL_FOO = {**OPEN_FOO, "additionalProperties": {"type": "string"}}
BAR = {"bar": {"type": "string"}}
STRING = {"type": "string"}

CASES = [
    # (old, new, compatible, source)
    ({"type": "object"}, {"type": "array"}, False, "EX: type changed"),
    ({"type": "integer"}, {"type": "number"}, True, "EX: type extended: integer to number"),
    ({"type": "number"}, {"type": "integer"}, False, "EX: type narrowed: number to integer"),
    ({"type": "string", "maxLength": 10}, {"type": "string", "maxLength": 12},
     True, "EX: maxLength increased"),
    ({"type": "string", "maxLength": 12}, {"type": "string", "maxLength": 10},
     False, "EX: maxLength decreased"),
    ({"type": "string"}, {"type": "string", "maxLength": 10}, False, "RULE: maxLength added"),
    ({"type": "string", "maxLength": 10}, {"type": "string"}, True, "RULE: maxLength removed"),
    ({"type": "number", "minimum": 10}, {"type": "number", "minimum": 11}, False, "EX: minimum increased"),
    ({"type": "number", "minimum": 11}, {"type": "number", "minimum": 10}, True, "EX: minimum decreased"),
    (OPEN_FOO, {**OPEN_FOO, "properties": {**OPEN_FOO["properties"], **BAR}}, False,
     "EX: property added to open content model"),
    (CLOSED_FOO, {**CLOSED_FOO, "properties": {**CLOSED_FOO["properties"], **BAR}}, True,
     "EX: optional property added to closed content model"),
    (PARTIAL_FOO, {**PARTIAL_FOO, "properties": {**PARTIAL_FOO["properties"], **BAR}}, True,
     "EX: property added to partially open content model, covered by additionalProperties"),
    (PARTIAL_FOO, {**PARTIAL_FOO, "properties": {**PARTIAL_FOO["properties"], "bar": {"type": "number"}}},
     False, "EX: property added to partially open content model, not covered"),
    ({**OPEN_FOO, "properties": {**OPEN_FOO["properties"], **BAR}}, OPEN_FOO, True,
     "RULE: property removed from open content model"),
    ({**CLOSED_FOO, "properties": {**CLOSED_FOO["properties"], **BAR}}, CLOSED_FOO, False,
     "RULE: property removed from closed content model"),
    ({**CLOSED_FOO, "properties": {**CLOSED_FOO["properties"], "bar": False}}, CLOSED_FOO, True,
     "RULE: a false-schema property removed from a closed content model"),
    ({**OPEN_FOO, "required": ["foo"]}, OPEN_FOO, True, "EX: required attribute removed"),
    (OPEN_FOO, {**OPEN_FOO, "required": ["foo"]}, False, "EX: required attribute added"),
    (OPEN_FOO, {**OPEN_FOO, "properties": {"foo": {"type": "string", "default": "x"}}, "required": ["foo"]},
     True, "RULE: required attribute added with a default"),
    ({**OPEN_FOO, "additionalProperties": True}, CLOSED_FOO, False, "EX: additionalProperties true to false"),
    (CLOSED_FOO, OPEN_FOO, True, "EX: additionalProperties false to absent"),
    (PARTIAL_FOO, OPEN_FOO, True, "RULE: additionalProperties extended"),
    (OPEN_FOO, PARTIAL_FOO, False, "RULE: additionalProperties narrowed"),
    ({"enum": ["red"]}, {"enum": ["red", "blue"]}, True, "EX: enum extended"),
    ({"enum": ["red", "blue"]}, {"enum": ["red"]}, False, "RULE: enum narrowed"),
    ({"type": "string"}, {"oneOf": [{"type": "number"}, {"type": "string"}]}, True, "EX: sum type extended"),
    ({"oneOf": [{"type": "string"}]}, {"oneOf": [{"type": "number"}]}, False, "EX: sum type changed"),
    ({"oneOf": [{"type": "string"}, {"type": "number"}]}, {"oneOf": [{"type": "string"}]}, False,
     "RULE: sum type narrowed"),
    ({"type": "array"}, {"type": "array", "items": {"type": "string"}}, False, "EX: items schema added"),
    ({"type": "array", "items": {"type": "string"}}, {"type": "array"}, True, "RULE: items schema removed"),
    ({"type": "array", "items": {"type": "integer"}}, {"type": "array", "items": {"type": "number"}}, True,
     "RULE: array items extended"),
    ({"type": "number", "multipleOf": 10}, {"type": "number", "multipleOf": 2}, True,
     "EX: multipleOf reduced to a divisor"),
    ({"type": "number", "multipleOf": 10}, {"type": "number", "multipleOf": 11},
     False, "EX: multipleOf changed"),
    ({"type": "string", "pattern": "^a"}, {"type": "string"}, True, "RULE: pattern removed"),
    ({"type": "string", "pattern": "^a"}, {"type": "string", "pattern": "^b"},
     False, "RULE: pattern changed"),
    ({"type": "array", "uniqueItems": True}, {"type": "array"}, True, "RULE: uniqueItems removed"),
    ({"type": "array"}, {"type": "array", "uniqueItems": True}, False, "RULE: uniqueItems added"),
    ({"type": "string", "title": "a", "description": "x"}, {"type": "string", "title": "b"}, True,
     "RULE: title and description changed"),
    ({"type": "object", "properties": {"foo": {"type": "string"}}},
     {"type": "object", "properties": {"foo": {"type": "integer"}}}, False, "RULE: property type changed"),
    ({"type": "object", "properties": {"a": {"$ref": "#/definitions/s"}}, "definitions": {"s": STRING}},
     {"type": "object", "properties": {"a": STRING}}, True, "RULE: a $ref with identical content"),
]  # fmt: skip


def json_schema(document: Any) -> compatibility.ParsedSchema:
    return compatibility.parse("JSON", json.dumps(document), [])


@pytest.mark.parametrize(("old", "new", "compatible", "source"), CASES)
def test_backward_verdicts_match_confluents(old: Any, new: Any, compatible: bool, source: str) -> None:
    found = compatibility.errors("BACKWARD", json_schema(new), [json_schema(old)])
    assert (not found) == compatible, (source, found)


def test_forward_swaps_the_direction() -> None:
    open_with_bar = {**OPEN_FOO, "properties": {**OPEN_FOO["properties"], **BAR}}
    assert compatibility.errors("FORWARD", json_schema(OPEN_FOO), [json_schema(open_with_bar)]) != []
    assert compatibility.errors("FORWARD", json_schema(open_with_bar), [json_schema(OPEN_FOO)]) == []
    assert compatibility.errors("FULL", json_schema(open_with_bar), [json_schema(OPEN_FOO)]) != []
