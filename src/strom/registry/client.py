"""A small synchronous client of a Confluent-compatible schema registry (strom's or Confluent's).

Serdes call it from inside a record loop, so it is plain blocking HTTP (the standard library's urllib, no
event loop) and caches what never changes: a schema id names one schema forever, and a (subject, schema)
pair keeps its id. `latest` is not cached: a new version may appear at any time.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryClientError(Exception):
    """The registry answered with an error: `status` is the HTTP status, `error_code` the registry's code
    (Confluent's, e.g. 40401 subject not found, 409 incompatible)."""

    def __init__(self, url: str, status: int, error_code: int, message: str) -> None:
        super().__init__(f"{message} (error {error_code}, HTTP {status}, {url})")
        self.status = status
        self.error_code = error_code
        self.message = message


class RegistryUnreachableError(Exception):
    """No answer from the registry: nothing listens at the URL, or it timed out."""


@dataclass(frozen=True, slots=True)
class SchemaReference:
    """A named type a schema uses from another registered version: `name` is the type's full name (Avro)."""

    name: str
    subject: str
    version: int


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """A schema as the registry serves it: its global id, text, type (AVRO, JSON) and the registered versions
    whose named types it uses."""

    schema_id: int
    schema: str
    schema_type: str
    references: tuple[SchemaReference, ...] = ()

    @classmethod
    def from_answer(cls, schema_id: int, answer: dict[str, Any]) -> RegisteredSchema:
        """The schema in a registry answer (`/schemas/ids/N` or a subject's version)."""
        references = tuple(
            SchemaReference(str(ref["name"]), str(ref["subject"]), int(ref["version"]))
            for ref in answer.get("references") or ()
        )
        return cls(schema_id, answer["schema"], answer.get("schemaType", "AVRO"), references)


class SchemaRegistryClient:
    """REST calls on one registry URL, with the id and registration caches serdes need on the hot path."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._by_id: dict[int, RegisteredSchema] = {}
        self._ids: dict[tuple[str, str, str, tuple[SchemaReference, ...]], int] = {}
        self._lock = threading.Lock()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded JSON answer of one call; raises `RegistryClientError` on an error answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                answer = json.loads(raw)
                code, message = int(answer["error_code"]), str(answer["message"])
            except (ValueError, KeyError, TypeError):
                code, message = error.code, raw.decode("utf-8", "replace") or error.reason
            raise RegistryClientError(self.url, error.code, code, message) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryUnreachableError(
                f"schema registry at {self.url} is unreachable: {reason}"
            ) from None

    def register(
        self, subject: str, schema: str, schema_type: str, references: tuple[SchemaReference, ...] = ()
    ) -> int:
        """The id of `schema` under `subject`, registering it as a new version if it is not there yet."""
        key = (subject, schema_type, schema, references)
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        path = f"/subjects/{_quote(subject)}/versions"
        answer = self.request("POST", path, _body(schema, schema_type, references))
        return self._remember_id(key, int(answer["id"]))

    def lookup(
        self, subject: str, schema: str, schema_type: str, references: tuple[SchemaReference, ...] = ()
    ) -> int:
        """The id of `schema` if it is registered under `subject` (40401/40403 otherwise)."""
        key = (subject, schema_type, schema, references)
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        found = self.registered_version(subject, schema, schema_type, references)
        return self._remember_id(key, int(found["id"]))

    def registered_version(
        self, subject: str, schema: str, schema_type: str, references: tuple[SchemaReference, ...] = ()
    ) -> dict[str, Any]:
        """The version of `subject` that holds `schema` (subject, version, id, schema), uncached."""
        path = f"/subjects/{_quote(subject)}"
        answer: dict[str, Any] = self.request("POST", path, _body(schema, schema_type, references))
        return answer

    def compatibility(
        self, subject: str, schema: str, schema_type: str, version: str | int = "latest"
    ) -> dict[str, Any]:
        """The registry's verdict on `schema` after `subject`'s version: is_compatible, and messages why."""
        path = f"/compatibility/subjects/{_quote(subject)}/versions/{version}?verbose=true"
        answer: dict[str, Any] = self.request("POST", path, _body(schema, schema_type))
        return answer

    def version(self, subject: str, version: str | int = "latest") -> dict[str, Any]:
        """One version of a subject as the registry serves it (subject, version, id, schema, schemaType)."""
        answer: dict[str, Any] = self.request("GET", f"/subjects/{_quote(subject)}/versions/{version}")
        return answer

    def latest(self, subject: str) -> RegisteredSchema:
        """The subject's latest version, asked every time (it changes when a version is registered)."""
        answer = self.version(subject)
        found = RegisteredSchema.from_answer(int(answer["id"]), answer)
        with self._lock:
            self._by_id[found.schema_id] = found
        return found

    def schema_by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with this global id; cached, since an id never names another schema."""
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        answer = self.request("GET", f"/schemas/ids/{schema_id}")
        found = RegisteredSchema.from_answer(schema_id, answer)
        with self._lock:
            self._by_id[schema_id] = found
        return found

    def _remember_id(self, key: tuple[str, str, str, tuple[SchemaReference, ...]], schema_id: int) -> int:
        with self._lock:
            self._ids[key] = schema_id
        return schema_id


def _quote(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")


def _body(schema: str, schema_type: str, references: tuple[SchemaReference, ...] = ()) -> dict[str, Any]:
    # Confluent omits schemaType for AVRO, its default, and references when there are none; so do we, for
    # registries that predate the fields.
    body: dict[str, Any] = {"schema": schema}
    if schema_type != "AVRO":
        body["schemaType"] = schema_type
    if references:
        body["references"] = [
            {"name": ref.name, "subject": ref.subject, "version": ref.version} for ref in references
        ]
    return body
