"""Avro compatibility verdicts, each the one Confluent Schema Registry gives, with where it comes from.

Sources:
- SR-ACT: confluentinc/schema-registry `core/src/test/java/io/confluent/kafka/schemaregistry/avro/
  AvroCompatibilityTest.java` (history oldest first, the new schema checked at the level).
- KP: Aiven-Open/karapace `tests/unit/test_avro_compatibility.py`, ported from Apache Avro's
  `TestSchemaCompatibility` (reader/writer pairs; Confluent calls the same Avro check).
- AVRO-SPEC: the Avro specification, "Schema Resolution" (promotions, enums, fixed, unions, aliases), which
  Avro's `SchemaCompatibility` implements and Confluent applies as is.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from strom.registry import compatibility
from strom.registry.compatibility import ParsedSchema
from strom.registry.errors import InvalidSchema


def record(fields: list[dict[str, Any]], name: str = "myrecord", **extra: Any) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": fields, **extra}


def avro(schema: Any) -> ParsedSchema:
    return compatibility.parse("AVRO", json.dumps(schema), [])


# The schemas of SR-ACT.
S1 = record([{"name": "f1", "type": "string"}])
S2 = record([{"name": "f1", "type": "string"}, {"name": "f2", "type": "string", "default": "foo"}])
S3 = record([{"name": "f1", "type": "string"}, {"name": "f2", "type": "string"}])
S4 = record([{"name": "f1_new", "type": "string", "aliases": ["f1"]}])
S6 = record([{"name": "f1", "type": ["null", "string"]}])
S7 = record([{"name": "f1", "type": ["null", "string", "int"]}])
S8 = record(
    [
        {"name": "f1", "type": "string"},
        {"name": "f2", "type": "string", "default": "foo"},
        {"name": "f3", "type": "string", "default": "bar"},
    ]
)

LEVEL_CASES = [
    # (new, history oldest first, level, compatible, source)
    (S2, [S1], "BACKWARD", True, "SR-ACT: adding a field with a default"),
    (S3, [S1], "BACKWARD", False, "SR-ACT: adding a field without a default"),
    (S4, [S1], "BACKWARD", True, "SR-ACT: renaming a field with an alias"),
    (S6, [S1], "BACKWARD", True, "SR-ACT: evolving a field type to a union"),
    (S1, [S6], "BACKWARD", False, "SR-ACT: removing a type from a union"),
    (S7, [S6], "BACKWARD", True, "SR-ACT: adding a type to a union"),
    (S6, [S7], "BACKWARD", False, "SR-ACT: removing a type from a union"),
    (S3, [S1, S2], "BACKWARD", True, "SR-ACT: only the latest version is checked"),
    (S8, [S1, S2], "BACKWARD_TRANSITIVE", True, "SR-ACT: transitive, all fields defaulted"),
    (S3, [S2], "BACKWARD_TRANSITIVE", True, "SR-ACT: transitive, one previous version"),
    (S3, [S2, S1], "BACKWARD_TRANSITIVE", False, "SR-ACT: transitive, the oldest version breaks"),
    (S3, [S1], "FORWARD", True, "SR-ACT: forward, adding a field"),
    (S2, [S3], "FORWARD", True, "SR-ACT: forward, removing a default"),
    (S1, [S3, S2], "FORWARD", True, "SR-ACT: forward, only the latest version is checked"),
    (S1, [S8, S2], "FORWARD_TRANSITIVE", True, "SR-ACT: forward transitive, removing defaulted fields"),
    (S1, [S2, S3], "FORWARD_TRANSITIVE", False, "SR-ACT: forward transitive, S3's f2 had no default"),
    (S2, [S1], "FULL", True, "SR-ACT: full, adding a defaulted field"),
    (S3, [S1, S2], "FULL", True, "SR-ACT: full, only the latest version is checked"),
    (S3, [S2, S1], "FULL_TRANSITIVE", False, "SR-ACT: full transitive, S1 lacks f2 without a default"),
    (S1, [S2, S3], "FULL_TRANSITIVE", False, "SR-ACT: full transitive, S3 needs f2"),
    (S3, [S1], "NONE", True, "SR-ACT: NONE checks nothing"),
    (S1, [], "FULL_TRANSITIVE", True, "SR-ACT: the first version has nothing to be compatible with"),
]


@pytest.mark.parametrize(("new", "history", "level", "compatible", "source"), LEVEL_CASES)
def test_levels_give_confluents_verdicts(
    new: Any, history: list[Any], level: str, compatible: bool, source: str
) -> None:
    found = compatibility.errors(level, avro(new), [avro(old) for old in history])
    assert (not found) == compatible, (source, found)


INT_F1 = record([{"name": "f1", "type": "int"}], name="foo")
ENUM_AB = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
ENUM_ABC = {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}

READER_WRITER_CASES = [
    # (reader, writer, compatible, source)
    (INT_F1, record([{"name": "f1", "type": "int"}, {"name": "f2", "type": "string"}], "foo"), True,
     "KP: a writer-only field is skipped"),
    (record([{"name": "f1", "type": "int"}, {"name": "f2", "type": "string"}], "foo"), INT_F1, False,
     "KP: a reader-only field without a default"),
    (record([{"name": "bar", "type": "int", "aliases": ["f1"]}], "foo"), INT_F1, True, "KP: a field alias"),
    (record([{"name": "f1", "type": "int"}], "other", aliases=["foo"]), INT_F1, True, "KP: a record alias"),
    (record([{"name": "f1", "type": "int"}], "other"), INT_F1, False, "KP: record names differ, no alias"),
    ({"type": "fixed", "name": "F", "size": 4}, {"type": "fixed", "name": "F", "size": 8}, False,
     "KP: fixed sizes differ"),
    ({"type": "fixed", "name": "F", "size": 8}, {"type": "fixed", "name": "F", "size": 4}, False,
     "KP: fixed sizes differ, other way"),
    ({"type": "fixed", "name": "F", "size": 4}, {"type": "fixed", "name": "F", "size": 4}, True,
     "AVRO-SPEC: fixed of equal size and name"),
    (ENUM_AB, ENUM_ABC, False, "KP: the reader enum lacks a writer symbol"),
    (ENUM_ABC, ENUM_AB, True, "KP: the reader enum has more symbols"),
    ({**ENUM_AB, "default": "A"}, ENUM_ABC, True, "AVRO-SPEC: an enum default covers unknown symbols"),
    ({"type": "enum", "name": "Enum1", "symbols": ["A"]}, {"type": "enum", "name": "Enum2", "symbols": ["A"]},
     False, "KP: enums with other names"),
    (["int"], ["int", "string"], False, "KP: the reader union lacks a writer branch"),
    (["int", "string"], ["int"], True, "KP: the reader union has more branches"),
    (["null", "string"], "string", True, "AVRO-SPEC: a non-union writer matches a reader branch"),
    ("string", ["null", "string"], False, "AVRO-SPEC: a writer union branch the reader cannot read"),
    (["int"], ["long"], False, "KP: long does not demote to int"),
    ("int", "long", False, "AVRO-SPEC: long -> int is not a promotion"),
    ("long", "int", True, "AVRO-SPEC: int promotes to long"),
    ("float", "int", True, "AVRO-SPEC: int promotes to float"),
    ("double", "int", True, "AVRO-SPEC: int promotes to double"),
    ("float", "long", True, "AVRO-SPEC: long promotes to float"),
    ("double", "long", True, "AVRO-SPEC: long promotes to double"),
    ("double", "float", True, "AVRO-SPEC: float promotes to double"),
    ("float", "double", False, "AVRO-SPEC: double does not demote to float"),
    ("bytes", "string", True, "AVRO-SPEC: string reads as bytes"),
    ("string", "bytes", True, "AVRO-SPEC: bytes read as string"),
    ("boolean", "int", False, "AVRO-SPEC: no promotion between boolean and int"),
    ({"type": "array", "items": "long"}, {"type": "array", "items": "int"}, True,
     "AVRO-SPEC: array items are resolved recursively"),
    ({"type": "array", "items": "int"}, {"type": "array", "items": "long"}, False,
     "AVRO-SPEC: array items are resolved recursively (failing)"),
    ({"type": "map", "values": "double"}, {"type": "map", "values": "float"}, True,
     "AVRO-SPEC: map values are resolved recursively"),
    ({"type": "map", "values": "int"}, {"type": "array", "items": "int"}, False, "AVRO-SPEC: map vs array"),
    (record([{"name": "inner", "type": record([{"name": "x", "type": "long"}], "Inner")}]),
     record([{"name": "inner", "type": record([{"name": "x", "type": "int"}], "Inner")}]), True,
     "AVRO-SPEC: nested records resolve field by field"),
    (record([{"name": "inner", "type": record([{"name": "x", "type": "int"}, {"name": "y", "type": "int"}],
                                               "Inner")}]),
     record([{"name": "inner", "type": record([{"name": "x", "type": "int"}], "Inner")}]), False,
     "AVRO-SPEC: a nested reader-only field needs a default"),
    (record([{"name": "f1", "type": "int"}], "ns1.foo"), record([{"name": "f1", "type": "int"}], "ns2.foo"),
     True,
     "AVRO-SPEC via Avro's SchemaCompatibility: named types match by unqualified name"),
    (record([{"name": "a", "type": {"type": "int", "logicalType": "date"}}]),
     record([{"name": "a", "type": "int"}]), True, "AVRO-SPEC: logical types do not affect resolution"),
]  # fmt: skip


@pytest.mark.parametrize(("reader", "writer", "compatible", "source"), READER_WRITER_CASES)
def test_reader_writer_resolution_gives_confluents_verdicts(
    reader: Any, writer: Any, compatible: bool, source: str
) -> None:
    found = compatibility.reader_errors(avro(reader), avro(writer))
    assert (not found) == compatible, (source, found)


def test_recursive_records_are_checked_without_looping() -> None:
    linked = record([{"name": "value", "type": "int"}, {"name": "next", "type": ["null", "Node"]}], "Node")
    widened = record([{"name": "value", "type": "long"}, {"name": "next", "type": ["null", "Node"]}], "Node")
    assert compatibility.reader_errors(avro(widened), avro(linked)) == []
    assert compatibility.reader_errors(avro(linked), avro(widened)) != []


def test_a_new_schema_type_is_never_compatible_with_an_old_one() -> None:
    json_schema = compatibility.parse("JSON", '{"type": "object"}', [])
    assert compatibility.errors("BACKWARD", json_schema, [avro("string")]) != []


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"type": "record", "name": "R"}',  # no fields
        '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "Missing"}]}',
        '{"type": "enum", "name": "E"}',  # no symbols
        '{"type": "nope"}',
        "42",
    ],
)
def test_invalid_avro_is_refused_with_the_reason(text: str) -> None:
    with pytest.raises(InvalidSchema, match="Invalid schema"):
        compatibility.parse("AVRO", text, [])


def test_references_provide_named_types() -> None:
    address = json.dumps(record([{"name": "street", "type": "string"}], "Address"))
    person = json.dumps(record([{"name": "home", "type": "Address"}], "Person"))
    with pytest.raises(InvalidSchema):
        compatibility.parse("AVRO", person, [])
    assert compatibility.parse("AVRO", person, [address]).schema_type == "AVRO"


def test_equal_schemas_written_differently_have_one_canonical_text() -> None:
    spaced = '{ "type" : "record", "name": "R", "fields" : [ {"name": "a", "type": "int"} ] }'
    compact = '{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}'
    assert avro(json.loads(spaced)).canonical == compatibility.parse("AVRO", compact, []).canonical


def test_a_primitive_written_as_an_object_is_the_same_schema() -> None:
    wrapped = record(
        [{"name": "a", "type": {"type": "int"}}, {"name": "b", "type": ["null", {"type": "string"}]}]
    )
    plain = record([{"name": "a", "type": "int"}, {"name": "b", "type": ["null", "string"]}])
    assert avro(wrapped).canonical == avro(plain).canonical
    assert avro({"type": "long"}).canonical == '"long"'
    assert avro({"type": "int", "logicalType": "date"}).canonical == '{"type":"int","logicalType":"date"}'


def test_attribute_order_and_namespace_spelling_do_not_make_another_schema() -> None:
    """Avro's `Schema.toString()`, which Confluent stores and compares, is the same for all of these."""
    full_names = {
        "type": "record",
        "name": "shop.Order",
        "fields": [
            {"type": "long", "name": "id", "order": "ascending"},
            {"name": "currency", "type": {"name": "shop.Currency", "type": "enum", "symbols": ["EUR"]}},
            {"name": "paid_in", "type": "shop.Currency"},
        ],
    }
    namespaced = {
        "namespace": "shop",
        "fields": [
            {"name": "id", "type": {"type": "long"}},
            {
                "name": "currency",
                "type": {"type": "enum", "namespace": "shop", "name": "Currency", "symbols": ["EUR"]},
            },
            {"name": "paid_in", "type": "Currency"},
        ],
        "name": "Order",
        "type": "record",
    }
    assert (
        avro(full_names).canonical
        == avro(namespaced).canonical
        == (
            '{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},'
            '{"name":"currency","type":{"type":"enum","name":"Currency","symbols":["EUR"]}},'
            '{"name":"paid_in","type":"Currency"}]}'
        )
    )


