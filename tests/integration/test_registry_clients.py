"""`strom registry` used by confluent-kafka's own schema-registry client and Avro serdes, unchanged.

Each test runs `strom registry` as a subprocess (as a user would) on the session's strom broker, on a topic of
its own, and talks to it only through confluent-kafka's `SchemaRegistryClient`, `AvroSerializer` and
`AvroDeserializer`, or through plain HTTP where a client hides the answer (error codes).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.support.registry import RegistryProcess
from tests.support.scenario import unique_name


@pytest.fixture
def topic() -> str:
    return unique_name("_schemas")


@pytest.fixture
def registry(strom_broker: str, topic: str) -> Iterator[RegistryProcess]:
    process = RegistryProcess(strom_broker, topic)
    yield process
    process.stop()


def call(url: str, method: str, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    """(status, JSON body) of one HTTP request, error statuses included."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as answer:
        return answer.code, json.loads(answer.read())


def record(name: str, fields: list[dict[str, Any]]) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "shop", "fields": fields})


ORDER_V1 = record("Order", [{"name": "id", "type": "int"}])
ORDER_V2 = record(
    "Order", [{"name": "id", "type": "long"}, {"name": "note", "type": "string", "default": "none"}]
)
ORDER_BAD = record("Order", [{"name": "id", "type": "int"}, {"name": "qty", "type": "int"}])


