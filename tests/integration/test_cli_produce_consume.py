"""`strom produce` and `strom consume` as subprocesses against strom and Apache Kafka."""

from __future__ import annotations

import subprocess
import sys

from tests.support.cli import run_strom, table_rows
from tests.support.scenario import java_partition, unique_name


def create(bootstrap: str, partitions: int) -> str:
    topic = unique_name("cli-data")
    result = run_strom("topics", "create", topic, "--partitions", str(partitions), "--bootstrap", bootstrap)
    assert result.returncode == 0, result.stderr
    return topic


def test_produced_keyed_lines_come_back_from_the_partition_java_would_pick(any_broker: str) -> None:
    topic = create(any_broker, 4)
    records = {f"user-{i}": f"event {i}" for i in range(200)}
    produced = run_strom(
        "produce", topic, "-K", "=", "-z", "lz4", "--bootstrap", any_broker,
        input="".join(f"{k}={v}\n" for k, v in records.items()),
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    assert produced.stderr.strip() == f"strom: produced 200 records to {topic}"

    consumed = run_strom(
        "consume", topic, "--from-beginning", "-c", "200", "-f", r"{partition}\t{offset}\t{key}\t{value}",
        "--bootstrap", any_broker,
    )  # fmt: skip
    assert consumed.returncode == 0, consumed.stderr
    lines = [line.split("\t") for line in consumed.stdout.splitlines()]
    assert len(lines) == 200
    assert {key: value for _, _, key, value in lines} == records
    assert all(int(p) == java_partition(key.encode(), 4) for p, _, key, _ in lines)
    assert len({(p, o) for p, o, _, _ in lines}) == 200


def test_print_key_uses_the_key_separator_and_null_for_missing_keys(any_broker: str) -> None:
    topic = create(any_broker, 1)
    assert run_strom("produce", topic, "--bootstrap", any_broker, input="no key here\n").returncode == 0
    assert run_strom("produce", topic, "-K", ":", "--bootstrap", any_broker, input="k:v\n").returncode == 0
    consumed = run_strom(
        "consume",
        topic,
        "--from-beginning",
        "-c",
        "2",
        "--print-key",
        "-K",
        " => ",
        "--bootstrap",
        any_broker,
    )
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.splitlines() == ["null => no key here", "k => v"]


def test_a_group_resumes_after_the_records_it_printed(any_broker: str) -> None:
    topic = create(any_broker, 3)
    group = unique_name("cli-group")
    lines = [f"k{i}:v{i}" for i in range(50)]
    assert (
        run_strom(
            "produce", topic, "-K", ":", "--bootstrap", any_broker, input="\n".join(lines) + "\n"
        ).returncode
        == 0
    )

    def consume(count: int) -> list[str]:
        result = run_strom(
            "consume", topic, "--group", group, "--from-beginning", "-c", str(count),
            "--print-key", "-K", ":", "--bootstrap", any_broker,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    first, second = consume(20), consume(30)
    assert len(first) == 20 and len(second) == 30
    assert sorted(first + second) == sorted(lines)

    described = run_strom("groups", "describe", group, "--bootstrap", any_broker)
    assert described.returncode == 0, described.stderr
    rows = table_rows(described.stdout, "TOPIC")
    assert sum(int(row["CURRENT-OFFSET"]) for row in rows) == 50
    assert all(row["LAG"] == "0" for row in rows)


def test_input_without_the_key_separator_is_refused_with_its_line_number(any_broker: str) -> None:
    topic = create(any_broker, 1)
    result = run_strom("produce", topic, "-K", ":", "--bootstrap", any_broker, input="a:1\nb2\n")
    assert result.returncode == 1
    assert result.stderr.strip() == "strom: line 2 has no key separator ':': 'b2'"


def test_unknown_topics_and_bad_formats_are_clear_errors(any_broker: str) -> None:
    for command in (["produce", "missing-topic"], ["consume", "missing-topic"]):
        result = run_strom(*command, "--bootstrap", any_broker, input="x\n")
        assert result.returncode == 1
        assert result.stderr.strip() == (
            "strom: topic 'missing-topic' does not exist (create it with `strom topics create missing-topic`)"
        )
    topic = create(any_broker, 1)
    bad = run_strom("consume", topic, "-f", "{nope}", "--bootstrap", any_broker)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("strom: --format '{nope}' is not valid")
    wrong_partition = run_strom("produce", topic, "-p", "5", "--bootstrap", any_broker, input="x\n")
    assert wrong_partition.returncode == 1
    assert wrong_partition.stderr.strip() == f"strom: topic {topic!r} has partitions 0..0, not 5"


def test_consume_into_a_closed_pipe_stops_quietly(any_broker: str) -> None:
    topic = create(any_broker, 1)
    assert run_strom("produce", topic, "--bootstrap", any_broker, input="x\n" * 5000).returncode == 0
    command = [sys.executable, "-m", "strom.cli", "consume", topic, "--from-beginning", "-c", "5000"]
    reader = subprocess.Popen(
        [*command, "--bootstrap", any_broker], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert reader.stdout is not None and reader.stderr is not None
    assert reader.stdout.readline() == b"x\n"
    reader.stdout.close()  # like `| head -1` exiting
    try:
        reader.wait(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
    stderr = reader.stderr.read().decode()
    assert reader.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_without_from_beginning_only_records_produced_later_are_printed(any_broker: str) -> None:
    topic = create(any_broker, 2)
    assert run_strom("produce", topic, "--bootstrap", any_broker, input="old\n" * 20).returncode == 0
    command = [sys.executable, "-m", "strom.cli", "consume", topic, "-c", "1", "--bootstrap", any_broker]
    reader = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The consumer reports nothing when it has found the log end, so keep producing new records until it
        # prints one (bounded); whatever it prints must be new.
        for i in range(120):
            produced = run_strom("produce", topic, "--bootstrap", any_broker, input=f"new-{i}\n")
            assert produced.returncode == 0, produced.stderr
            try:
                out, err = reader.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            raise AssertionError("strom consume printed nothing while 120 new records arrived")
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    assert reader.returncode == 0, err
    assert out.startswith("new-"), out
