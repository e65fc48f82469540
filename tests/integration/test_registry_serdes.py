"""strom.registry.serdes against confluent-kafka's registry serdes, byte for byte, on strom's registry.

Each test starts `strom registry` on the session's strom broker with a topic of its own; the Confluent side is
confluent-kafka's `AvroSerializer`/`AvroDeserializer` and `JSONSerializer`/`JSONDeserializer`, unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import (
    Schema,
    record_subject_name_strategy,
    topic_record_subject_name_strategy,
)
from confluent_kafka.schema_registry import (
    SchemaReference as ConfluentReference,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from strom.registry import serdes
from strom.registry.client import RegisteredSchema, SchemaReference, SchemaRegistryClient
from strom.streams import StreamsBuilder
from strom.streams import serdes as streams_serdes
from strom.streams.errors import SerializationError
from strom.streams.testing import TopologyTestDriver
from tests.support.registry import RegistryProcess
from tests.support.scenario import unique_name

ORDER = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "namespace": "shop",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "item", "type": "string"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "price", "type": ["null", "double"], "default": None},
        ],
    }
)
ORDER_V2 = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "namespace": "shop",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "item", "type": "string"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "price", "type": ["null", "double"], "default": None},
            {"name": "note", "type": "string", "default": "none"},
        ],
    }
)
AN_ORDER = {"id": 7, "item": "kettle", "tags": ["gift", "ü"], "price": 19.5}
PERSON = json.dumps(
    {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Person",
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name"],
    }
)


class CountingClient(SchemaRegistryClient):
    """Counts the calls for a subject's latest version, to show they are cached."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.latest_calls = 0

    def latest(self, subject: str) -> RegisteredSchema:
        self.latest_calls += 1
        return super().latest(subject)


@pytest.fixture
def registry(strom_broker: str) -> Iterator[RegistryProcess]:
    process = RegistryProcess(strom_broker, unique_name("_schemas"))
    yield process
    process.stop()


def test_avro_bytes_are_confluents_byte_for_byte_and_each_reads_the_other(registry: RegistryProcess) -> None:
    topic = unique_name("orders")
    context = SerializationContext(topic, MessageField.VALUE)
    confluent_bytes = AvroSerializer(registry.client(), ORDER)(AN_ORDER, context)
    strom = serdes.avro(registry.url, ORDER)
    strom_bytes = strom.serialize(topic, AN_ORDER)
    assert strom_bytes == confluent_bytes
    assert strom.deserialize(topic, confluent_bytes) == AN_ORDER
    assert AvroDeserializer(registry.client())(strom_bytes, context) == AN_ORDER
    assert serdes.avro(registry.url).deserialize(topic, confluent_bytes) == AN_ORDER  # no schema: writer's


def test_json_schema_bytes_are_confluents_byte_for_byte_and_each_reads_the_other(
    registry: RegistryProcess,
) -> None:
    topic = unique_name("people")
    context = SerializationContext(topic, MessageField.VALUE)
    person = {"name": "Ada", "age": 36}
    confluent_bytes = JSONSerializer(PERSON, registry.client())(person, context)
    strom = serdes.json_schema(registry.url, PERSON)
    strom_bytes = strom.serialize(topic, person)
    assert strom_bytes == confluent_bytes
    assert strom.deserialize(topic, confluent_bytes) == person
    assert JSONDeserializer(None, schema_registry_client=registry.client())(strom_bytes, context) == person
    with pytest.raises(SerializationError, match="'name' is a required property"):
        strom.serialize(topic, {"age": 3})


