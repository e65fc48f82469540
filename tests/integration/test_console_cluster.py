"""The console's cluster side against a real broker: pages cost what they show, not what the cluster holds."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import OffsetSpec

from strom.console import ClusterError
from strom.console.cluster import Cluster
from strom.console.records import Browse, Records
from tests.support.cli import run_strom
from tests.support.scenario import unique_name


def test_a_topic_page_asks_offsets_only_for_the_topics_it_shows(strom_broker: str) -> None:
    prefix = unique_name("paged")
    for i in range(5):
        assert (
            run_strom(
                "topics", "create", f"{prefix}-{i}", "--partitions", "2", "--bootstrap", strom_broker
            ).returncode
            == 0
        )
    cluster = Cluster(strom_broker)
    asked: list[list[tuple[str, int]]] = []
    offsets = cluster.offsets

    def counting(partitions: Any, spec: Any) -> dict[tuple[str, int], int]:
        asked.append(list(partitions))
        return offsets(asked[-1], spec)

    cluster.offsets = counting  # type: ignore[method-assign]
    page = cluster.topic_page(prefix, page=3, size=2)
    assert [row.name for row in page.rows] == [f"{prefix}-4"]
    assert (page.total, page.page, page.pages) == (5, 3, 3)
    assert asked == [[(f"{prefix}-4", 0), (f"{prefix}-4", 1)]] * 2  # earliest and latest, this page only


def test_browsing_reads_newest_or_oldest_first_and_filters_within_a_bounded_scan(strom_broker: str) -> None:
    topic = unique_name("browse")
    assert run_strom("topics", "create", topic, "--bootstrap", strom_broker).returncode == 0
    lines = "".join(f"k{i}:value {i}\n" for i in range(30))
    assert run_strom("produce", topic, "-K", ":", "--bootstrap", strom_broker, input=lines).returncode == 0
    records = Records(Cluster(strom_broker))

    newest = records.browse(Browse(topic, 0, limit=5))
    assert [r.offset for r in newest.records] == [29, 28, 27, 26, 25]
    assert newest.resume_at == 24
    older = records.browse(Browse(topic, 0, offset=newest.resume_at, limit=5))
    assert [r.offset for r in older.records] == [24, 23, 22, 21, 20]

    oldest = records.browse(Browse(topic, 0, newest_first=False, offset=10, limit=3))
    assert [(r.offset, r.key, r.value) for r in oldest.records] == [
        (10, "k10", "value 10"),
        (11, "k11", "value 11"),
        (12, "k12", "value 12"),
    ]
    assert oldest.resume_at == 13

    matched = records.browse(Browse(topic, 0, newest_first=False, key="k2", limit=50))
    assert [r.key for r in matched.records] == ["k2", *(f"k2{i}" for i in range(10))]
    assert matched.resume_at is None  # read to the end

    none = records.browse(Browse(topic, 0, text="absent", limit=50))
    assert none.records == [] and none.scanned == 30


def test_browsing_from_a_time_starts_at_the_first_record_at_or_after_it(strom_broker: str) -> None:
    topic = unique_name("browse-time")
    assert run_strom("topics", "create", topic, "--bootstrap", strom_broker).returncode == 0
    producer = Producer({"bootstrap.servers": strom_broker})
    for i in range(10):
        producer.produce(topic, value=f"at {i}", partition=0, timestamp=1_700_000_000_000 + i * 1000)
    assert producer.flush(30) == 0
    records = Records(Cluster(strom_broker))
    page = records.browse(Browse(topic, 0, time_ms=1_700_000_006_500, newest_first=False))
    assert [r.value for r in page.records] == ["at 7", "at 8", "at 9"]
    assert page.records[0].time == "2023-11-14T22:13:27.000Z"
    assert records.browse(Browse(topic, 0, time_ms=1_800_000_000_000)).records == []


def test_reset_targets_by_time_and_offset_and_a_refused_offset_commits_nothing(strom_broker: str) -> None:
    topic = unique_name("reset")
    assert (
        run_strom("topics", "create", topic, "--partitions", "2", "--bootstrap", strom_broker).returncode == 0
    )
    producer = Producer({"bootstrap.servers": strom_broker})
    for i in range(4):
        producer.produce(topic, value=b"x", partition=0, timestamp=1_700_000_000_000 + i * 1000)
    assert producer.flush(30) == 0
    cluster = Cluster(strom_broker)
    group_id = unique_name("reset-group")
    cluster.commit_offsets(group_id, topic, {0: 4, 1: 0})
    group = cluster.group(group_id)
    assert group.total_lag == 0

    by_time = cluster.reset_targets(group, topic, OffsetSpec.for_timestamp(1_700_000_001_500))
    assert by_time == [(0, 4, 2), (1, 0, 0)]  # partition 1 has no record after that time: its log end
    with pytest.raises(ClusterError, match="offset 3 is outside partition 1"):
        cluster.reset_targets(group, topic, 3)
    assert cluster.group(group_id).total_lag == 0

    cluster.commit_offsets(group_id, topic, {p: new for p, _, new in by_time})
    assert cluster.group(group_id).total_lag == 2
