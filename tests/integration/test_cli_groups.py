"""`strom groups list|describe` as subprocesses against strom and Apache Kafka: states, lag, owners."""

from __future__ import annotations

from confluent_kafka import Consumer

from tests.support.cli import run_strom, table_rows
from tests.support.scenario import java_partition, unique_name


def test_describe_shows_committed_offset_log_end_and_lag_per_partition(any_broker: str) -> None:
    topic, group = unique_name("cli-lag"), unique_name("cli-lag-group")
    assert (
        run_strom("topics", "create", topic, "--partitions", "2", "--bootstrap", any_broker).returncode == 0
    )
    keys = [f"key{i}" for i in range(40)]
    produced = run_strom(
        "produce", topic, "-K", ":", "--bootstrap", any_broker, input="".join(f"{k}:v\n" for k in keys)
    )
    assert produced.returncode == 0, produced.stderr
    ends = {p: sum(1 for k in keys if java_partition(k.encode(), 2) == p) for p in (0, 1)}

    consumed = run_strom(
        "consume", topic, "-g", group, "--from-beginning", "-c", "15", "--bootstrap", any_broker
    )
    assert consumed.returncode == 0, consumed.stderr

    described = run_strom("groups", "describe", group, "--bootstrap", any_broker)
    assert described.returncode == 0, described.stderr
    assert described.stdout.startswith(f"Group: {group}  State: Empty  Members: 0")
    rows = table_rows(described.stdout, "TOPIC")
    assert rows, described.stdout
    total = 0
    for row in rows:
        assert row["TOPIC"] == topic
        partition, current = int(row["PARTITION"]), int(row["CURRENT-OFFSET"])
        assert int(row["LOG-END-OFFSET"]) == ends[partition]
        assert int(row["LAG"]) == ends[partition] - current
        assert row["CONSUMER-ID"] == "-"
        total += current
    assert total == 15

    listed = run_strom("groups", "list", "--bootstrap", any_broker)
    assert listed.returncode == 0, listed.stderr
    assert {"GROUP": group, "STATE": "Empty"} in table_rows(listed.stdout, "GROUP")


def test_describe_names_the_member_that_owns_each_partition(any_broker: str) -> None:
    topic, group = unique_name("cli-owner"), unique_name("cli-owner-group")
    assert (
        run_strom("topics", "create", topic, "--partitions", "3", "--bootstrap", any_broker).returncode == 0
    )
    consumer = Consumer(
        {
            "bootstrap.servers": any_broker,
            "group.id": group,
            "client.id": "owner-client",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        for _ in range(100):  # bounded: the assignment arrives within a few polls
            consumer.poll(0.2)
            if len(consumer.assignment()) == 3:
                break
        assert len(consumer.assignment()) == 3
        described = run_strom("groups", "describe", group, "--bootstrap", any_broker)
        assert described.returncode == 0, described.stderr
        assert f"Group: {group}  State: Stable  Members: 1" in described.stdout
        rows = table_rows(described.stdout, "TOPIC")
        assert [row["PARTITION"] for row in rows] == ["0", "1", "2"]
        assert {row["CLIENT-ID"] for row in rows} == {"owner-client"}
        assert all(row["CURRENT-OFFSET"] == "-" and row["LAG"] == "-" for row in rows)
    finally:
        consumer.close()


def test_describing_an_unknown_group_says_so(any_broker: str) -> None:
    result = run_strom("groups", "describe", "no-such-group", "--bootstrap", any_broker)
    assert result.returncode == 1
    assert result.stderr.strip() == "strom: consumer group 'no-such-group' does not exist"
