"""Acknowledged commits survive kill -9 of the broker process: `strom broker` is SIGKILLed right after the
commits, restarted on the same data directory, and the group's offsets and metadata come back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def broker_process(data_dir: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "strom.cli", "broker", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0",
         "--set", "group.initial.rebalance.delay.ms=0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("strom broker ready on "), line
        yield line.rsplit(" ", 1)[1].strip(), proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


def test_commits_survive_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    partitions = [TopicPartition("orders", p) for p in range(4)]
    with broker_process(data) as (bootstrap, proc):
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic("orders", 4, 1)]).values():
            future.result(15)
        consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "crash", "enable.auto.commit": False}
        )
        assigned: list[object] = []
        consumer.subscribe(["orders"], on_assign=lambda _c, ps: assigned.append(ps))
        wait_until(lambda: bool(assigned), "the consumer's first assignment", step=lambda: consumer.poll(0.1))
        for round_ in range(1, 21):  # many small acknowledged writes, the last one right before the kill
            consumer.commit(
                offsets=[TopicPartition("orders", p, round_ * 10 + p, f"r{round_}") for p in range(4)],
                asynchronous=False,
            )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        consumer.close()
    with broker_process(data) as (bootstrap, _proc):
        reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "crash"})
        try:
            committed = reader.committed(partitions, timeout=15)
        finally:
            reader.close()
        assert [(tp.partition, tp.offset, tp.metadata) for tp in committed] == [
            (p, 200 + p, "r20") for p in range(4)
        ]
        admin = AdminClient({"bootstrap.servers": bootstrap})
        groups = {g.group_id: g for g in admin.list_consumer_groups().result(15).valid}
        assert "crash" in groups
