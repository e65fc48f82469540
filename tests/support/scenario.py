"""The compatibility scenario every client runs, and the checks that decide whether a broker passed it.

Per client: a 6-partition topic; 10,000 keyed records `key-00000`..`key-09999`; a group of two members
consumes part of them and commits; the broker restarts; two new members resume from the committed offsets and
consume the rest. Passing means every record was read exactly once, with the value its producer wrote, from
the partition Java's default partitioner picks for its key (murmur2), whichever client produced it.

`consume_as_group` drives members that expose a small synchronous interface (one thread per member, as real
applications do). A member processes nothing until every member holds an assignment, and commits exactly what
it processed before it polls again; so with a correct broker no record is processed twice, and the test can
demand exact counts.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.brokers import BrokerUnderTest
from tests.support.waiting import wait_until

PARTITIONS = 6
RECORDS = 10_000
FIRST_PHASE = 4_000  # records consumed (and committed) before the broker restarts


def key_of(i: int) -> str:
    return f"key-{i:05d}"


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an unsigned 32-bit value."""
    m = 0x5BD1E995
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = (int.from_bytes(data[i : i + 4], "little") * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def java_partition(key: bytes, partitions: int = PARTITIONS) -> int:
    """The partition Java's default partitioner gives a keyed record: toPositive(murmur2(key)) % n."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class Consumed:
    partition: int
    offset: int
    key: str
    value: str
    member: int = 0


def create_topic(
    bootstrap: str, topic: str, partitions: int = PARTITIONS, config: dict[str, str] | None = None
) -> None:
    """Create a topic with confluent-kafka's AdminClient and wait for the broker's answer."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})], operation_timeout=30)
    futures[topic].result(timeout=60)

    def every_partition_led() -> bool:
        try:
            metadata = admin.list_topics(topic, timeout=10).topics[topic]
        except KafkaException:
            return False
        return (
            metadata.error is None
            and len(metadata.partitions) == partitions
            and all(p.leader >= 0 for p in metadata.partitions.values())
        )

    # Created; Kafka propagates the partitions' leaders to metadata asynchronously, announcing nothing.
    wait_until(every_partition_led, f"topic {topic} having a leader for all {partitions} partitions")


class GroupMember(Protocol):
    def poll_batch(self) -> list[Consumed]: ...

    def assignment(self) -> set[int]: ...

    def commit(self, records: Sequence[Consumed]) -> None: ...

    def rewind(self, records: Sequence[Consumed]) -> None:
        """Seek back to the first of `records` in each partition still held: polled, but not used."""
        ...

    def close(self) -> None: ...


@dataclass
class GroupRun:
    records: list[Consumed] = field(default_factory=list)
    # member -> the partitions it held while it processed records
    assignments: dict[int, set[int]] = field(default_factory=dict)


def first_offsets(records: Iterable[Consumed]) -> dict[int, int]:
    """partition -> lowest offset among `records`: where to seek back to when they were not processed."""
    firsts: dict[int, int] = {}
    for record in records:
        firsts[record.partition] = min(firsts.get(record.partition, record.offset), record.offset)
    return firsts


def consume_as_group(
    make_members: Callable[[], Sequence[GroupMember]],
    target: int,
    quota: int | None = None,
    timeout: float = 90.0,
) -> GroupRun:
    """Run the members (one thread each) until together they processed `target` records; commit; close.

    A member processes records only while every member holds an assignment (so no rebalance is pending) and
    only from partitions it holds after the poll; with `quota`, at most that many each, so both members must
    work. Records it does not process it rewinds, so they stay for whoever owns the partition next.
    """
    members = list(make_members())
    run = GroupRun()
    lock = threading.Lock()
    current: dict[int, set[int]] = {}
    done = threading.Event()
    errors: list[BaseException] = []
    deadline = time.monotonic() + timeout

    def work(index: int, member: GroupMember) -> None:
        try:
            taken = 0
            while not done.is_set() and time.monotonic() < deadline:
                batch = member.poll_batch()
                mine: list[Consumed] = []
                skipped: list[Consumed] = []
                with lock:
                    held = member.assignment()
                    current[index] = held
                    group_complete = len(current) == len(members) and all(current.values())
                    for record in batch:
                        usable = group_complete and record.partition in held and not done.is_set()
                        if usable and len(run.records) < target and (quota is None or taken < quota):
                            record = Consumed(
                                record.partition, record.offset, record.key, record.value, index
                            )
                            run.records.append(record)
                            mine.append(record)
                            taken += 1
                        else:
                            skipped.append(record)
                    if mine:
                        run.assignments.setdefault(index, set()).update(held)
                    if len(run.records) >= target:
                        done.set()
                if mine:
                    member.commit(mine)
                if skipped and not done.is_set():
                    member.rewind(skipped)
        except BaseException as error:  # reported to the test below, with the member that failed
            errors.append(error)
            done.set()

    threads = [threading.Thread(target=work, args=(i, m), daemon=True) for i, m in enumerate(members)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()) + 30)
    finally:
        done.set()
        for member in members:
            member.close()
    if errors:
        raise errors[0]
    if len(run.records) < target:
        raise AssertionError(
            f"the group processed {len(run.records)} of {target} records in {timeout:.0f} s; "
            f"assignments seen: {current}"
        )
    return run


