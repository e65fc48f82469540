"""Values framed by a schema registry's serializers, decoded through a (stand-in) registry over real HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from strom.console.registry import Registry

SCHEMAS = {
    1: {"schema": '{"type": "object"}', "schemaType": "JSON"},
    2: {"schema": '{"type": "record", "name": "Order", "fields": []}'},  # no schemaType: Avro
}


class SchemaById(BaseHTTPRequestHandler):
    """Answers GET /schemas/ids/N as Confluent's registry does (404 for an unknown id)."""

    asked: list[str] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        schema_id = self.path.rsplit("/", 1)[-1]
        body = SCHEMAS.get(int(schema_id)) if schema_id.isdigit() else None
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.end_headers()
        self.wfile.write(json.dumps(body or {"error_code": 40403}).encode())

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads what was asked from `asked`."""


@pytest.fixture
def registry_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SchemaById)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def framed(schema_id: int, payload: bytes) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + payload


def test_json_schema_values_are_decoded_and_schemas_fetched_once_per_id(registry_url: str) -> None:
    SchemaById.asked.clear()
    registry = Registry(registry_url)
    assert registry.decode(framed(1, b'{"order": 7}')) == ("schema 1 (JSON)", '{\n  "order": 7\n}')
    assert registry.decode(framed(1, b'{"order": 8}')) == ("schema 1 (JSON)", '{\n  "order": 8\n}')
    assert SchemaById.asked == ["/schemas/ids/1"]


def test_avro_values_are_named_and_shown_as_hex_and_other_values_left_alone(registry_url: str) -> None:
    registry = Registry(registry_url)
    assert registry.decode(framed(2, b"\x0e\x01")) == ("schema 2 (AVRO, not decoded)", "0e 01")
    assert registry.decode(b'{"plain": "json"}') is None  # no magic byte
    assert registry.decode(framed(99, b"{}")) is None  # the registry does not know the id
    assert Registry("http://127.0.0.1:1").decode(framed(1, b"{}")) is None  # no registry there
