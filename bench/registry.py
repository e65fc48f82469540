"""strom registry: REST rates, and strom's Avro serde next to confluent-kafka's, on one registry.

Starts `strom broker --registry-listen 127.0.0.1:0` as its own process (the registry inside the broker, the
embedded default), then measures from this process:
- lookups: `GET /schemas/ids/{id}` on one kept-alive HTTP connection, requests/s (the server's read path;
  clients cache these answers, so this is the cost of a cache miss);
- registrations: `POST /subjects/{s}/versions` of a new schema each time, registrations/s (each one is
  appended to `_schemas` and answered once the registry has read it back);
- serde: the same records serialised then deserialised by `strom.registry.serdes.avro` and by
  confluent-kafka's `AvroSerializer`/`AvroDeserializer`, against the same registry and subject; records/s
  for each and the ratio strom / confluent-kafka (target >= 1.0x). The two must write the same bytes.

Peer registry: none runs here. Confluent Schema Registry is a JVM service not cached on this machine, and
Karapace (its Python reimplementation) is not installed, so the REST rates are strom's alone.

Usage: python bench/registry.py [--lookups N] [--registrations N] [--records N]
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

from strom.registry import serdes  # noqa: E402

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
TOPIC = "orders"
PASSES = 5
ORDER = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "namespace": "bench",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "customer", "type": "string"},
            {"name": "amount", "type": "double"},
            {"name": "paid", "type": "boolean"},
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "items", "type": {"type": "array", "items": "string"}},
            {
                "name": "status",
                "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SENT"]},
            },
        ],
    }
)


@contextmanager
def strom_registry(workdir: Path) -> Iterator[str]:
    """`strom broker` with its registry, as its own process; yields the registry's URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "strom.cli", "broker", "--data-dir", str(workdir / "strom-data"),
         "--listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = ""
        for line in proc.stdout:
            if line.startswith("strom registry ready on "):
                url = line.split(" on ", 1)[1].strip()
                break
        if not url:
            raise RuntimeError("strom broker exited before its registry was ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _call(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None) -> Any:
    payload = None if body is None else json.dumps(body)
    conn.request(method, path, payload, {"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE})
    response = conn.getresponse()
    answer = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {answer}")
    return answer


def rest_rates(url: str, lookups: int, registrations: int) -> tuple[float, float]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))
    started = time.perf_counter()
    ids = []
    for n in range(registrations):
        schema = {"type": "record", "name": f"R{n}", "fields": [{"name": f"f{n}", "type": "long"}]}
        ids.append(
            _call(conn, "POST", f"/subjects/bench-{n}-value/versions", {"schema": json.dumps(schema)})["id"]
        )
    registered = registrations / (time.perf_counter() - started)
    started = time.perf_counter()
    for n in range(lookups):
        _call(conn, "GET", f"/schemas/ids/{ids[n % len(ids)]}")
    looked_up = lookups / (time.perf_counter() - started)
    conn.close()
    return looked_up, registered


def records(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": n,
            "customer": f"customer-{n % 977}",
            "amount": n * 1.25,
            "paid": n % 2 == 0,
            "note": None if n % 3 else f"note {n}",
            "items": [f"sku-{n % 13}", f"sku-{n % 7}"],
            "status": ("NEW", "PAID", "SENT")[n % 3],
        }
        for n in range(count)
    ]


def serde_rates(url: str, values: list[dict[str, Any]]) -> dict[str, float]:
    """Records/s of serialise and of deserialise for each serde, best of `PASSES` passes over `values`."""
    strom = serdes.avro(url, ORDER)
    client = SchemaRegistryClient({"url": url})
    serializer = AvroSerializer(client, ORDER)
    deserializer = AvroDeserializer(client, ORDER)
    context = SerializationContext(TOPIC, MessageField.VALUE)
    strom_bytes = [strom.serialize(TOPIC, value) for value in values[:100]]
    confluent_bytes = [serializer(value, context) for value in values[:100]]
    if strom_bytes != confluent_bytes:
        raise RuntimeError("strom's and confluent-kafka's Avro serializers wrote different bytes")
    if [deserializer(data, context) for data in strom_bytes] != values[:100]:
        raise RuntimeError("confluent-kafka's deserializer did not read back what strom wrote")

    written = [strom.serialize(TOPIC, value) for value in values]
    runs: dict[str, Callable[[], object]] = {
        "strom serialize": lambda: [strom.serialize(TOPIC, value) for value in values],
        "confluent-kafka serialize": lambda: [serializer(value, context) for value in values],
        "strom deserialize": lambda: [strom.deserialize(TOPIC, data) for data in written],
        "confluent-kafka deserialize": lambda: [deserializer(data, context) for data in written],
    }
    # Interleaved passes, best of each: the machine is shared, so a burst of load hits both serdes alike.
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(PASSES):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: len(values) / seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--registrations", type=int, default=200)
    parser.add_argument("--records", type=int, default=20000)
    args = parser.parse_args()
    print(
        "peer registry: none runs here (Confluent Schema Registry is not cached, Karapace is not installed)"
    )
    with (
        tempfile.TemporaryDirectory(prefix="registry-bench-") as workdir,
        strom_registry(Path(workdir)) as url,
    ):
        looked_up, registered = rest_rates(url, args.lookups, args.registrations)
        print(f"strom registry  lookups by id  {looked_up:10.0f} /s  ({args.lookups} GET /schemas/ids/N)")
        print(f"strom registry  registrations  {registered:10.0f} /s  ({args.registrations} new schemas)")
        rates = serde_rates(url, records(args.records))
    for name, rate in rates.items():
        print(f"{name:28} {rate:10.0f} records/s")
    for step in ("serialize", "deserialize"):
        ratio = rates[f"strom {step}"] / rates[f"confluent-kafka {step}"]
        print(f"{step:11} strom / confluent-kafka: {ratio:.2f}x (target >= 1.0x)")


if __name__ == "__main__":
    main()
