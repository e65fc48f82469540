"""Values framed by registry serializers, decoded through a stand-in registry and `strom registry`."""

from __future__ import annotations

import datetime
import decimal
import html
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from strom.console.registry import Registry
from tests.support.cli import run_strom
from tests.support.registry import RegistryProcess
from tests.support.scenario import unique_name

READY_PREFIX = "strom console ready on "

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


def test_avro_values_are_decoded_and_odd_values_shown_as_hex_with_a_note(registry_url: str) -> None:
    registry = Registry(registry_url)
    assert registry.decode(framed(2, b"")) == ("schema 2 (AVRO)", "{}")
    assert registry.decode(framed(2, b"\x0e\x01")) == (
        "schema 2 (AVRO): does not decode, shown as hex",
        "0e 01",
    )  # bytes left over: not written with this schema
    assert registry.decode(b'{"plain": "json"}') is None  # no magic byte
    assert registry.decode(framed(99, b"{}")) == (
        "schema 99 is unknown to the registry, shown as hex",
        "7b 7d",
    )
    assert Registry("http://127.0.0.1:1").decode(framed(1, b"{}")) == (
        "schema 1: the registry cannot be asked, shown as hex",
        "7b 7d",
    )


def test_the_messages_page_shows_avro_keys_and_values_written_by_confluents_serializer(
    strom_broker: str,
) -> None:
    topic = unique_name("avro-orders")
    assert run_strom("topics", "create", topic, "--bootstrap", strom_broker).returncode == 0
    registry = RegistryProcess(strom_broker, unique_name("_schemas"))
    try:
        client = registry.client()
        values = AvroSerializer(client, ORDER)
        keys = AvroSerializer(client, ORDER_KEY)
        producer = Producer({"bootstrap.servers": strom_broker})
        producer.produce(
            topic,
            key=keys({"id": 7}, SerializationContext(topic, MessageField.KEY)),
            value=values(AN_ORDER, SerializationContext(topic, MessageField.VALUE)),
        )
        producer.produce(topic, key=b"plain", value=b"\x00\x00\x00\x7f\xffnot avro")
        assert producer.flush(30) == 0
        value_id = client.get_latest_version(f"{topic}-value").schema_id

        with (
            console(strom_broker, registry.url) as url,
            urllib.request.urlopen(f"{url}/topics/{topic}/messages", timeout=30) as answer,
        ):
            page = html.unescape(answer.read().decode())
    finally:
        registry.stop()
    assert '{"id": 7}' in page
    shown = json.dumps(SHOWN, indent=2, ensure_ascii=False)
    assert shown in page, page
    assert f"schema {value_id} (AVRO)" in page
    assert "schema 32767 is unknown to the registry, shown as hex" in page
    assert "6e 6f 74 20 61 76 72 6f" in page  # "not avro"


ORDER = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "fields": [
            {"name": "item", "type": "string"},
            {"name": "photo", "type": "bytes"},
            {"name": "placed", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {
                "name": "price",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2},
            },
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    }
)
AN_ORDER = {
    "item": "kettle ü",
    "photo": b"\x00\x01\xff",
    "placed": datetime.datetime(2026, 12, 8, 3, 4, 5, 678000, tzinfo=datetime.UTC),
    "day": datetime.date(2026, 12, 8),
    "price": decimal.Decimal("19.50"),
    "note": None,
}
ORDER_KEY = '{"type": "record", "name": "OrderKey", "fields": [{"name": "id", "type": "int"}]}'
SHOWN = {
    "item": "kettle ü",
    "photo": "AAH/",
    "placed": "2026-12-08T03:04:05.678000+00:00",
    "day": "2026-12-08",
    "price": "19.50",
    "note": None,
}


@contextmanager
def console(bootstrap: str, registry: str) -> Iterator[str]:
    """`strom console` with the registry, as a user starts it; its URL once it says it is ready."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "strom.cli", "console", "--bootstrap", bootstrap, "--listen", "127.0.0.1:0",
         "--registry", registry],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith(READY_PREFIX), line
        yield line[len(READY_PREFIX) :]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
