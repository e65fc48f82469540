"""strom's group coordinator next to Apache Kafka's, with librdkafka (confluent-kafka) consumers.

For each broker, started fresh and alone (the other is stopped), with `group.initial.rebalance.delay.ms=0`:
- form: seconds from 4 consumers subscribing to a 12-partition topic until all partitions are assigned
  among them (median of 3 fresh groups);
- leave: seconds from one of the 4 closing until the other 3 hold all partitions (median of 3);
- commit: synchronous OffsetCommit of 6 partitions, commits/s from one consumer;
- fetch: OffsetFetch of 6 partitions (`committed()`), requests/s from one consumer.
The rebalance timings are dominated by the clients' own timers (heartbeat interval, retry backoffs), so
they show whether the coordinator adds delay rather than its raw speed; the commit and fetch rates are the
coordinator's request path. Prints every figure and the ratio strom / Kafka.

Usage: python bench/groups.py [--commits N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.broker import kafka_broker, strom_broker  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from tools.kafka import require_kafka  # noqa: E402

TOPIC = "group-bench"
PARTITIONS = 12
MEMBERS = 4
ROUNDS = 3


class Member:
    def __init__(self, bootstrap: str, group: str) -> None:
        self.assigned: set[int] = set()
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "partition.assignment.strategy": "range",
                "enable.auto.commit": False,
                "heartbeat.interval.ms": 100,
            }
        )
        self.consumer.subscribe(
            [TOPIC],
            on_assign=lambda _c, ps: self.assigned.update(p.partition for p in ps),
            on_revoke=lambda _c, ps: self.assigned.difference_update(p.partition for p in ps),
        )


def _until(members: list[Member], condition: Callable[[], bool], timeout: float = 120.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise RuntimeError("the group did not settle")
        for m in members:
            m.consumer.poll(0.01)
    return time.monotonic() - started


def _covers(members: list[Member]) -> bool:
    held = [m.assigned for m in members]
    return (
        all(held) and sum(len(h) for h in held) == PARTITIONS and set().union(*held) == set(range(PARTITIONS))
    )


def measure(bootstrap: str, commits: int) -> dict[str, float]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)]).values():
        future.result(30)
    form, leave = [], []
    for round_ in range(ROUNDS):
        members = [Member(bootstrap, f"bench-{round_}") for _ in range(MEMBERS)]
        form.append(_until(members, lambda m=members: _covers(m)))
        members[0].consumer.close()
        rest = members[1:]
        leave.append(_until(rest, lambda r=rest: _covers(r)))
        for m in rest:
            m.consumer.close()
    member = Member(bootstrap, "bench-commit")
    _until([member], lambda: len(member.assigned) == PARTITIONS)
    offsets = [TopicPartition(TOPIC, p, 1) for p in range(6)]
    started = time.perf_counter()
    for _ in range(commits):
        member.consumer.commit(offsets=offsets, asynchronous=False)
    commit_rate = commits / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(commits):
        member.consumer.committed([TopicPartition(TOPIC, p) for p in range(6)], timeout=10)
    fetch_rate = commits / (time.perf_counter() - started)
    member.consumer.close()
    return {
        "form (s)": statistics.median(form),
        "leave (s)": statistics.median(leave),
        "commit (/s)": commit_rate,
        "fetch (/s)": fetch_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    args = parser.parse_args()
    require_kafka()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="strom-bench-groups-") as tmp:
        with strom_broker(Path(tmp)) as (bootstrap, _pid, _ready):
            results["strom"] = measure(bootstrap, args.commits)
        with kafka_broker(Path(tmp)) as (bootstrap, _pid, _ready):
            results["kafka"] = measure(bootstrap, args.commits)
    print(f"{'measure':<14}{'strom':>12}{'kafka':>12}{'strom/kafka':>14}")
    for name in results["strom"]:
        s, k = results["strom"][name], results["kafka"][name]
        print(f"{name:<14}{s:>12.3f}{k:>12.3f}{s / k:>14.2f}")


if __name__ == "__main__":
    main()