def test_records_cross_the_broker_in_both_directions(registry: RegistryProcess, strom_broker: str) -> None:
    topic = unique_name("orders")
    context = SerializationContext(topic, MessageField.VALUE)
    strom = serdes.avro(registry.url, ORDER)
    producer = Producer({"bootstrap.servers": strom_broker})
    producer.produce(topic, strom.serialize(topic, AN_ORDER))
    producer.produce(topic, AvroSerializer(registry.client(), ORDER)(dict(AN_ORDER, id=8), context))
    producer.flush(30)
    consumer = Consumer(
        {"bootstrap.servers": strom_broker, "group.id": unique_name("g"), "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    for _ in range(60):
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            values.append(message.value())
        if len(values) == 2:
            break
    consumer.close()
    assert AvroDeserializer(registry.client())(values[0], context) == AN_ORDER
    assert strom.deserialize(topic, values[1]) == dict(AN_ORDER, id=8)


def test_json_schema_reads_are_validated_against_the_serdes_schema_else_the_writers_unless_turned_off(
    registry: RegistryProcess,
) -> None:
    topic = unique_name("people")
    context = SerializationContext(topic, MessageField.VALUE)
    unchecked = JSONSerializer(PERSON, registry.client(), conf={"validate": False})
    bad = unchecked({"age": "old"}, context)
    with pytest.raises(
        SerializationError, match=r"schema id \d+ does not match the schema at \$\.age: 'old' is not of"
    ):
        serdes.json_schema(registry.url, PERSON).deserialize(topic, bad)
    with pytest.raises(SerializationError, match=r"schema id \d+ does not match the schema"):
        serdes.json_schema(registry.url).deserialize(topic, bad)  # no schema of its own: the writer's
    # A serde with its own schema checks against that one, as Confluent's JSONDeserializer does.
    permissive = json.dumps({"type": "object"})
    assert serdes.json_schema(registry.url, permissive).deserialize(topic, bad) == {"age": "old"}
    off = serdes.json_schema(registry.url, config={"validate": False})
    assert off.deserialize(topic, bad) == {"age": "old"}


def test_avro_references_resolve_in_strom_and_confluent_serdes_alike(registry: RegistryProcess) -> None:
    topic = unique_name("shipments")
    context = SerializationContext(topic, MessageField.VALUE)
    address = json.dumps(
        {
            "type": "record",
            "name": "Address",
            "namespace": "shop",
            "fields": [{"name": "city", "type": "string"}],
        }
    )
    shipment = json.dumps(
        {
            "type": "record",
            "name": "Shipment",
            "namespace": "shop",
            "fields": [{"name": "id", "type": "long"}, {"name": "to", "type": "shop.Address"}],
        }
    )
    address_subject = unique_name("address")
    registry.client().register_schema(address_subject, _avro(address))
    version = registry.client().get_latest_version(address_subject).version
    a_shipment = {"id": 3, "to": {"city": "Lund"}}
    strom = serdes.avro(
        registry.url, shipment, references=[SchemaReference("shop.Address", address_subject, version)]
    )
    strom_bytes = strom.serialize(topic, a_shipment)
    confluent_schema = Schema(
        shipment, "AVRO", [ConfluentReference("shop.Address", address_subject, version)]
    )
    confluent_bytes = AvroSerializer(registry.client(), confluent_schema)(a_shipment, context)
    assert strom_bytes == confluent_bytes
    assert strom.deserialize(topic, confluent_bytes) == a_shipment
    assert serdes.avro(registry.url).deserialize(topic, confluent_bytes) == a_shipment  # the writer's refs
    assert AvroDeserializer(registry.client())(strom_bytes, context) == a_shipment


def test_a_topology_reads_and_writes_registry_serialised_records(registry: RegistryProcess) -> None:
    orders = serdes.avro(registry.url, ORDER)
    people = serdes.json_schema(registry.url, PERSON)
    builder = StreamsBuilder()
    builder.stream("orders", streams_serdes.string(), orders).map_values(
        lambda order: {"name": order["item"], "age": order["id"]}
    ).to("people", value_serde=people)
    with TopologyTestDriver(builder.build()) as driver:
        driver.create_input_topic("orders", streams_serdes.string(), orders).pipe_input("k", AN_ORDER, 1)
        out = driver.create_output_topic("people", streams_serdes.string(), streams_serdes.bytes_())
        [(key, data, _)] = out.read_records_to_list()
    assert key == "k"
    context = SerializationContext("people", MessageField.VALUE)
    assert JSONDeserializer(None, schema_registry_client=registry.client())(data, context) == {
        "name": "kettle",
        "age": 7,
    }
    assert registry.client().get_subjects() == ["orders-value", "people-value"]


def test_a_reader_schema_reads_old_records_with_defaults(registry: RegistryProcess) -> None:
    topic = unique_name("orders")
    old = serdes.avro(registry.url, ORDER).serialize(topic, AN_ORDER)
    assert serdes.avro(registry.url, ORDER_V2).deserialize(topic, old) == dict(AN_ORDER, note="none")


def test_without_auto_registration_the_schema_must_already_be_registered(registry: RegistryProcess) -> None:
    topic = unique_name("orders")
    strict = serdes.avro(registry.url, ORDER, config={"auto.register.schemas": False})
    with pytest.raises(SerializationError, match="40401"):
        strict.serialize(topic, AN_ORDER)
    assert registry.client().get_subjects() == []
    schema_id = registry.client().register_schema(f"{topic}-value", _avro(ORDER))
    assert strict.serialize(topic, AN_ORDER)[1:5] == schema_id.to_bytes(4, "big")


def test_use_latest_version_writes_with_the_subjects_latest_schema(registry: RegistryProcess) -> None:
    topic = unique_name("orders")
    client = registry.client()
    client.register_schema(f"{topic}-value", _avro(ORDER))
    latest_id = client.register_schema(f"{topic}-value", _avro(ORDER_V2))
    counting = CountingClient(registry.url)
    latest = serdes.avro(counting, ORDER, config={"use.latest.version": True})
    data = latest.serialize(topic, dict(AN_ORDER, note="hi"))
    assert data[1:5] == latest_id.to_bytes(4, "big")
    assert serdes.avro(registry.url).deserialize(topic, data) == dict(AN_ORDER, note="hi")
    latest.serialize(topic, dict(AN_ORDER, note="again"))
    assert counting.latest_calls == 1  # asked once per subject, not per record

    people = unique_name("people")
    strict_person = json.dumps(json.loads(PERSON) | {"required": ["name", "age"]})
    client.register_schema(f"{people}-value", Schema(strict_person, "JSON"))
    loose_id = client.register_schema(f"{people}-value", Schema(PERSON, "JSON"))  # widening: compatible
    with pytest.raises(SerializationError, match="'age' is a required property"):
        serdes.json_schema(registry.url, strict_person).serialize(people, {"name": "Ada"})
    json_latest = serdes.json_schema(registry.url, strict_person, config={"use.latest.version": True})
    # checked against the latest schema, not the given one
    assert json_latest.serialize(people, {"name": "Ada"})[1:5] == loose_id.to_bytes(4, "big")


@pytest.mark.parametrize(
    ("strategy", "confluent_strategy", "subject"),
    [
        ("RecordNameStrategy", record_subject_name_strategy, "shop.Order"),
        ("TopicRecordNameStrategy", topic_record_subject_name_strategy, "{topic}-shop.Order"),
    ],
)
def test_record_name_strategies_name_the_subject_as_confluent_does(
    registry: RegistryProcess, strategy: str, confluent_strategy: object, subject: str
) -> None:
    topic = unique_name("orders")
    strom = serdes.avro(registry.url, ORDER, config={"subject.name.strategy": strategy})
    strom.serialize(topic, AN_ORDER)
    assert registry.client().get_subjects() == [subject.format(topic=topic)]
    confluent = AvroSerializer(
        registry.client(), ORDER, conf={"subject.name.strategy": confluent_strategy}
    )  # registers nothing new: the same subject and schema
    confluent(AN_ORDER, SerializationContext(topic, MessageField.VALUE))
    assert registry.client().get_subjects() == [subject.format(topic=topic)]


def test_a_key_serde_uses_the_key_subject(registry: RegistryProcess) -> None:
    topic = unique_name("orders")
    key = serdes.avro(registry.url, '"string"', is_key=True)
    data = key.serialize(topic, "k1")
    assert registry.client().get_subjects() == [f"{topic}-key"]
    context = SerializationContext(topic, MessageField.KEY)
    assert data == AvroSerializer(registry.client(), '"string"')("k1", context)
    assert key.deserialize(topic, data) == "k1"


def test_bytes_without_the_framing_or_of_another_schema_type_are_refused(registry: RegistryProcess) -> None:
    topic = unique_name("mixed")
    reader = serdes.avro(registry.url)
    with pytest.raises(SerializationError, match="magic byte"):
        reader.deserialize(topic, b'{"id": 1}')
    json_bytes = serdes.json_schema(registry.url, PERSON).serialize(topic, {"name": "Ada"})
    with pytest.raises(SerializationError, match="is a JSON schema, not AVRO"):
        reader.deserialize(topic, json_bytes)
    with pytest.raises(SerializationError, match="40403"):
        reader.deserialize(topic, b"\x00\x00\x00\x03\xe7")


def test_an_unreachable_registry_is_a_serialization_error_naming_the_url() -> None:
    with pytest.raises(SerializationError, match=r"registry at http://127\.0\.0\.1:9 is unreachable"):
        serdes.avro("http://127.0.0.1:9", ORDER).serialize("t", AN_ORDER)


def _avro(schema: str) -> Schema:
    return Schema(schema, "AVRO")
