"""`strom registry` as a command: what it says when it cannot start."""

from __future__ import annotations

import socket

from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.cli import run_strom
from tests.support.scenario import unique_name


def test_an_unreachable_cluster_is_said_in_words() -> None:
    with socket.socket() as unused:  # bound, never listening: connections to it are refused
        unused.bind(("127.0.0.1", 0))
        bootstrap = f"127.0.0.1:{unused.getsockname()[1]}"
        result = run_strom("registry", "--bootstrap", bootstrap, "--listen", "127.0.0.1:0", "--timeout", "1")
    assert result.returncode == 1
    assert result.stderr.startswith(f"strom registry: cannot reach the cluster at {bootstrap}"), result.stderr
    assert result.stderr.count("\n") == 1  # one line, without librdkafka's retry chatter


def test_a_schemas_topic_of_the_wrong_shape_is_refused(strom_broker: str) -> None:
    topic = unique_name("_schemas")
    admin = AdminClient({"bootstrap.servers": strom_broker})
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(timeout=30)
    result = run_strom("registry", "--bootstrap", strom_broker, "--topic", topic, "--listen", "127.0.0.1:0")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"strom registry: topic {topic} must have 1 partition and cleanup.policy=compact;"
        " it has 3 partition(s) and cleanup.policy=delete"
    )


def test_a_taken_listen_port_is_said_in_words(strom_broker: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_strom("registry", "--bootstrap", strom_broker, "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"strom registry: cannot serve on 127.0.0.1:{port}: address already in use"
    )
