"""franz-go (a small Go program, tests/compat/franzgo) against strom and Apache Kafka: its default idempotent
producer with snappy, two group members with the cooperative-sticky balancer, a broker restart, and resuming
from the committed offsets."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tools.peers import franzgo_path

from tests.support.brokers import BrokerUnderTest
from tests.support.scenario import (
    FIRST_PHASE,
    RECORDS,
    Consumed,
    assert_exactly_once,
    create_topic,
    java_partition,
    key_of,
    unique_name,
)

TIMEOUT = 120.0


def run_franzgo(program: Path, *args: str) -> list[dict[str, Any]]:
    """Run the program (it enforces its own deadline, shorter than ours) and parse its JSON lines."""
    result = subprocess.run([str(program), *args], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, (
        f"strom-franzgo {args[0]} exited {result.returncode}: {result.stderr[-2000:]}"
    )
    return [json.loads(line) for line in result.stdout.splitlines()]


def consume(program: Path, bootstrap: str, topic: str, group: str, count: int) -> list[Consumed]:
    lines = run_franzgo(
        program, "consume", "-brokers", bootstrap, "-topic", topic, "-group", group, "-members", "2",
        "-count", str(count), "-timeout", "90s",
    )  # fmt: skip
    records = [
        Consumed(x["partition"], x["offset"], x["key"], x["value"], x["member"]) for x in lines if "key" in x
    ]
    assigned = [x for x in lines if "assigned" in x]
    assert {x["member"] for x in assigned if x["assigned"]} == {0, 1}, (
        f"not both members assigned: {assigned}"
    )
    assert {r.member for r in records} == {0, 1}, "only one member processed records"
    return records


def test_franzgo_group_resumes_after_restart_with_nothing_lost_or_repeated(
    broker_under_test: BrokerUnderTest,
) -> None:
    program = franzgo_path()
    broker = broker_under_test
    topic, group = unique_name("franzgo"), unique_name("franzgo-group")
    create_topic(broker.bootstrap_servers, topic)
    acked = run_franzgo(
        program, "produce", "-brokers", broker.bootstrap_servers, "-topic", topic, "-count", str(RECORDS),
        "-compression", "snappy",
    )  # fmt: skip
    assert len(acked) == RECORDS
    assert len({(a["partition"], a["offset"]) for a in acked}) == RECORDS, "two records acked at one offset"
    for a in acked:
        assert a["partition"] == java_partition(a["key"].encode()), f"{a['key']} acked in {a['partition']}"
    values = {key_of(i): f"franzgo-{i}" for i in range(RECORDS)}

    first = consume(program, broker.bootstrap_servers, topic, group, FIRST_PHASE)
    broker.restart()
    second = consume(program, broker.bootstrap_servers, topic, group, RECORDS - FIRST_PHASE)
    assert_exactly_once(first + second, values)
