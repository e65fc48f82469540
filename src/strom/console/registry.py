"""Values written with a schema registry's serializers, shown as JSON where the console can decode them.

Confluent's wire format: magic byte 0, a 4-byte big-endian schema id, then the encoded value. The schema is
fetched once per id from `GET {registry}/schemas/ids/{id}`. JSON Schema values are JSON after the header
and are shown decoded; Avro and Protobuf values need their codecs, which the console does not ship, so they
are shown as hex with the schema named.

The schemas pages read subjects, versions and compatibility levels through the registry's REST API, and ask
it for a compatibility verdict; any refusal or outage becomes a RegistryError with the registry's message.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from strom.console.errors import RegistryError

MAGIC = 0
HEADER = 5
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


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
        self._types: dict[int, str | None] = {}
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
        """AVRO, JSON or PROTOBUF for a known id; None when the registry does not know it or is down."""
        with self._lock:
            if schema_id in self._types:
                return self._types[schema_id]
        try:
            with urllib.request.urlopen(
                f"{self.url}/schemas/ids/{schema_id}", timeout=self.timeout
            ) as answer:
                body = json.loads(answer.read())
            kind: str | None = str(body.get("schemaType", "AVRO"))
        except (urllib.error.URLError, OSError, ValueError):
            return None  # not cached: the registry may answer next time
        with self._lock:
            self._types[schema_id] = kind
        return kind

    def decode(self, value: bytes) -> tuple[str, str] | None:
        """(what schema, the value as text) for a registry-framed value; None for any other value."""
        if len(value) < HEADER or value[0] != MAGIC:
            return None
        schema_id = int.from_bytes(value[1:HEADER], "big")
        kind = self.schema_type(schema_id)
        if kind is None:
            return None
        payload = value[HEADER:]
        if kind == "JSON":
            try:
                return f"schema {schema_id} (JSON)", json.dumps(
                    json.loads(payload), indent=2, ensure_ascii=False
                )
            except ValueError:
                pass
        return f"schema {schema_id} ({kind}, not decoded)", payload.hex(" ")
