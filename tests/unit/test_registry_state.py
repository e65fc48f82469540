"""The registry's view of `_schemas`: Confluent's record layout, applied in order, conflicts ignored."""

from __future__ import annotations

from typing import Any

from strom.registry import records
from strom.registry.state import RegistryState


def apply_all(state: RegistryState, entries: list[tuple[bytes, bytes | None]]) -> None:
    for offset, (key, value) in enumerate(entries, start=state.applied_offset + 1):
        state.apply(offset, records.decode(key), records.decode(value))


def schema(subject: str, version: int, schema_id: int, text: str = '"string"', deleted: bool = False) -> Any:
    value = records.schema_value(subject, version, schema_id, text, "AVRO", [], deleted)
    return records.schema_key(subject, version), value


def test_keys_are_byte_identical_to_confluents() -> None:
    # Compaction matches exact key bytes: these are the layouts Confluent's registry writes.
    assert (
        records.schema_key("t-value", 1) == b'{"keytype":"SCHEMA","subject":"t-value","version":1,"magic":1}'
    )
    assert records.config_key(None) == b'{"keytype":"CONFIG","subject":null,"magic":0}'
    assert records.mode_key("s") == b'{"keytype":"MODE","subject":"s","magic":0}'
    assert records.delete_subject_key("s") == b'{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}'


def test_schema_values_omit_avro_type_and_empty_references() -> None:
    assert records.decode(records.schema_value("s", 1, 7, '"int"', "AVRO", [], False)) == {
        "subject": "s", "version": 1, "id": 7, "schema": '"int"', "deleted": False
    }  # fmt: skip
    assert records.decode(records.schema_value("s", 1, 7, "{}", "JSON", [], False))["schemaType"] == "JSON"


def test_versions_ids_configs_and_modes_follow_the_records() -> None:
    state = RegistryState()
    apply_all(
        state,
        [
            schema("a", 1, 1),
            schema("a", 2, 2, '"int"'),
            schema("b", 1, 1),  # the same schema under another subject keeps its id
            (records.config_key(None), records.config_value(None, "FULL")),
            (records.config_key("a"), records.config_value("a", "NONE")),
            (records.mode_key("b"), records.mode_value("b", "READONLY")),
        ],
    )
    assert [v.version for v in state.versions("a")] == [1, 2]
    assert [(u.subject, u.version) for u in state.uses_of(1)] == [("a", 1), ("b", 1)]
    assert state.max_id == 2
    assert (state.compatibility("a"), state.compatibility("b"), state.compatibility(None)) == (
        "NONE",
        "FULL",
        "FULL",
    )
    assert (state.mode("a"), state.mode("b")) == ("READWRITE", "READONLY")
    apply_all(state, [(records.config_key("a"), None), (records.mode_key("b"), None)])
    assert (state.compatibility("a"), state.mode("b")) == ("FULL", "READWRITE")


def test_a_conflicting_record_from_a_racing_writer_is_ignored_by_every_reader() -> None:
    state = RegistryState()
    apply_all(state, [schema("a", 1, 1, '"string"'), schema("b", 1, 1, '"int"'), schema("a", 1, 2, '"int"')])
    assert "b" not in state.subjects  # id 1 is already another schema
    assert state.subjects["a"][1].schema_id == 1  # version 1 of a already has id 1
    assert state.applied_offset == 2


def test_soft_then_permanent_delete() -> None:
    state = RegistryState()
    apply_all(state, [schema("a", 1, 1), schema("a", 2, 2, '"int"'), schema("a", 1, 1, deleted=True)])
    assert [v.version for v in state.versions("a")] == [2]
    assert [v.version for v in state.versions("a", deleted=True)] == [1, 2]
    apply_all(state, [(records.delete_subject_key("a"), records.delete_subject_value("a", 2))])
    assert state.versions("a") == []
    apply_all(state, [(records.schema_key("a", 2), None), (records.schema_key("a", 1), None)])
    assert "a" not in state.subjects and state.schemas == {}
    apply_all(state, [schema("a", 1, 3)])  # a subject registered again after a permanent delete starts over
    assert [v.schema_id for v in state.versions("a")] == [3]


def test_records_of_unknown_key_types_are_skipped() -> None:
    state = RegistryState()
    state.apply(0, {"keytype": "NOOP", "magic": 0}, None)
    state.apply(1, {"keytype": "CONTEXT", "tenant": "x", "context": "c", "magic": 0}, {})
    assert state.subjects == {} and state.applied_offset == 1
