"""kcat (Debian's package, librdkafka inside) against strom and Apache Kafka: idempotent snappy producer,
two balanced-consumer processes in one group, a broker restart, and resuming from the committed offsets."""

from __future__ import annotations

import subprocess

from tools.peers import kcat_path

from tests.support.brokers import BrokerUnderTest
from tests.support.scenario import (
    FIRST_PHASE,
    RECORDS,
    Consumed,
    assert_exactly_once,
    consume_with_processes,
    create_topic,
    key_of,
    unique_name,
)

TIMEOUT = 90.0


def produce(kcat: str, bootstrap: str, topic: str) -> dict[str, str]:
    """Produce the scenario's records from stdin as `key:value` lines; return key -> value."""
    values = {key_of(i): f"kcat-{i}" for i in range(RECORDS)}
    lines = "".join(f"{key}:{value}\n" for key, value in values.items())
    # librdkafka's default partitioner is consistent_random (CRC32); murmur2_random matches Java's.
    command = [kcat, "-P", "-b", bootstrap, "-t", topic, "-K", ":", "-z", "snappy", "-q"]
    command += ["-X", "enable.idempotence=true", "-X", "partitioner=murmur2_random"]
    result = subprocess.run(command, input=lines, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"kcat -P exited {result.returncode}: {result.stderr[-2000:]}"
    return values


def consume_in_group(kcat: str, bootstrap: str, topic: str, group: str, counts: list[int]) -> list[Consumed]:
    """Run one `kcat -G` process per entry of `counts`, concurrently; each exits after reading its count.

    kcat stores each offset once it printed the message and commits on exit, so the committed position is
    exactly what was printed.
    """
    command = [kcat, "-b", bootstrap, "-G", group, "-q", "-u", "-f", "%p\t%o\t%k\t%s\n"]
    # A member that exits without leaving the group is noticed after 6 s rather than the default 45 s.
    command += [
        "-X",
        "auto.offset.reset=earliest",
        "-X",
        "heartbeat.interval.ms=500",
        "-X",
        "session.timeout.ms=6000",
    ]
    commands = [[*command, "-c", str(count), topic] for count in counts]
    return consume_with_processes(commands, kcat_fields, "kcat -G member", TIMEOUT)


def kcat_fields(line: str) -> tuple[str, str, str, str]:
    partition, offset, key, value = line.split("\t")
    return partition, offset, key, value


def test_kcat_group_resumes_after_restart_with_nothing_lost_or_repeated(
    broker_under_test: BrokerUnderTest,
) -> None:
    kcat = kcat_path()
    broker = broker_under_test
    topic, group = unique_name("kcat"), unique_name("kcat-group")
    create_topic(broker.bootstrap_servers, topic)
    values = produce(kcat, broker.bootstrap_servers, topic)

    half = FIRST_PHASE // 2
    first = consume_in_group(kcat, broker.bootstrap_servers, topic, group, [half, FIRST_PHASE - half])
    assert {r.member for r in first} == {0, 1}
    broker.restart()
    rest = RECORDS - FIRST_PHASE
    second = consume_in_group(kcat, broker.bootstrap_servers, topic, group, [rest // 2, rest - rest // 2])
    assert {r.member for r in second} == {0, 1}
    assert_exactly_once(first + second, values)
