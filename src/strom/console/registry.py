"""Values written with a schema registry's serializers, shown as JSON where the console can decode them.

Confluent's wire format: magic byte 0, a 4-byte big-endian schema id, then the encoded value. The schema is
fetched once per id from `GET {registry}/schemas/ids/{id}`. JSON Schema values are JSON after the header;
Avro values are a schemaless Avro datum, read with the writer's schema (fastavro) and shown as JSON (bytes
and fixed as base64, logical types as ISO dates and times, decimals and UUIDs as strings). Protobuf values,
ids the registry does not know (or cannot be asked about) and bytes that do not decode are shown as hex
with a note saying why, never as an error: one odd record must not hide the rest of the page.

The schemas pages read subjects, versions and compatibility levels through the registry's REST API, and ask
it for a compatibility verdict; any refusal or outage becomes a RegistryError with the registry's message.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import io
import json
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import fastavro

from strom.console.errors import RegistryError

MAGIC = 0
HEADER = 5
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
UNKNOWN = "UNKNOWN"  # the registry answered that it has no schema with this id


def _json_value(value: object) -> object:
    """What json.dumps cannot write itself from an Avro datum: bytes, logical types."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not shown as JSON")


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One registered version of a subject, its schema as the registry stores it."""

    subject: str
    version: int
    schema_id: int
    schema_type: str
    schema: str

    @property
    def pretty(self) -> str:
        """Avro and JSON Schema indented as JSON; Protobuf (already text) as it is."""
        if self.schema_type == "PROTOBUF":
            return self.schema
        try:
            return json.dumps(json.loads(self.schema), indent=2, ensure_ascii=False)
        except ValueError:
            return self.schema


class Registry:
    """A read-only client of a schema registry, caching schemas by id (ids are immutable there)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._schemas: dict[int, tuple[str, Any]] = {}
        self._lock = threading.Lock()

    def ask(self, method: str, path: str, body: Any = None) -> Any:
        """One REST call; the decoded JSON answer, or RegistryError with the registry's own message."""
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as error:
            try:
                message = str(json.loads(error.read()).get("message") or error.reason)
            except (ValueError, AttributeError):
                message = str(error.reason)
            status = 404 if error.code == 404 else 400 if error.code < 500 else 502
            raise RegistryError(f"the schema registry says: {message}", status) from error
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            raise RegistryError(f"cannot reach the schema registry at {self.url}: {reason}") from error

    def subjects(self) -> list[str]:
        return sorted(str(s) for s in self.ask("GET", "/subjects"))

    def versions(self, subject: str) -> list[int]:
        return [int(v) for v in self.ask("GET", f"/subjects/{quote(subject, safe='')}/versions")]

    def version(self, subject: str, version: int | str = "latest") -> SchemaVersion:
        found = self.ask("GET", f"/subjects/{quote(subject, safe='')}/versions/{version}")
        return SchemaVersion(
            subject=str(found["subject"]),
            version=int(found["version"]),
            schema_id=int(found["id"]),
            schema_type=str(found.get("schemaType", "AVRO")),
            schema=str(found["schema"]),
        )

    def compatibility_level(self, subject: str) -> str:
        """The subject's level, or the global one when the subject has none."""
        path = f"/config/{quote(subject, safe='')}?defaultToGlobal=true"
        return str(self.ask("GET", path)["compatibilityLevel"])

    def check(self, subject: str, schema: str, schema_type: str) -> tuple[bool, list[str]]:
        """May `schema` be registered under `subject` at its level? (verdict, the registry's messages)."""
        body: dict[str, Any] = {"schema": schema}
        if schema_type != "AVRO":
            body["schemaType"] = schema_type
        path = f"/compatibility/subjects/{quote(subject, safe='')}/versions?verbose=true"
        answer = self.ask("POST", path, body)
        return bool(answer["is_compatible"]), [str(m) for m in answer.get("messages", [])]

    def schema_type(self, schema_id: int) -> str | None:
        """AVRO, JSON, PROTOBUF or UNKNOWN (the registry has no such id); None when it cannot be asked."""
        found = self._schema(schema_id)
        return None if found is None else found[0]

    def _schema(self, schema_id: int) -> tuple[str, Any] | None:
        """(type, the parsed Avro schema or None), fetched once per id; None, not cached, when unreachable."""
        with self._lock:
            if schema_id in self._schemas:
                return self._schemas[schema_id]
        try:
            with urllib.request.urlopen(
                f"{self.url}/schemas/ids/{schema_id}", timeout=self.timeout
            ) as answer:
                body = json.loads(answer.read())
            kind = str(body.get("schemaType", "AVRO"))
            parsed = fastavro.parse_schema(json.loads(body["schema"])) if kind == "AVRO" else None
            found: tuple[str, Any] = (kind, parsed)
        except urllib.error.HTTPError as error:
            if error.code != 404:
                return None
            found = (UNKNOWN, None)
        except (urllib.error.URLError, OSError, ValueError, KeyError, fastavro.schema.SchemaParseException):
            return None  # the registry may answer (or be fixed) next time
        with self._lock:
            self._schemas[schema_id] = found
        return found

    def decode(self, value: bytes, indent: int | None = 2) -> tuple[str, str] | None:
        """(what schema, the value as text) for a registry-framed value; None for any other value.

        `indent` None gives one line, for keys.
        """
        if len(value) < HEADER or value[0] != MAGIC:
            return None
        schema_id = int.from_bytes(value[1:HEADER], "big")
        payload = value[HEADER:]
        found = self._schema(schema_id)
        if found is None:
            return f"schema {schema_id}: the registry cannot be asked, shown as hex", payload.hex(" ")
        kind, avro = found
        if kind == UNKNOWN:
            return f"schema {schema_id} is unknown to the registry, shown as hex", payload.hex(" ")
        try:
            if kind == "JSON":
                datum = json.loads(payload)
            elif kind == "AVRO":
                datum = self._avro(payload, avro)
            else:
                return f"schema {schema_id} ({kind}, not decoded)", payload.hex(" ")
            shown = json.dumps(datum, indent=indent, ensure_ascii=False, default=_json_value)
        except (ValueError, TypeError, EOFError, IndexError, fastavro.read.SchemaResolutionError):
            return f"schema {schema_id} ({kind}): does not decode, shown as hex", payload.hex(" ")
        return f"schema {schema_id} ({kind})", shown

    @staticmethod
    def _avro(payload: bytes, schema: Any) -> Any:
        """One schemaless Avro datum that must use every byte (trailing bytes mean a wrong schema)."""
        stream = io.BytesIO(payload)
        datum = fastavro.schemaless_reader(stream, schema, None)
        if stream.tell() != len(payload):
            raise ValueError(f"{len(payload) - stream.tell()} bytes left after the Avro datum")
        return datum
