"""docs/grafana-strom.json loads as a Grafana dashboard and every query names a metric strom exports: the
streams ones are read from a Streams instance's own registry, so a renamed metric fails here before a user's
dashboard goes blank."""

from __future__ import annotations

import json
import re
from pathlib import Path

from strom.streams import StreamsBuilder
from strom.streams.app import Streams

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-strom.json"

# The broker's metric names as strom.broker's Prometheus endpoint exports them (src/strom/broker/metrics.py).
BROKER_METRICS = {
    "kafka_server_brokertopicmetrics_bytesin_total",
    "kafka_server_brokertopicmetrics_bytesout_total",
    "kafka_server_brokertopicmetrics_messagesin_total",
    "kafka_network_requestmetrics_requests_total",
    "kafka_network_requestmetrics_totaltime_seconds_bucket",
    "kafka_log_log_size",
    "kafka_consumergroup_lag",
    "kafka_server_socketservermetrics_connection_count",
}
_METRIC = re.compile(r"\b(kafka_[a-z0-9_]+)")


def streams_metric_names() -> set[str]:
    """Names of the series a Streams instance exports; families with no sample yet (no task, no restore)
    count by their name and the suffixes Prometheus gives their type."""
    builder = StreamsBuilder()
    builder.stream("in").to("out")
    app = Streams(builder.build(), {"application.id": "dashboard", "bootstrap.servers": "127.0.0.1:1"})
    try:
        return {s.name for family in app.metrics_registry.collect() for s in family.samples} | {
            name
            for family in app.metrics_registry.collect()
            for name in (family.name, *(f"{family.name}_{s}" for s in ("bucket", "count", "sum", "total")))
        }
    finally:
        app.close()


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def test_dashboard_is_valid_grafana_json_with_panels_for_broker_and_streams() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Broker", "strom.streams"]
    assert all(p["targets"] for p in dashboard["panels"] if p["type"] != "row")


def test_every_query_names_a_metric_strom_exports() -> None:
    known = BROKER_METRICS | streams_metric_names()
    used: set[str] = set()
    for title, expr in panel_queries():
        names = set(_METRIC.findall(expr))
        assert names, f"panel {title!r}: query {expr!r} names no strom metric"
        assert names <= known, f"panel {title!r} queries metrics strom does not export: {names - known}"
        used |= names
    streams_used = {n for n in used if n.startswith("kafka_streams_")}
    assert len(streams_used) >= 9 and used >= BROKER_METRICS
