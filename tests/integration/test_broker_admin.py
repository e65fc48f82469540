"""Topic and config administration through real admin clients (confluent-kafka, kafka-python)."""

from __future__ import annotations

import json
import select
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)

from strom.broker import EmbeddedBroker
from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from tests.support.brokers import running_strom
from tests.support.wire import WireClient, decode_response, request_frame

TIMEOUT = 15


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with running_strom(tmp_path_factory.mktemp("admin"), {"log.retention.hours": 24}) as b:
        yield b


@pytest.fixture(scope="module")
def admin(broker: EmbeddedBroker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap_servers})


def _create(admin: AdminClient, *topics: NewTopic) -> None:
    for future in admin.create_topics(list(topics), operation_timeout=TIMEOUT).values():
        future.result(TIMEOUT)


def _error_of(future) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(KafkaException) as info:
        future.result(TIMEOUT)
    return str(info.value.args[0].name())


def _describe(admin: AdminClient, topic: str) -> dict[str, ConfigEntry]:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    result: dict[str, ConfigEntry] = admin.describe_configs([resource])[resource].result(TIMEOUT)
    return result


def test_create_topic_with_configs_then_list_and_describe(admin: AdminClient) -> None:
    _create(
        admin, NewTopic("orders", num_partitions=6, replication_factor=1, config={"retention.ms": "3600000"})
    )
    md = admin.list_topics(timeout=TIMEOUT)
    assert sorted(md.topics["orders"].partitions) == list(range(6))
    configs = _describe(admin, "orders")
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    # Not set on the topic, but set on the broker: the broker's synonym is reported as the source.
    assert configs["segment.bytes"].value == "1073741824"
    assert configs["segment.bytes"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["cleanup.policy"].value == "delete"


def test_topic_default_comes_from_the_broker_synonym(admin: AdminClient) -> None:
    _create(admin, NewTopic("defaults", num_partitions=1, replication_factor=1))
    entry = _describe(admin, "defaults")["retention.ms"]
    assert entry.value == str(24 * 3_600_000)
    assert entry.source == ConfigSource.STATIC_BROKER_CONFIG.value


def test_create_topic_errors(admin: AdminClient) -> None:
    _create(admin, NewTopic("taken", num_partitions=1, replication_factor=1))
    futures = admin.create_topics(
        [
            NewTopic("taken", num_partitions=1, replication_factor=1),
            NewTopic("three-replicas", num_partitions=1, replication_factor=3),
            NewTopic("bad config", num_partitions=1, replication_factor=1),
            NewTopic("bad-config", num_partitions=1, replication_factor=1, config={"retention.ms": "soon"}),
            NewTopic("unknown-config", num_partitions=1, replication_factor=1, config={"no.such.key": "1"}),
            NewTopic("__transaction_state", num_partitions=1, replication_factor=1),
        ],
        operation_timeout=TIMEOUT,
    )
    assert _error_of(futures["taken"]) == "TOPIC_ALREADY_EXISTS"
    assert _error_of(futures["three-replicas"]) == "INVALID_REPLICATION_FACTOR"
    assert _error_of(futures["bad config"]) == "TOPIC_EXCEPTION"
    assert _error_of(futures["bad-config"]) == "INVALID_CONFIG"
    assert _error_of(futures["unknown-config"]) == "INVALID_CONFIG"
    assert _error_of(futures["__transaction_state"]) == "TOPIC_EXCEPTION"  # internal: the broker's own
    assert "bad-config" not in admin.list_topics(timeout=TIMEOUT).topics


def test_validate_only_creates_nothing(admin: AdminClient) -> None:
    futures = admin.create_topics(
        [NewTopic("dry-run", num_partitions=2, replication_factor=1)],
        validate_only=True,
        operation_timeout=TIMEOUT,
    )
    futures["dry-run"].result(TIMEOUT)
    assert "dry-run" not in admin.list_topics(timeout=TIMEOUT).topics


def test_alter_and_incremental_alter_configs(admin: AdminClient) -> None:
    _create(admin, NewTopic("tuned", num_partitions=1, replication_factor=1, config={"retention.ms": "1000"}))
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        "tuned",
        incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
            ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(TIMEOUT)
    configs = _describe(admin, "tuned")
    assert configs["cleanup.policy"].value == "delete,compact"
    assert configs["segment.bytes"].value == "1048576"
    assert configs["retention.ms"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    bad = ConfigResource(
        ConfigResource.Type.TOPIC,
        "tuned",
        incremental_configs=[ConfigEntry("segment.bytes", "1", incremental_operation=AlterConfigOpType.SET)],
    )
    assert _error_of(admin.incremental_alter_configs([bad])[bad]) == "INVALID_CONFIG"
    assert _describe(admin, "tuned")["segment.bytes"].value == "1048576"


def test_create_partitions_grows_only(admin: AdminClient) -> None:
    _create(admin, NewTopic("growing", num_partitions=2, replication_factor=1))
    admin.create_partitions([NewPartitions("growing", 5)])["growing"].result(TIMEOUT)
    assert len(admin.list_topics("growing", timeout=TIMEOUT).topics["growing"].partitions) == 5
    assert (
        _error_of(admin.create_partitions([NewPartitions("growing", 3)])["growing"]) == "INVALID_PARTITIONS"
    )
    assert _error_of(admin.create_partitions([NewPartitions("nope", 3)])["nope"]) == "UNKNOWN_TOPIC_OR_PART"


def test_internal_topic_partition_count_is_fixed(broker: EmbeddedBroker, admin: AdminClient) -> None:
    # Groups live on __consumer_offsets partition hash(group) % count: growing it would strand their offsets.
    broker.call(lambda b: b.ensure_internal_topic("__consumer_offsets", 2, {"cleanup.policy": "compact"}))
    before = len(
        admin.list_topics("__consumer_offsets", timeout=TIMEOUT).topics["__consumer_offsets"].partitions
    )
    future = admin.create_partitions([NewPartitions("__consumer_offsets", before + 3)])["__consumer_offsets"]
    assert _error_of(future) == "INVALID_REQUEST"
    after = admin.list_topics("__consumer_offsets", timeout=TIMEOUT).topics["__consumer_offsets"].partitions
    assert len(after) == before


def test_a_plain_topic_under_an_internal_name_is_made_internal_before_use(tmp_path: Path) -> None:
    # A data directory from before clients were refused internal names may hold a plain __consumer_offsets.
    with running_strom(tmp_path) as b:
        b.call(lambda br: br.ensure_internal_topic("__consumer_offsets", 1, {"cleanup.policy": "compact"}))
        b.stop()
        registry = tmp_path / "topics.json"
        doc = json.loads(registry.read_text(encoding="utf-8"))
        doc["topics"]["__consumer_offsets"].update(internal=False, configs={})
        registry.write_text(json.dumps(doc), encoding="utf-8")
        b.start()
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        # the group coordinator already ran the repair path at start-up (test_groups_offsets_topic_repair)
        assert _describe(admin, "__consumer_offsets")["cleanup.policy"].value == "compact"
        wanted = {"cleanup.policy": "compact", "segment.bytes": "104857600"}
        topic = b.call(lambda br: br.ensure_internal_topic("__consumer_offsets", 1, wanted))
        assert topic.internal and topic.configs == wanted
        assert _describe(admin, "__consumer_offsets")["cleanup.policy"].value == "compact"
        assert b.call(lambda br: br.partition("__consumer_offsets", 0).config.compact)
        assert (
            _error_of(admin.delete_topics(["__consumer_offsets"])["__consumer_offsets"]) == "INVALID_REQUEST"
        )


def test_delete_topics(admin: AdminClient) -> None:
    _create(admin, NewTopic("doomed", num_partitions=1, replication_factor=1))
    admin.delete_topics(["doomed"], operation_timeout=TIMEOUT)["doomed"].result(TIMEOUT)
    assert "doomed" not in admin.list_topics(timeout=TIMEOUT).topics
    assert (
        _error_of(admin.delete_topics(["doomed"], operation_timeout=TIMEOUT)["doomed"])
        == "UNKNOWN_TOPIC_OR_PART"
    )


def test_describe_broker_configs_and_cluster(admin: AdminClient, broker: EmbeddedBroker) -> None:
    resource = ConfigResource(ConfigResource.Type.BROKER, "0")
    configs = admin.describe_configs([resource])[resource].result(TIMEOUT)
    assert configs["log.retention.hours"].value == "24"
    assert configs["log.retention.hours"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert configs["num.partitions"].source == ConfigSource.DEFAULT_CONFIG.value
    cluster = admin.describe_cluster().result(TIMEOUT)
    assert cluster.controller.id == 0
    assert [n.port for n in cluster.nodes] == [broker.port]


def test_kafka_python_admin_round_trip(broker: EmbeddedBroker) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource as KConfigResource
    from kafka.admin import ConfigResourceType
    from kafka.admin import NewTopic as KNewTopic

    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=10000)
    try:
        client.create_topics([KNewTopic("kp-topic", 3, 1, topic_configs={"cleanup.policy": "compact"})])
        assert "kp-topic" in client.list_topics()
        described = client.describe_configs([KConfigResource(ConfigResourceType.TOPIC, "kp-topic")])
        text = repr(described)
        assert "cleanup.policy" in text and "compact" in text
        client.delete_topics(["kp-topic"])
        assert "kp-topic" not in client.list_topics()
    finally:
        client.close()


def test_topics_and_configs_survive_restart(tmp_path: Path) -> None:
    with running_strom(tmp_path) as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        _create(
            admin,
            NewTopic("kept", num_partitions=3, replication_factor=1, config={"cleanup.policy": "compact"}),
        )
        b.stop()
        b.start()
        admin = AdminClient({"bootstrap.servers": b.bootstrap_servers})
        assert len(admin.list_topics("kept", timeout=TIMEOUT).topics["kept"].partitions) == 3
        assert _describe(admin, "kept")["cleanup.policy"].value == "compact"


def test_creating_a_large_topic_does_not_stall_other_connections(broker: EmbeddedBroker) -> None:
    body = {
        "topics": [
            {"name": "wide", "num_partitions": 300, "replication_factor": 1, "assignments": [], "configs": []}
        ],
        "timeout": 60000,
        "validate_only": False,
    }
    with (
        WireClient(broker.bootstrap_servers, timeout=60) as creator,
        WireClient(broker.bootstrap_servers) as other,
    ):
        creator.send(request_frame(ApiKey.CREATE_TOPICS, 5, 7, body))
        # While the 300 partitions are being made, another connection is served: its answer comes while
        # the creator's has not (a blocked event loop would answer the creator first).
        assert other.call(ApiKey.API_VERSIONS, 0, {}).error_code == ErrorCode.NONE
        assert select.select([creator.sock], [], [], 0)[0] == []
        resp = decode_response(19, 5, creator.read_frame(), 7)
    assert resp.topics[0].error_code == ErrorCode.NONE and resp.topics[0].num_partitions == 300
    with WireClient(broker.bootstrap_servers) as client:
        md = client.call(
            ApiKey.METADATA,
            9,
            {
                "topics": [{"name": "wide"}],
                "allow_auto_topic_creation": False,
                "include_topic_authorized_operations": False,
                "include_cluster_authorized_operations": False,
            },
        )
    assert len(md.topics[0].partitions) == 300


def test_partition_count_is_bounded(admin: AdminClient) -> None:
    futures = admin.create_topics(
        [NewTopic("huge", num_partitions=5000, replication_factor=1)], operation_timeout=TIMEOUT
    )
    assert _error_of(futures["huge"]) == "INVALID_PARTITIONS"