def consume_with_processes(
    commands: Sequence[list[str]],
    parse: Callable[[str], tuple[str, str, str, str]],
    label: str,
    timeout: float,
) -> list[Consumed]:
    """Run one consumer process per command, concurrently, each printing a record per line until it exits.

    `parse` splits a line into partition, offset, key and value; member i is the process of `commands[i]`.
    A process still running when this returns (a failure or timeout) is killed.
    """
    consumed: list[Consumed] = []
    with tempfile.TemporaryDirectory() as outdir:
        # Output goes to files, not pipes: a member blocked on a full pipe would hold its partitions forever.
        outputs = [Path(outdir) / f"member-{i}.out" for i in range(len(commands))]
        processes: list[subprocess.Popen[str]] = []
        try:
            for command, output in zip(commands, outputs, strict=True):
                with open(output, "w") as out:
                    processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, text=True))
            for member, (process, output) in enumerate(zip(processes, outputs, strict=True)):
                _, err = process.communicate(timeout=timeout)
                assert process.returncode == 0, f"{label} {member} exited {process.returncode}: {err[-3000:]}"
                for line in output.read_text().splitlines():
                    partition, offset, key, value = parse(line)
                    consumed.append(Consumed(int(partition), int(offset), key, value, member))
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    return consumed


def highest_offsets(records: Iterable[Consumed]) -> dict[int, int]:
    """partition -> offset of the next record to read, i.e. what a consumer commits after `records`."""
    nexts: dict[int, int] = {}
    for record in records:
        nexts[record.partition] = max(nexts.get(record.partition, 0), record.offset + 1)
    return nexts


def assert_group_split_work(run: GroupRun, members: int = 2) -> None:
    """Each member of the group processed records, from partitions the group divided between them."""
    workers = {r.member for r in run.records}
    assert workers == set(range(members)), f"only members {sorted(workers)} of {members} processed records"
    for record in run.records:
        assert record.partition in run.assignments[record.member], f"{record} outside its member's assignment"


def assert_exactly_once(consumed: Sequence[Consumed], values: dict[str, str]) -> None:
    """Every produced key read exactly once, with its value, from the partition murmur2 assigns its key."""
    by_position = Counter((r.partition, r.offset) for r in consumed)
    repeated = [pos for pos, n in by_position.items() if n > 1]
    assert not repeated, f"{len(repeated)} records read twice, e.g. (partition, offset) {repeated[:5]}"
    keys = Counter(r.key for r in consumed)
    duplicated = [k for k, n in keys.items() if n > 1]
    assert not duplicated, f"{len(duplicated)} keys stored twice, e.g. {duplicated[:5]}"
    missing = sorted(set(values) - set(keys))
    assert not missing, f"{len(missing)} records lost, e.g. {missing[:5]}"
    unexpected = sorted(set(keys) - set(values))
    assert not unexpected, f"{len(unexpected)} records never produced, e.g. {unexpected[:5]}"
    for record in consumed:
        assert record.value == values[record.key], (
            f"{record.key}: read {record.value!r}, wrote {values[record.key]!r}"
        )
        expected = java_partition(record.key.encode())
        assert record.partition == expected, (
            f"{record.key} in partition {record.partition}, murmur2 says {expected}"
        )


def run_restart_scenario(
    broker: BrokerUnderTest,
    client: str,
    produce: Callable[[str, str], dict[str, str]],
    member: Callable[[str, str, str], GroupMember],
) -> None:
    """The scenario above, end to end, for one client: `produce(bootstrap, topic)` writes the records and
    returns key -> value; `member(bootstrap, topic, group)` makes one group member.

    Members are made when each phase starts, from the broker's address at that moment (after the restart).
    """
    topic, group = unique_name(client), unique_name(f"{client}-group")
    create_topic(broker.bootstrap_servers, topic)
    values = produce(broker.bootstrap_servers, topic)

    def members() -> list[GroupMember]:
        return [member(broker.bootstrap_servers, topic, group) for _ in range(2)]

    first = consume_as_group(members, FIRST_PHASE, quota=FIRST_PHASE // 2)
    assert_group_split_work(first)
    broker.restart()
    second = consume_as_group(members, RECORDS - FIRST_PHASE)
    assert_group_split_work(second)
    assert_exactly_once(first.records + second.records, values)