def test_a_nested_type_in_another_namespace_keeps_it_and_aliases_are_qualified_as_avro_writes_them() -> None:
    schema = record(
        [{"name": "m", "type": {"type": "fixed", "name": "other.Md5", "size": 16}, "aliases": ["hash"]}],
        "a.R",
        aliases=["a.Old", "b.Older"],
    )
    assert avro(schema).canonical == (
        '{"type":"record","name":"R","namespace":"a","fields":[{"name":"m","type":{"type":"fixed","name":"Md5",'
        '"namespace":"other","size":16},"aliases":["hash"]}],"aliases":["Old","b.Older"]}'
    )


@pytest.mark.parametrize(
    "changed",
    [
        {"doc": "an order"},  # Avro keeps doc, so Confluent gives another id
        {"aliases": ["Purchase"]},
        {"namespace": "shop"},
        {"fields": [{"name": "id", "type": "long", "default": 0}]},
        {"fields": [{"name": "id", "type": "long", "order": "descending"}]},
        {"fields": [{"name": "id", "type": {"type": "long", "logicalType": "timestamp-millis"}}]},
        {"custom": 1},
    ],
)
def test_a_real_difference_is_another_schema(changed: dict[str, Any]) -> None:
    plain = record([{"name": "id", "type": "long"}], "Order")
    assert avro({**plain, **changed}).canonical != avro(plain).canonical
