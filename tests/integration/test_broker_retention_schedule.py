"""The broker checks retention every log.retention.check.interval.ms, not at the cleaner's faster cadence."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_broker_maintenance import (
    _create,
    _earliest,
    _produce,
    wait_for_background_compaction,
)
from tests.support.brokers import running_strom
from tests.support.wire import WireClient


def test_the_cleaner_runs_while_retention_waits_for_its_own_interval(tmp_path: Path) -> None:
    config = {"log.retention.check.interval.ms": 3_600_000, "log.cleaner.backoff.ms": 20}
    with (
        running_strom(tmp_path, config) as broker,
        WireClient(broker.bootstrap_servers) as client,
    ):
        _create(
            client, "expiring", {"segment.bytes": "1024", "retention.ms": "1", "file.delete.delay.ms": "0"}
        )
        for i in range(20):
            _produce(client, "expiring", b"k%d" % i)
        wait_for_background_compaction(client, "squashed")
        # Maintenance passes ran after "expiring" was written, yet its expired segments wait for the first
        # retention check (30 s after start at the earliest, with a one-hour interval).
        assert _earliest(client, "expiring") == 0
