"""`strom schemas list|get|register|check` and `strom consume --value-format` against `strom registry` on the
session's strom broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.support.cli import run_strom, table_rows
from tests.support.registry import RegistryProcess
from tests.support.scenario import unique_name

ORDER_V1 = {"type": "record", "name": "Order", "fields": [{"name": "id", "type": "int"}]}
ORDER_V2 = {
    "type": "record",
    "name": "Order",
    "fields": [{"name": "id", "type": "long"}, {"name": "note", "type": "string", "default": ""}],
}
ORDER_BAD = {
    "type": "record",
    "name": "Order",
    "fields": [{"name": "id", "type": "int"}, {"name": "qty", "type": "int"}],
}


@pytest.fixture
def registry(strom_broker: str) -> Iterator[RegistryProcess]:
    process = RegistryProcess(strom_broker, unique_name("_schemas"))
    yield process
    process.stop()


def write(tmp_path: Path, name: str, schema: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(schema))
    return str(path)


def test_register_list_get_and_check_a_subject(registry: RegistryProcess, tmp_path: Path) -> None:
    url = ["--registry", registry.url]
    v1, v2, bad = (write(tmp_path, n, s) for n, s in (("v1", ORDER_V1), ("v2", ORDER_V2), ("bad", ORDER_BAD)))

    first = run_strom("schemas", "register", "orders-value", v1, *url)
    assert (first.returncode, first.stdout) == (0, "registered orders-value version 1, id 1\n"), first.stderr
    again = run_strom("schemas", "register", "orders-value", v1, *url)
    assert again.stdout == "registered orders-value version 1, id 1\n"
    assert run_strom("schemas", "register", "orders-value", v2, *url).stdout == (
        "registered orders-value version 2, id 2\n"
    )
    person = write(tmp_path, "person", {"type": "object", "properties": {"name": {"type": "string"}}})
    assert run_strom("schemas", "register", "people-value", person, "--type", "json", *url).returncode == 0

    listed = run_strom("schemas", "list", *url)
    assert listed.returncode == 0, listed.stderr
    assert table_rows(listed.stdout, "SUBJECT") == [
        {"SUBJECT": "orders-value", "VERSION": "2", "ID": "2", "TYPE": "AVRO"},
        {"SUBJECT": "people-value", "VERSION": "1", "ID": "3", "TYPE": "JSON"},
    ]
    assert "people-value" not in run_strom("schemas", "list", "--prefix", "orders", *url).stdout

    got = run_strom("schemas", "get", "orders-value", "--version", "1", *url)
    assert (got.returncode, json.loads(got.stdout)) == (0, ORDER_V1)
    assert got.stderr == "strom: orders-value version 1, id 1, AVRO\n"
    assert json.loads(run_strom("schemas", "get", "orders-value", *url).stdout) == ORDER_V2
    by_id = run_strom("schemas", "get", "--id", "3", *url)
    assert (json.loads(by_id.stdout)["type"], by_id.stderr) == ("object", "strom: id 3, JSON\n")

    ok = run_strom("schemas", "check", "orders-value", v2, *url)
    assert (ok.returncode, ok.stdout) == (0, "compatible with orders-value version latest\n")
    refused = run_strom("schemas", "check", "orders-value", bad, *url)
    assert refused.returncode == 1
    assert refused.stdout.startswith("NOT compatible with orders-value version latest:\n  ")
    assert "qty" in refused.stdout

    incompatible = run_strom("schemas", "register", "orders-value", bad, *url)
    assert incompatible.returncode == 1
    assert incompatible.stderr.startswith("strom: the registry refused: ")
    assert "(error code 409)" in incompatible.stderr


def test_error_answers_print_the_registrys_message_and_code(
    registry: RegistryProcess, tmp_path: Path
) -> None:
    url = ["--registry", registry.url]
    missing = run_strom("schemas", "get", "nobody-value", *url)
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr.startswith("strom: the registry refused: ")
    assert missing.stderr.endswith("(error code 40401)\n")
    assert "(error code 40403)" in run_strom("schemas", "get", "--id", "99", *url).stderr
    invalid = write(tmp_path, "invalid", {"type": "record", "name": "X", "fields": [{"name": "a"}]})
    assert "(error code 42201)" in run_strom("schemas", "register", "x-value", invalid, *url).stderr
    (tmp_path / "text").write_text("not json")
    not_json = run_strom("schemas", "register", "x-value", str(tmp_path / "text"), *url)
    assert not_json.returncode == 1 and "is not JSON" in not_json.stderr
    both = run_strom("schemas", "get", "x-value", "--id", "1", *url)
    assert both.stderr == "strom: give a subject or --id, not both and not neither\n"


def test_an_unreachable_registry_is_said_in_words() -> None:
    result = run_strom("schemas", "list", "--registry", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert result.stderr.startswith("strom: schema registry at http://127.0.0.1:9 is unreachable: ")
    assert result.stderr.endswith("; start one with `strom registry` or pass --registry URL\n")


def test_consume_decodes_avro_and_json_schema_values_with_the_registry(
    registry: RegistryProcess, strom_broker: str
) -> None:
    avro_topic, json_topic = unique_name("avro-data"), unique_name("json-data")
    for topic in (avro_topic, json_topic):
        assert run_strom("topics", "create", topic, "--bootstrap", strom_broker).returncode == 0
    person = json.dumps({"type": "object", "properties": {"name": {"type": "string"}}})
    producer = Producer({"bootstrap.servers": strom_broker})
    to_avro = AvroSerializer(registry.client(), json.dumps(ORDER_V2))
    for i in range(3):
        context = SerializationContext(avro_topic, MessageField.VALUE)
        producer.produce(avro_topic, to_avro({"id": i, "note": f"n\u00e9{i}"}, context), key=f"k{i}")
    producer.produce(avro_topic, None, key="gone")
    to_json = JSONSerializer(person, registry.client())
    producer.produce(
        json_topic, to_json({"name": "Ada"}, SerializationContext(json_topic, MessageField.VALUE))
    )
    producer.flush(30)
    common = ["--from-beginning", "--registry", registry.url, "--bootstrap", strom_broker]

    avro = run_strom("consume", avro_topic, "-c", "4", "--print-key", "--value-format", "avro", *common)
    assert avro.returncode == 0, avro.stderr
    assert avro.stdout.splitlines() == [
        'k0\t{"id": 0, "note": "n\u00e90"}',
        'k1\t{"id": 1, "note": "n\u00e91"}',
        'k2\t{"id": 2, "note": "n\u00e92"}',
        "gone\tnull",
    ]
    as_json = run_strom("consume", json_topic, "-c", "1", "--value-format", "json-schema", *common)
    assert (as_json.returncode, as_json.stdout) == (0, '{"name": "Ada"}\n'), as_json.stderr

    # A JSON record read as Avro: the schema id is a JSON schema's, said with the record's place.
    wrong = run_strom("consume", json_topic, "-c", "1", "--value-format", "avro", *common)
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("strom: cannot decode the value at partition 0 offset 0 as avro: ")
    assert "is a JSON schema, not AVRO" in wrong.stderr
