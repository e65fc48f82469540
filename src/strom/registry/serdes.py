"""Serdes for strom.streams that use a schema registry and Confluent's wire format.

Every serialised value is ``0x00`` (the magic byte), the schema's registry id as 4 bytes big-endian, then the
payload: an Avro binary datum (no container header) or compact UTF-8 JSON. These are the bytes
confluent-kafka's ``AvroSerializer``/``JSONSerializer`` and Java's ``KafkaAvroSerializer`` write, so strom
apps and Confluent-based apps share topics in both directions.

``avro(registry, schema)`` and ``json_schema(registry, schema)`` take the registry's URL (or a
``SchemaRegistryClient``) and the writer schema; the config keys are Confluent's:

- ``auto.register.schemas`` (default true): register the schema under the subject on first use; when false
  the schema must already be registered there (it is looked up).
- ``use.latest.version`` (default false): write with the subject's latest registered schema instead (asked
  once per subject for the serde's life, like every other registry answer).
- ``subject.name.strategy``: ``"TopicNameStrategy"`` (default, ``<topic>-key``/``<topic>-value``),
  ``"RecordNameStrategy"`` (the record's full name, or the JSON schema's ``title``),
  ``"TopicRecordNameStrategy"`` (``<topic>-<record name>``), or a function ``(topic, is_key, record_name)``.
- ``validate`` (JSON Schema only, default true): check each value against the schema before writing it, and
  each value read against its writer's schema (the one its id names), as Confluent's ``JSONSerializer`` and
  ``JSONDeserializer`` do by default; a value that breaks it is a ``SerializationError``.

Reading needs no schema: the writer's schema is fetched by the id in the record (and cached). An Avro serde
given a schema reads every record into that schema (Avro schema resolution), as ``AvroDeserializer`` does.

Avro schema references: ``avro(registry, schema, references=[SchemaReference(name, subject, version)])``
writes with a schema that uses named types of other registered versions (registered with those references);
the referenced schemas are fetched (and theirs, depth first) when the serde is made, and likewise for a
writer's schema that the registry serves with references.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import fastavro
import jsonschema
import orjson

from strom.registry.client import (
    RegisteredSchema,
    RegistryClientError,
    RegistryUnreachableError,
    SchemaReference,
    SchemaRegistryClient,
)
from strom.streams.errors import SerializationError
from strom.streams.serdes import Serde

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")

SubjectNameStrategy = Callable[[str, bool, str | None], str]


def topic_name_strategy(topic: str, is_key: bool, record_name: str | None) -> str:
    """``<topic>-key`` or ``<topic>-value``: one schema lineage per topic (Confluent's default)."""
    return f"{topic}-{'key' if is_key else 'value'}"


def record_name_strategy(topic: str, is_key: bool, record_name: str | None) -> str:
    """The record's full name: one lineage per record type, whatever topic carries it."""
    if record_name is None:
        raise SerializationError("RecordNameStrategy needs a named schema (an Avro record, a JSON title)")
    return record_name


def topic_record_name_strategy(topic: str, is_key: bool, record_name: str | None) -> str:
    """``<topic>-<record name>``: several record types in one topic, each with its own lineage."""
    return f"{topic}-{record_name_strategy(topic, is_key, record_name)}"


STRATEGIES: dict[str, SubjectNameStrategy] = {
    "TopicNameStrategy": topic_name_strategy,
    "RecordNameStrategy": record_name_strategy,
    "TopicRecordNameStrategy": topic_record_name_strategy,
}


class _RegistrySerde(Serde[Any]):
    """Framing, subject naming and id resolution shared by the Avro and JSON Schema serdes.

    Invariant: a (subject -> id) answer is cached for the serde's life (also with ``use.latest.version``), so
    the hot path does one dict lookup per record; the registry is asked again only for a new subject.
    """

    schema_type = ""
    config_keys = frozenset({"auto.register.schemas", "use.latest.version", "subject.name.strategy"})

    def __init__(
        self,
        registry: str | SchemaRegistryClient,
        schema: str | None,
        is_key: bool,
        config: Mapping[str, Any] | None,
        references: tuple[SchemaReference, ...] = (),
    ) -> None:
        config = dict(config or {})
        unknown = set(config) - self.config_keys
        if unknown:
            raise ValueError(
                f"unknown {self.name} serde config {sorted(unknown)}; known: {sorted(self.config_keys)}"
            )
        self.registry = (
            registry if isinstance(registry, SchemaRegistryClient) else SchemaRegistryClient(registry)
        )
        self.schema = schema
        self.references = references
        self.is_key = is_key
        self.auto_register = bool(config.get("auto.register.schemas", True))
        self.use_latest = bool(config.get("use.latest.version", False))
        strategy = config.get("subject.name.strategy", topic_name_strategy)
        if isinstance(strategy, str):
            if strategy not in STRATEGIES:
                raise ValueError(f"unknown subject.name.strategy {strategy!r}; known: {sorted(STRATEGIES)}")
            strategy = STRATEGIES[strategy]
        self.strategy: SubjectNameStrategy = strategy
        self._subject_ids: dict[str, int] = {}

    def record_name(self) -> str | None:
        raise NotImplementedError

    def encode(self, schema_id: int, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, schema_id: int, payload: bytes) -> Any:
        raise NotImplementedError

    def serialize(self, topic: str, value: Any) -> bytes | None:
        if value is None:
            return None
        subject = self.strategy(topic, self.is_key, self.record_name())
        schema_id = self._subject_ids.get(subject)
        if schema_id is None:
            schema_id = self._resolve_id(subject)
        return _HEADER.pack(MAGIC_BYTE, schema_id) + self.encode(schema_id, value)

    def deserialize(self, topic: str, data: bytes | None) -> Any:
        if data is None:
            return None
        if len(data) < _HEADER.size or data[0] != MAGIC_BYTE:
            raise SerializationError(
                f"{self.name} deserializer: {len(data)} bytes do not start with the magic byte 0 and a "
                "4-byte schema id; the record was not written by a schema-registry serializer"
            )
        schema_id = _HEADER.unpack_from(data)[1]
        return self.decode(schema_id, data[_HEADER.size :])

    def writer_schema(self, schema_id: int) -> RegisteredSchema:
        """The schema with this id (cached by the client); registry failures raise `SerializationError`, as
        does an id of another schema type."""
        try:
            found = self.registry.schema_by_id(schema_id)
        except (RegistryClientError, RegistryUnreachableError) as error:
            raise SerializationError(f"{self.name} serde: schema id {schema_id}: {error}") from error
        if found.schema_type != self.schema_type:
            raise SerializationError(
                f"{self.name} serde: schema id {schema_id} is a {found.schema_type} schema, "
                f"not {self.schema_type}"
            )
        return found

    def _resolve_id(self, subject: str) -> int:
        try:
            if self.use_latest:
                schema_id = self.registry.latest(subject).schema_id
            elif self.schema is None:
                raise SerializationError(f"{self.name} serde without a schema cannot serialise; give it one")
            elif self.auto_register:
                schema_id = self.registry.register(subject, self.schema, self.schema_type, self.references)
            else:
                schema_id = self.registry.lookup(subject, self.schema, self.schema_type, self.references)
        except (RegistryClientError, RegistryUnreachableError) as error:
            raise SerializationError(f"{self.name} serde: subject {subject!r}: {error}") from error
        self._subject_ids[subject] = schema_id
        return schema_id


class AvroSerde(_RegistrySerde):
    """Generic Avro: values are dicts (records), lists, strings and numbers, as fastavro handles them."""

    name = "avro"
    schema_type = "AVRO"

    def __init__(
        self,
        registry: str | SchemaRegistryClient,
        schema: str | None = None,
        is_key: bool = False,
        config: Mapping[str, Any] | None = None,
        references: tuple[SchemaReference, ...] = (),
    ) -> None:
        super().__init__(registry, schema, is_key, config, references)
        self._parsed: Any = None if schema is None else self._parse(schema, references)
        self._writers: dict[int, Any] = {}

    def _writer(self, schema_id: int) -> Any:
        """The parsed schema with this id (the registry is asked once per id)."""
        writer = self._writers.get(schema_id)
        if writer is None:
            found = self.writer_schema(schema_id)
            writer = self._writers[schema_id] = self._parse(found.schema, found.references)
        return writer

    def _parse(self, schema: str, references: tuple[SchemaReference, ...]) -> Any:
        """`schema` parsed after the named types of its references (and theirs, depth first), which fastavro
        then resolves by name."""
        named: dict[str, Any] = {}
        self._parse_references(references, named, set())
        return _parse_avro(schema, named)

    def _parse_references(
        self, references: tuple[SchemaReference, ...], named: dict[str, Any], seen: set[tuple[str, int]]
    ) -> None:
        for ref in references:
            if (ref.subject, ref.version) in seen:
                continue
            seen.add((ref.subject, ref.version))
            try:
                found = RegisteredSchema.from_answer(0, self.registry.version(ref.subject, ref.version))
            except (RegistryClientError, RegistryUnreachableError) as error:
                raise SerializationError(
                    f"avro serde: reference {ref.name!r} ({ref.subject!r} version {ref.version}): {error}"
                ) from error
            self._parse_references(found.references, named, seen)
            _parse_avro(found.schema, named)

    def record_name(self) -> str | None:
        parsed = self._parsed
        return parsed.get("name") if isinstance(parsed, dict) else None

    def encode(self, schema_id: int, value: Any) -> bytes:
        out = io.BytesIO()
        try:
            writer = self._writer(schema_id) if self.use_latest else self._parsed
            fastavro.schemaless_writer(out, writer, value)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise SerializationError(
                f"avro serde cannot write {value!r} with schema id {schema_id}: {error}"
            ) from None
        return out.getvalue()

    def decode(self, schema_id: int, payload: bytes) -> Any:
        writer = self._writer(schema_id)
        try:
            return fastavro.schemaless_reader(io.BytesIO(payload), writer, self._parsed)
        except (ValueError, TypeError, EOFError, IndexError, KeyError, StopIteration) as error:
            raise SerializationError(
                f"avro deserializer: cannot read a record of schema id {schema_id}: {error!r}"
            ) from None


class JsonSchemaSerde(_RegistrySerde):
    """JSON documents checked against a JSON Schema; the payload is compact UTF-8 JSON."""

    name = "json-schema"
    schema_type = "JSON"
    config_keys = _RegistrySerde.config_keys | {"validate"}

    def __init__(
        self,
        registry: str | SchemaRegistryClient,
        schema: str | None = None,
        is_key: bool = False,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(registry, schema, is_key, config)
        self.validate = bool((config or {}).get("validate", True))
        self._document: Any = None if schema is None else _parse_json(schema)
        self._validator: Any = None if schema is None else self._compile(self._document)
        self._validators: dict[int, Any] = {}

    def _compile(self, document: Any) -> Any:
        """A validator of `document`, or None when validation is off."""
        if not self.validate:
            return None
        return jsonschema.validators.validator_for(document)(document)

    def _validator_of(self, schema_id: int) -> Any:
        """The validator of the registered schema with this id (``use.latest.version`` and reading), compiled
        once; `writer_schema` refuses unknown ids and ids of another schema type even with validation off."""
        if schema_id not in self._validators:
            self._validators[schema_id] = self._compile(_parse_json(self.writer_schema(schema_id).schema))
        return self._validators[schema_id]

    def record_name(self) -> str | None:
        title = self._document.get("title") if isinstance(self._document, dict) else None
        return title if isinstance(title, str) else None

    def encode(self, schema_id: int, value: Any) -> bytes:
        validator = self._validator_of(schema_id) if self.use_latest else self._validator
        if validator is not None:
            error = next(iter(validator.iter_errors(value)), None)
            if error is not None:
                raise SerializationError(
                    f"json-schema serde: {value!r} does not match schema id {schema_id}: {error.message}"
                )
        try:
            return orjson.dumps(value)
        except TypeError as error:
            raise SerializationError(
                f"json-schema serde cannot write {type(value).__name__}: {error}"
            ) from None

    def decode(self, schema_id: int, payload: bytes) -> Any:
        # As Confluent's JSONDeserializer: checked against the serde's own schema when it has one, else the
        # writer's (`_validator_of` also refuses unknown ids and ids of another type).
        writers = self._validator_of(schema_id)
        validator = self._validator if self._validator is not None else writers
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise SerializationError(f"json-schema deserializer: invalid JSON ({error})") from None
        if validator is not None:
            violation = next(iter(validator.iter_errors(value)), None)
            if violation is not None:
                raise SerializationError(
                    f"json-schema deserializer: a record of schema id {schema_id} does not match the schema "
                    f"at {violation.json_path}: {violation.message}"
                )
        return value


def avro(
    registry: str | SchemaRegistryClient,
    schema: str | None = None,
    *,
    is_key: bool = False,
    config: Mapping[str, Any] | None = None,
    references: Sequence[SchemaReference] = (),
) -> AvroSerde:
    """Avro values with the registry (Confluent's ``AvroSerializer``/``AvroDeserializer``); `references`
    name the registered versions whose named types `schema` uses."""
    return AvroSerde(registry, schema, is_key, config, tuple(references))


def json_schema(
    registry: str | SchemaRegistryClient,
    schema: str | None = None,
    *,
    is_key: bool = False,
    config: Mapping[str, Any] | None = None,
) -> JsonSchemaSerde:
    """JSON Schema values with the registry (Confluent's ``JSONSerializer``/``JSONDeserializer``)."""
    return JsonSchemaSerde(registry, schema, is_key, config)


def _parse_avro(schema: str, named: dict[str, Any]) -> Any:
    """`schema` parsed; its named types go into `named`, where the types it uses by name are looked up."""
    try:
        return fastavro.parse_schema(orjson.loads(schema), named_schemas=named)
    except (
        orjson.JSONDecodeError,
        fastavro.schema.SchemaParseException,
        fastavro.schema.UnknownType,
    ) as error:
        raise SerializationError(f"avro serde: invalid Avro schema ({error})") from None


def _parse_json(schema: str) -> Any:
    try:
        return orjson.loads(schema)
    except orjson.JSONDecodeError as error:
        raise SerializationError(f"json-schema serde: the schema is not JSON ({error})") from None
