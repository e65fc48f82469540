"""`strom topics ...` as a subprocess against strom and Apache Kafka, including the errors users hit first."""

from __future__ import annotations

from tools.kafka import free_port

from tests.support.cli import run_strom, table_rows
from tests.support.scenario import unique_name


def test_topics_create_list_describe_delete_round_trip(any_broker: str) -> None:
    topic = unique_name("cli-topics")
    b = ["--bootstrap", any_broker]
    created = run_strom("topics", "create", topic, "--partitions", "3", "--config", "retention.ms=123456", *b)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == f"Created topic {topic}."

    listed = run_strom("topics", "list", *b)
    assert listed.returncode == 0, listed.stderr
    assert {"TOPIC": topic, "PARTITIONS": "3"} in table_rows(listed.stdout, "TOPIC")
    assert not any(row["TOPIC"].startswith("__") for row in table_rows(listed.stdout, "TOPIC"))

    described = run_strom("topics", "describe", topic, *b)
    assert described.returncode == 0, described.stderr
    assert described.stdout.startswith(f"Topic: {topic}  Partitions: 3  Configs: ")
    assert "retention.ms=123456" in described.stdout.splitlines()[0]
    rows = table_rows(described.stdout, "PARTITION")
    assert [row["PARTITION"] for row in rows] == ["0", "1", "2"]
    assert all(row["EARLIEST"] == "0" and row["LATEST"] == "0" for row in rows)

    deleted = run_strom("topics", "delete", topic, *b)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == f"Deleted topic {topic}."
    assert topic not in [row["TOPIC"] for row in table_rows(run_strom("topics", "list", *b).stdout, "TOPIC")]


def test_creating_an_existing_topic_says_it_exists(any_broker: str) -> None:
    topic = unique_name("cli-twice")
    assert run_strom("topics", "create", topic, "--bootstrap", any_broker).returncode == 0
    again = run_strom("topics", "create", topic, "--bootstrap", any_broker)
    assert again.returncode == 1
    assert (
        again.stderr.strip() == f"strom: cannot create topic {topic!r}: topic {topic!r} already exists"
        or (
            again.stderr.startswith(f"strom: cannot create topic {topic!r}:")
            and "already exists" in again.stderr
        )
    )


def test_an_invalid_topic_name_is_refused_by_the_broker(any_broker: str) -> None:
    result = run_strom("topics", "create", "no/slashes", "--bootstrap", any_broker)
    assert result.returncode == 1
    assert result.stderr.startswith("strom: cannot create topic 'no/slashes':"), result.stderr


def test_describing_or_deleting_an_unknown_topic_names_it(any_broker: str) -> None:
    for action in ("describe", "delete"):
        result = run_strom("topics", action, "no-such-topic", "--bootstrap", any_broker)
        assert result.returncode == 1
        assert result.stderr.strip() == "strom: topic 'no-such-topic' does not exist"


def test_a_bad_config_argument_is_reported_before_contacting_the_broker(any_broker: str) -> None:
    result = run_strom(
        "topics", "create", unique_name("cli"), "--config", "retention.ms", "--bootstrap", any_broker
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "strom: --config expects KEY=VALUE, got 'retention.ms'"


def test_every_command_reports_an_unreachable_broker_in_one_line() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    for command in (["topics", "list"], ["groups", "list"], ["consume", "t"], ["produce", "t"]):
        result = run_strom(*command, "--bootstrap", address, "--timeout", "1", input="")
        assert result.returncode == 1, command
        assert result.stderr.strip() == (
            f"strom: cannot reach a broker at {address} within 1 s; "
            "is it running? (set the address with --bootstrap)"
        ), command
        assert result.stdout == ""
