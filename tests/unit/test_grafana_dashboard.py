"""docs/grafana-strom.json loads as a Grafana dashboard and every query names a metric strom exports: the
broker's are read from its collectors and the streams ones from a Streams instance's own registry, so a
renamed metric fails here before a user's dashboard goes blank."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from prometheus_client.metrics_core import Metric

from strom.broker.metrics import BrokerMetrics, BrokerStateCollector, TrafficCollector
from strom.streams import StreamsBuilder
from strom.streams.app import Streams

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-strom.json"

_METRIC = re.compile(r"\b(kafka_[a-z0-9_]+)")


def series_names(families: Iterable[Metric]) -> set[str]:
    """The series names a family can have: its own and the suffixes Prometheus gives its type."""
    return {
        name
        for family in families
        for name in (family.name, *(f"{family.name}_{s}" for s in ("bucket", "count", "sum", "total")))
    }


def broker_metric_names() -> set[str]:
    """Names the broker exports, from its collectors' descriptions (which read no broker state)."""
    traffic = TrafficCollector(BrokerMetrics(cast(Any, None))).describe()
    return series_names([*traffic, *BrokerStateCollector(cast(Any, None)).describe()])


def streams_metric_names() -> set[str]:
    """Names of the series a Streams instance exports; families with no sample yet (no task, no restore)
    count by their name and the suffixes Prometheus gives their type."""
    builder = StreamsBuilder()
    builder.stream("in").to("out")
    app = Streams(builder.build(), {"application.id": "dashboard", "bootstrap.servers": "127.0.0.1:1"})
    try:
        families = list(app.metrics_registry.collect())
        return {s.name for family in families for s in family.samples} | series_names(families)
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
    broker = broker_metric_names()
    known = broker | streams_metric_names()
    used: set[str] = set()
    for title, expr in panel_queries():
        names = set(_METRIC.findall(expr))
        assert names, f"panel {title!r}: query {expr!r} names no strom metric"
        assert names <= known, f"panel {title!r} queries metrics strom does not export: {names - known}"
        used |= names
    streams_used = {n for n in used if n.startswith("kafka_streams_")}
    assert len(streams_used) >= 9 and len(used & broker) >= 8
