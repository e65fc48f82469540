"""Values written with a schema registry's serializers, shown as JSON where the console can decode them.

Confluent's wire format: magic byte 0, a 4-byte big-endian schema id, then the encoded value. The schema is
fetched once per id from `GET {registry}/schemas/ids/{id}`. JSON Schema values are JSON after the header
and are shown decoded; Avro and Protobuf values need their codecs, which the console does not ship, so they
are shown as hex with the schema named.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

MAGIC = 0
HEADER = 5


class Registry:
    """A read-only client of a schema registry, caching schemas by id (ids are immutable there)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._types: dict[int, str | None] = {}
        self._lock = threading.Lock()

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