def test_confluent_serdes_register_evolve_refuse_and_read_old_data_with_a_new_schema(
    registry: RegistryProcess, strom_broker: str
) -> None:
    client = registry.client()
    data_topic = unique_name("orders")
    context = SerializationContext(data_topic, MessageField.VALUE)
    old_bytes = AvroSerializer(client, ORDER_V1)({"id": 7}, context)
    assert old_bytes[:5] == b"\x00" + (1).to_bytes(4, "big")  # Confluent framing with the id we gave
    producer = Producer({"bootstrap.servers": strom_broker})
    producer.produce(data_topic, old_bytes)
    producer.flush(30)

    new_bytes = AvroSerializer(client, ORDER_V2)({"id": 8, "note": "gift"}, context)
    assert new_bytes[1:5] == (2).to_bytes(4, "big")
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(f"{data_topic}-value", Schema(ORDER_BAD, "AVRO"))
    assert refused.value.http_status_code == 409
    assert client.test_compatibility(f"{data_topic}-value", Schema(ORDER_BAD, "AVRO")) is False
    assert client.test_compatibility(f"{data_topic}-value", Schema(ORDER_V2, "AVRO")) is True

    consumer = Consumer(
        {"bootstrap.servers": strom_broker, "group.id": unique_name("g"), "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([data_topic])
    message = None
    for _ in range(60):
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            break
    consumer.close()
    assert message is not None and message.value() == old_bytes
    reader = AvroDeserializer(SchemaRegistryClient({"url": registry.url}), ORDER_V2)
    assert reader(message.value(), context) == {"id": 7, "note": "none"}  # old data, new reader schema

    versions = client.get_versions(f"{data_topic}-value")
    assert versions == [1, 2]
    latest = client.get_latest_version(f"{data_topic}-value")
    assert (latest.version, latest.schema_id) == (2, 2)
    assert client.get_schema(1).schema_str == json.dumps(json.loads(ORDER_V1), separators=(",", ":"))


def test_ids_are_global_and_an_identical_schema_keeps_its_id(registry: RegistryProcess) -> None:
    client = registry.client()
    first = client.register_schema("a-value", Schema(ORDER_V1, "AVRO"))
    spaced = json.dumps(json.loads(ORDER_V1), indent=2)
    assert registry.client().register_schema("a-value", Schema(spaced, "AVRO")) == first
    assert registry.client().register_schema("b-value", Schema(ORDER_V1, "AVRO")) == first
    assert call(registry.url, "GET", f"/schemas/ids/{first}/versions") == (
        200,
        [{"subject": "a-value", "version": 1}, {"subject": "b-value", "version": 1}],
    )
    assert call(registry.url, "GET", f"/schemas/ids/{first}/subjects") == (200, ["a-value", "b-value"])
    found = client.lookup_schema("a-value", Schema(ORDER_V1, "AVRO"))
    assert (found.schema_id, found.version) == (first, 1)
    assert call(registry.url, "POST", "/subjects/a-value", {"schema": ORDER_V2})[1]["error_code"] == 40403
    assert call(registry.url, "POST", "/subjects/nobody", {"schema": ORDER_V1})[1]["error_code"] == 40401
    assert call(registry.url, "GET", "/schemas/types") == (200, ["AVRO", "JSON"])
    listed = call(registry.url, "GET", "/schemas?subjectPrefix=a-")[1]
    assert [(s["subject"], s["version"], s["id"]) for s in listed] == [("a-value", 1, first)]


def test_every_compatibility_level_is_kept_globally_and_per_subject(registry: RegistryProcess) -> None:
    client = registry.client()
    assert client.get_compatibility() == "BACKWARD"
    for level in ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
                  "FULL_TRANSITIVE"):  # fmt: skip
        client.set_compatibility("s-value", level)
        assert client.get_compatibility("s-value") == level
    assert client.get_compatibility() == "BACKWARD"
    assert call(registry.url, "GET", "/config/other")[1]["error_code"] == 40408
    assert call(registry.url, "GET", "/config/other?defaultToGlobal=true") == (
        200,
        {"compatibilityLevel": "BACKWARD"},
    )
    assert call(registry.url, "PUT", "/config", {"compatibility": "SIDEWAYS"})[1]["error_code"] == 42203
    client.set_compatibility("s-value", "NONE")
    client.register_schema("s-value", Schema(ORDER_V1, "AVRO"))
    client.register_schema("s-value", Schema(ORDER_BAD, "AVRO"))  # NONE: anything goes
    client.set_compatibility("s-value", "FORWARD")
    with pytest.raises(SchemaRegistryError) as refused:  # FORWARD: ORDER_BAD cannot read a dropped qty
        client.register_schema("s-value", Schema(ORDER_V1.replace('"int"', '"long"'), "AVRO"))
    assert refused.value.http_status_code == 409
    assert call(registry.url, "DELETE", "/config/s-value") == (200, {"compatibilityLevel": "FORWARD"})
    assert call(registry.url, "GET", "/config/s-value")[1]["error_code"] == 40408  # back to the global level


def test_avro_spellings_of_one_schema_share_an_id_and_a_real_difference_gets_another(
    registry: RegistryProcess,
) -> None:
    client = registry.client()
    full_name = '{"type": "record", "name": "shop.Order", "fields": [{"name": "id", "type": "long"}]}'
    namespaced = (
        '{"fields": [{"type": {"type": "long"}, "name": "id"}], "namespace": "shop", "name": "Order",'
        ' "type": "record"}'
    )
    first = client.register_schema("c-value", Schema(full_name, "AVRO"))
    assert client.register_schema("c-value", Schema(namespaced, "AVRO")) == first
    assert client.lookup_schema("c-value", Schema(namespaced, "AVRO")).version == 1
    assert client.get_schema(first).schema_str == (
        '{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"}]}'
    )
    documented = full_name.replace('"fields"', '"doc": "an order", "fields"')
    assert client.register_schema("c-value", Schema(documented, "AVRO")) == first + 1
    assert client.get_versions("c-value") == [1, 2]


def test_modes_readonly_refuses_writes_and_import_keeps_given_ids(registry: RegistryProcess) -> None:
    client = registry.client()
    client.register_schema("m-value", Schema(ORDER_V1, "AVRO"))
    assert call(registry.url, "GET", "/mode") == (200, {"mode": "READWRITE"})
    assert call(registry.url, "PUT", "/mode/m-value", {"mode": "READONLY"}) == (200, {"mode": "READONLY"})
    status, body = call(registry.url, "POST", "/subjects/m-value/versions", {"schema": ORDER_V2})
    assert (status, body["error_code"]) == (422, 42205)
    assert call(registry.url, "PUT", "/mode", {"mode": "SOMETIMES"})[1]["error_code"] == 42204
    assert call(registry.url, "PUT", "/mode", {"mode": "IMPORT"})[1]["error_code"] == 42205  # not empty
    assert call(registry.url, "PUT", "/mode/imported", {"mode": "IMPORT"}) == (200, {"mode": "IMPORT"})
    body = {"schema": ORDER_V2, "id": 100, "version": 3}
    assert call(registry.url, "POST", "/subjects/imported/versions", body) == (200, {"id": 100})
    assert call(registry.url, "GET", "/subjects/imported/versions/3")[1]["id"] == 100
    assert client.get_schema(100).schema_str == json.dumps(json.loads(ORDER_V2), separators=(",", ":"))
    assert call(registry.url, "DELETE", "/mode/m-value") == (200, {"mode": "READONLY"})
    assert client.register_schema("m-value", Schema(ORDER_V2, "AVRO")) == 100  # the same schema, the same id
    widened = ORDER_V1.replace('"int"', '"long"')
    assert client.register_schema("m-value", Schema(widened, "AVRO")) == 101  # after the largest id seen


def test_soft_and_permanent_deletes_answer_confluents_codes(registry: RegistryProcess) -> None:
    client = registry.client()
    client.register_schema("d-value", Schema(ORDER_V1, "AVRO"))
    client.register_schema("d-value", Schema(ORDER_V2, "AVRO"))
    assert (
        call(registry.url, "DELETE", "/subjects/d-value/versions/1?permanent=true")[1]["error_code"] == 40407
    )
    assert client.delete_version("d-value", 1) == 1
    assert call(registry.url, "DELETE", "/subjects/d-value/versions/1")[1]["error_code"] == 40406
    assert call(registry.url, "DELETE", "/subjects/d-value/versions/7")[1]["error_code"] == 40402
    assert client.get_versions("d-value") == [2]
    assert call(registry.url, "GET", "/subjects/d-value/versions?deleted=true") == (200, [1, 2])
    assert call(registry.url, "GET", "/schemas/ids/1")[0] == 200  # soft-deleted schemas stay readable by id
    assert call(registry.url, "DELETE", "/subjects/d-value?permanent=true")[1]["error_code"] == 40405
    assert client.delete_subject("d-value") == [2]
    assert call(registry.url, "DELETE", "/subjects/d-value")[1]["error_code"] == 40404
    assert client.get_subjects() == []
    assert call(registry.url, "GET", "/subjects?deleted=true") == (200, ["d-value"])
    assert client.delete_subject("d-value", permanent=True) == [1, 2]
    assert call(registry.url, "GET", "/schemas/ids/1")[1]["error_code"] == 40403
    assert call(registry.url, "GET", "/subjects/d-value/versions")[1]["error_code"] == 40401
    assert client.register_schema("d-value", Schema(ORDER_V1, "AVRO")) == 3  # ids are never reused


def test_avro_references_resolve_and_protect_what_they_reference(registry: RegistryProcess) -> None:
    client = registry.client()
    address = record("Address", [{"name": "street", "type": "string"}])
    client.register_schema("address", Schema(address, "AVRO"))
    person = record("Person", [{"name": "home", "type": "shop.Address"}])
    refs = [SchemaReference("shop.Address", "address", 1)]
    person_id = client.register_schema("person-value", Schema(person, "AVRO", refs))
    fetched = client.get_schema(person_id)
    assert [(r.name, r.subject, r.version) for r in fetched.references] == [("shop.Address", "address", 1)]
    assert call(registry.url, "GET", "/subjects/address/versions/1/referencedby") == (200, [person_id])
    assert call(registry.url, "DELETE", "/subjects/address/versions/1")[1]["error_code"] == 42206
    missing = {"schema": person, "references": [{"name": "shop.Address", "subject": "address", "version": 9}]}
    assert call(registry.url, "POST", "/subjects/p2/versions", missing)[1]["error_code"] == 42201
    serializer = AvroSerializer(
        client,
        Schema(person, "AVRO", refs),
        conf={"auto.register.schemas": False, "use.latest.version": True},
    )
    context = SerializationContext("person", MessageField.VALUE)
    framed = serializer({"home": {"street": "Main"}}, context)
    assert AvroDeserializer(client)(framed, context) == {"home": {"street": "Main"}}


def test_bad_input_gets_the_documented_codes_and_the_service_stays_up(registry: RegistryProcess) -> None:
    url = registry.url
    status, body = call(url, "POST", "/subjects/x/versions", raw=b'{"schema": ')
    assert (status, body["error_code"]) == (400, 400)
    status, body = call(url, "POST", "/subjects/x/versions", {"schema": '{"type": "record", "name": 1}'})
    assert (status, body["error_code"]) == (422, 42201)
    assert call(url, "POST", "/subjects/x/versions", {"schema": "{nope"})[1]["error_code"] == 42201
    assert (
        call(url, "POST", "/subjects/x/versions", {"schemaType": "XML", "schema": "<a/>"})[1]["error_code"]
        == 42201
    )
    assert call(url, "POST", "/subjects/x/versions", {"nothing": 1})[1]["error_code"] == 42201
    assert call(url, "GET", "/subjects/nobody/versions/1") == (
        404,
        {"error_code": 40401, "message": "Subject 'nobody' not found."},
    )
    registry.client().register_schema("x", Schema(ORDER_V1, "AVRO"))
    assert call(url, "GET", "/subjects/x/versions/2")[1]["error_code"] == 40402
    for version in ("0", "-2", "one"):
        assert call(url, "GET", f"/subjects/x/versions/{version}")[1]["error_code"] == 42202
    assert call(url, "GET", "/schemas/ids/999")[1]["error_code"] == 40403
    assert call(url, "GET", "/schemas/ids/abc")[1]["error_code"] == 40403
    huge = {"schema": record("Huge", [{"name": "f", "type": "string", "doc": "x" * 10_000_000}])}
    status, body = call(url, "POST", "/subjects/x/versions", huge)
    assert (status, body["error_code"]) == (422, 42209)
    verbose = call(url, "POST", "/compatibility/subjects/x/versions/latest?verbose=true", {"schema": "{"})
    assert verbose[1]["is_compatible"] is False and verbose[1]["messages"]
    assert call(url, "GET", "/subjects") == (200, ["x"])  # still serving
    assert call(url, "GET", "/subjects/x/versions/latest")[1]["version"] == 1


def test_two_registries_agree_and_restarts_keep_ids_and_versions(strom_broker: str, topic: str) -> None:
    first = RegistryProcess(strom_broker, topic)
    second = RegistryProcess(strom_broker, topic)
    try:
        one = first.client().register_schema("t-value", Schema(ORDER_V1, "AVRO"))
        assert second.client().get_schema(one).schema_str  # registered on one, served by the other
        two = second.client().register_schema("t-value", Schema(ORDER_V2, "AVRO"))
        assert (one, two) == (1, 2)
        assert call(first.url, "GET", f"/schemas/ids/{two}")[0] == 200  # and the other way round
        assert call(first.url, "GET", "/subjects/t-value/versions/2")[1]["id"] == two
        first.kill()  # kill -9: nothing of its state lives outside the topic
        first = RegistryProcess(strom_broker, topic)
        latest = first.client().get_latest_version("t-value")
        assert (latest.version, latest.schema_id) == (2, 2)
        assert first.client().register_schema("u-value", Schema(ORDER_BAD, "AVRO")) == 3
        assert call(second.url, "GET", "/schemas/ids/3")[0] == 200
    finally:
        first.stop()
        second.stop()


@pytest.mark.kafka
def test_the_registry_works_the_same_on_apache_kafka(apache_kafka: str, topic: str) -> None:
    registry = RegistryProcess(apache_kafka, topic)
    try:
        client = registry.client()
        assert client.register_schema("k-value", Schema(ORDER_V1, "AVRO")) == 1
        assert client.register_schema("k-value", Schema(ORDER_V2, "AVRO")) == 2
        with pytest.raises(SchemaRegistryError):
            client.register_schema("k-value", Schema(ORDER_BAD, "AVRO"))
    finally:
        registry.stop()
    restarted = RegistryProcess(apache_kafka, topic)
    try:
        assert restarted.client().get_versions("k-value") == [1, 2]
    finally:
        restarted.stop()


def test_registrations_racing_on_two_registries_end_in_one_agreed_history(
    strom_broker: str, topic: str
) -> None:
    first = RegistryProcess(strom_broker, topic)
    second = RegistryProcess(strom_broker, topic)
    try:
        first.client().set_compatibility("race-value", "NONE")
        schemas = [record("Race", [{"name": f"f{i}", "type": "int", "default": 0}]) for i in range(12)]

        def register(registry: RegistryProcess, texts: list[str]) -> list[int]:
            client = registry.client()
            return [client.register_schema("race-value", Schema(text, "AVRO")) for text in texts]

        with ThreadPoolExecutor(2) as pool:
            left = pool.submit(register, first, schemas[0::2])
            right = pool.submit(register, second, schemas[1::2])
            ids = left.result() + right.result()
        assert len(set(ids)) == len(schemas)  # every schema got an id of its own
        histories = [
            [call(r.url, "GET", f"/subjects/race-value/versions/{v}")[1]["id"] for v in range(1, 13)]
            for r in (first, second)
        ]
        assert histories[0] == histories[1]
        assert sorted(histories[0]) == sorted(ids)
    finally:
        first.stop()
        second.stop()
    restarted = RegistryProcess(
        strom_broker, topic
    )  # what a new reader of the topic sees is the same history
    try:
        after = [
            call(restarted.url, "GET", f"/subjects/race-value/versions/{v}")[1]["id"] for v in range(1, 13)
        ]
        assert after == histories[0]
    finally:
        restarted.stop()


def test_confluent_json_serdes_register_evolve_and_are_refused_a_breaking_change(
    registry: RegistryProcess,
) -> None:
    client = registry.client()
    context = SerializationContext("events", MessageField.VALUE)
    closed = {
        "type": "object",
        "properties": {"id": {"type": "integer"}},
        "required": ["id"],
        "additionalProperties": False,
    }
    framed = JSONSerializer(json.dumps(closed), client)({"id": 1}, context)
    assert framed[:5] == b"\x00" + (1).to_bytes(4, "big")
    widened = {**closed, "properties": {"id": {"type": "number"}, "tag": {"type": "string"}}}
    assert JSONSerializer(json.dumps(widened), client)({"id": 2.5, "tag": "x"}, context)[1:5] == (2).to_bytes(
        4, "big"
    )
    narrowed = {**widened, "properties": {"id": {"type": "integer"}, "tag": {"type": "string"}}}
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema("events-value", Schema(json.dumps(narrowed), "JSON"))
    assert refused.value.http_status_code == 409
    assert JSONDeserializer(json.dumps(widened), schema_registry_client=client)(framed, context) == {"id": 1}
    assert client.get_schema(1).schema_type == "JSON"
