"""Apache Kafka's own CLI tools (the jars of Kafka 4.4) against strom and Apache Kafka: kafka-topics,
kafka-console-producer/consumer in a two-member group across a broker restart, kafka-consumer-groups (lag),
kafka-configs, kafka-delete-records with kafka-get-offsets, the perf-test tools and kafka-dump-log."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tools.kafka import java_command, require_kafka, run_kafka_tool

from tests.support.brokers import BrokerUnderTest
from tests.support.scenario import (
    FIRST_PHASE,
    PARTITIONS,
    RECORDS,
    Consumed,
    assert_exactly_once,
    consume_with_processes,
    java_partition,
    key_of,
    unique_name,
)

TIMEOUT = 120.0
CONSOLE_LINE = re.compile(r"^Partition:(\d+)\tOffset:(\d+)\t([^\t]*)\t(.*)$")


def tool(name: str, bootstrap: str, *args: str, input: str | None = None) -> str:
    return run_kafka_tool(name, "--bootstrap-server", bootstrap, *args, input=input, timeout=TIMEOUT).stdout


def group_offsets(bootstrap: str, group: str) -> dict[int, tuple[int, int, int]]:
    """partition -> (committed, log end offset, lag), as `kafka-consumer-groups --describe` prints them."""
    rows: dict[int, tuple[int, int, int]] = {}
    for line in tool("kafka-consumer-groups", bootstrap, "--describe", "--group", group).splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[0] == group and fields[2].isdigit():
            rows[int(fields[2])] = (int(fields[3]), int(fields[4]), int(fields[5]))
    return rows


def console_consumers(bootstrap: str, topic: str, group: str, counts: list[int]) -> list[Consumed]:
    """One kafka-console-consumer process per entry of `counts`, concurrently, each exiting after its count.

    max.poll.records=1 makes the auto-committed position on close exactly the records printed.
    """
    args = ["--bootstrap-server", bootstrap, "--topic", topic, "--group", group, "--from-beginning"]
    for prop in ("print.key=true", "print.partition=true", "print.offset=true"):
        args += ["--formatter-property", prop]
    for prop in ("max.poll.records=1", "heartbeat.interval.ms=500", "session.timeout.ms=6000"):
        args += ["--command-property", prop]
    commands = [java_command("kafka-console-consumer", [*args, "--max-messages", str(n)]) for n in counts]
    return consume_with_processes(commands, console_fields, "console consumer", TIMEOUT)


def console_fields(line: str) -> tuple[str, str, str, str]:
    match = CONSOLE_LINE.match(line)
    assert match, f"unexpected console consumer line {line!r}"
    partition, offset, key, value = match.groups()
    return partition, offset, key, value


def test_console_tools_group_resumes_after_restart_and_consumer_groups_reports_no_lag(
    broker_under_test: BrokerUnderTest,
) -> None:
    require_kafka()
    broker = broker_under_test
    topic, group = unique_name("console"), unique_name("console-group")
    created = tool(
        "kafka-topics", broker.bootstrap_servers, "--create", "--topic", topic, "--partitions", "6"
    )
    assert f"Created topic {topic}." in created
    assert topic in tool("kafka-topics", broker.bootstrap_servers, "--list").split()
    described = tool("kafka-topics", broker.bootstrap_servers, "--describe", "--topic", topic)
    assert f"PartitionCount: {PARTITIONS}" in described
    assert len(re.findall(r"Partition: \d+\s+Leader: \d+", described)) == PARTITIONS

    values = {key_of(i): f"console-{i}" for i in range(RECORDS)}
    tool(
        "kafka-console-producer", broker.bootstrap_servers, "--topic", topic, "--compression-codec", "zstd",
        "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
        "--command-property", "enable.idempotence=true", "--command-property", "acks=all",
        input="".join(f"{k}:{v}\n" for k, v in values.items()),
    )  # fmt: skip

    half = FIRST_PHASE // 2
    first = console_consumers(broker.bootstrap_servers, topic, group, [half, FIRST_PHASE - half])
    assert {r.member for r in first} == {0, 1}
    lag_before = group_offsets(broker.bootstrap_servers, group)
    assert sum(committed for committed, _, _ in lag_before.values()) == FIRST_PHASE
    assert sum(lag for _, _, lag in lag_before.values()) == RECORDS - FIRST_PHASE

    broker.restart()
    rest = RECORDS - FIRST_PHASE
    second = console_consumers(broker.bootstrap_servers, topic, group, [rest // 2, rest - rest // 2])
    assert {r.member for r in second} == {0, 1}
    assert_exactly_once(first + second, values)

    lag_after = group_offsets(broker.bootstrap_servers, group)
    assert set(lag_after) == set(range(PARTITIONS))
    assert all(lag == 0 and committed == end for committed, end, lag in lag_after.values()), lag_after
    assert group in tool("kafka-consumer-groups", broker.bootstrap_servers, "--list").split()


def test_kafka_configs_describes_and_alters_topic_config(any_broker: str) -> None:
    require_kafka()
    topic = unique_name("configs")
    tool("kafka-topics", any_broker, "--create", "--topic", topic, "--partitions", "1")
    entity = ["--entity-type", "topics", "--entity-name", topic]
    tool(
        "kafka-configs",
        any_broker,
        "--alter",
        *entity,
        "--add-config",
        "retention.ms=3600000,cleanup.policy=compact",
    )
    described = tool("kafka-configs", any_broker, "--describe", *entity)
    assert "retention.ms=3600000" in described
    assert "cleanup.policy=compact" in described
    tool("kafka-configs", any_broker, "--alter", *entity, "--delete-config", "retention.ms")
    assert "retention.ms=3600000" not in tool("kafka-configs", any_broker, "--describe", *entity)
    everything = tool("kafka-configs", any_broker, "--describe", "--all", *entity)
    assert re.search(r"\bsegment\.bytes=\d+", everything), everything


def test_delete_records_moves_the_log_start_offset(any_broker: str, tmp_path: Path) -> None:
    require_kafka()
    topic = unique_name("delete-records")
    tool("kafka-topics", any_broker, "--create", "--topic", topic, "--partitions", "2")
    keys = [f"k{i}" for i in range(100)]
    in_first = sum(1 for key in keys if java_partition(key.encode(), 2) == 0)
    assert in_first > 10
    tool(
        "kafka-console-producer", any_broker, "--topic", topic,
        "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
        input="".join(f"{key}:v\n" for key in keys),
    )  # fmt: skip
    plan = tmp_path / "delete.json"
    plan.write_text(
        json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "offset": 10}]})
    )
    tool("kafka-delete-records", any_broker, "--offset-json-file", str(plan))

    def offsets(time_spec: str) -> dict[int, int]:
        out = tool("kafka-get-offsets", any_broker, "--topic", topic, "--time", time_spec)
        return {int(p): int(o) for _, p, o in (line.rsplit(":", 2) for line in out.split())}

    earliest, latest = offsets("-2"), offsets("-1")
    assert earliest[0] == 10
    assert earliest[1] == 0
    assert latest == {0: in_first, 1: 100 - in_first}


def test_topics_delete_removes_the_topic(any_broker: str) -> None:
    require_kafka()
    topic = unique_name("deleted")
    tool("kafka-topics", any_broker, "--create", "--topic", topic, "--partitions", "3")
    tool("kafka-topics", any_broker, "--delete", "--topic", topic)
    assert topic not in tool("kafka-topics", any_broker, "--list").split()


def test_perf_test_tools_move_every_record(any_broker: str) -> None:
    require_kafka()
    topic = unique_name("perf")
    tool("kafka-topics", any_broker, "--create", "--topic", topic, "--partitions", "6")
    produced = run_kafka_tool(
        "kafka-producer-perf-test", "--bootstrap-server", any_broker, "--topic", topic,
        "--num-records", "10000", "--record-size", "100", "--throughput", "-1",
        "--command-property", "acks=all", timeout=TIMEOUT,
    ).stdout  # fmt: skip
    assert re.search(r"^10000 records sent", produced, re.MULTILINE), produced
    consumed = tool("kafka-consumer-perf-test", any_broker, "--topic", topic, "--num-records", "10000",
                    "--timeout", "60000")  # fmt: skip
    header, row = consumed.strip().splitlines()[-2:]
    stats = dict(
        zip((h.strip() for h in header.split(",")), (v.strip() for v in row.split(",")), strict=True)
    )
    assert int(stats["data.consumed.in.nMsg"]) == 10000


def test_dump_log_reads_the_partition_files(broker_under_test: BrokerUnderTest) -> None:
    require_kafka()
    broker = broker_under_test
    topic = unique_name("dump")
    tool("kafka-topics", broker.bootstrap_servers, "--create", "--topic", topic, "--partitions", "1")
    tool(
        "kafka-console-producer", broker.bootstrap_servers, "--topic", topic, "--compression-codec", "gzip",
        "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
        input="".join(f"k{i}:value-{i}\n" for i in range(50)),
    )  # fmt: skip
    segment = broker.partition_dir(topic, 0) / f"{0:020d}.log"
    dumped = run_kafka_tool(
        "kafka-dump-log", "--files", str(segment), "--print-data-log", "--deep-iteration"
    ).stdout
    records = re.findall(r"\boffset: (\d+) .*?key: (\S+) payload: (\S+)", dumped)
    assert [(int(o), k, p) for o, k, p in records] == [(i, f"k{i}", f"value-{i}") for i in range(50)]
    assert "compresscodec: gzip" in dumped.lower()


def test_tools_kafka_sh_runs_a_kafka_tool_from_the_cached_jars() -> None:
    require_kafka()
    script = Path(__file__).resolve().parents[2] / "tools" / "kafka.sh"
    result = subprocess.run(
        ["bash", str(script), "tool", "kafka-topics", "--version"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("4.4.0"), result.stdout
