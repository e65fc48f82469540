"""The group APIs on the wire, request by request: every advertised version round-trips, and bad input gets
the Kafka error code (never a crash or a closed connection). Uses a raw protocol client, no client library."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest

from strom.broker import EmbeddedBroker
from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from tests.support.brokers import running_strom
from tests.support.wire import WireClient, decode_response, request_frame

TOPIC = "t"
SUB = struct.pack(">hih", 0, 1, len(TOPIC)) + TOPIC.encode() + struct.pack(">i", -1)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    config = {"group.initial.rebalance.delay.ms": "0", "offset.metadata.max.bytes": "100"}
    with running_strom(tmp_path_factory.mktemp("groups"), config) as b:
        with WireClient(b.bootstrap_servers) as c:
            created = c.call(
                ApiKey.CREATE_TOPICS,
                4,
                {
                    "topics": [
                        {
                            "name": TOPIC,
                            "num_partitions": 3,
                            "replication_factor": 1,
                            "assignments": [],
                            "configs": [],
                        }
                    ],
                    "timeout": 10_000,
                    "validate_only": False,
                },
            )
            assert created.topics[0].error_code == ErrorCode.NONE
        yield b


@pytest.fixture
def client(broker: EmbeddedBroker) -> Iterator[WireClient]:
    with WireClient(broker.bootstrap_servers) as c:
        yield c


def join(
    c: WireClient,
    group: str,
    member_id: str = "",
    version: int = 7,
    instance: str | None = None,
    protocols: list[tuple[str, bytes]] | None = None,
    protocol_type: str = "consumer",
    session_ms: int = 10_000,
) -> Any:
    return c.call(
        ApiKey.JOIN_GROUP,
        version,
        {
            "group_id": group,
            "session_timeout": session_ms,
            "rebalance_timeout": 10_000,
            "member_id": member_id,
            "group_instance_id": instance,
            "protocol_type": protocol_type,
            "protocols": [
                {"name": n, "metadata": m}
                for n, m in (protocols if protocols is not None else [("range", SUB)])
            ],
        },
    )


def join_new(c: WireClient, group: str, version: int = 7, **kw: Any) -> Any:
    first = join(c, group, version=version, **kw)
    if first.error_code != ErrorCode.MEMBER_ID_REQUIRED:
        return first
    return join(c, group, first.member_id, version=version, **kw)


def sync(
    c: WireClient, group: str, member: str, gen: int, assignments: dict[str, bytes], version: int = 5
) -> Any:
    return c.call(
        ApiKey.SYNC_GROUP,
        version,
        {
            "group_id": group,
            "generation_id": gen,
            "member_id": member,
            "protocol_type": "consumer",
            "protocol_name": "range",
            "assignments": [{"member_id": m, "assignment": a} for m, a in assignments.items()],
        },
    )


def commit(c: WireClient, group: str, gen: int, member: str, parts: list[tuple[str, int, int, str]]) -> Any:
    topics: dict[str, list[dict[str, Any]]] = {}
    for topic, p, offset, md in parts:
        topics.setdefault(topic, []).append(
            {
                "partition_index": p,
                "committed_offset": offset,
                "committed_leader_epoch": -1,
                "committed_metadata": md,
            }
        )
    return c.call(
        ApiKey.OFFSET_COMMIT,
        8,
        {
            "group_id": group,
            "generation_id_or_member_epoch": gen,
            "member_id": member,
            "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()],
        },
    )


def errors_of(response: Any) -> dict[tuple[str, int], ErrorCode]:
    return {(t.name, p.partition_index): p.error_code for t in response.topics for p in t.partitions}


@pytest.mark.parametrize("version", range(8))
def test_join_sync_heartbeat_leave_at_every_version(client: WireClient, version: int) -> None:
    group = f"versions-{version}"
    first = join(client, group, version=version)
    if version >= 4:
        assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED and first.member_id
        first = join(client, group, first.member_id, version=version)
    assert first.error_code == ErrorCode.NONE and first.generation_id == 1 and first.leader == first.member_id
    assert first.protocol_name == "range" and [m.member_id for m in first.members] == [first.member_id]
    me = first.member_id
    synced = sync(client, group, me, 1, {me: b"assignment"}, version=min(version, 5))
    assert (synced.error_code, synced.assignment) == (ErrorCode.NONE, b"assignment")
    hb = {"group_id": group, "generation_id": 1, "member_id": me}
    assert client.call(ApiKey.HEARTBEAT, min(version, 4), hb).error_code == ErrorCode.NONE
    if version >= 3:
        left = client.call(
            ApiKey.LEAVE_GROUP, min(version, 4), {"group_id": group, "members": [{"member_id": me}]}
        )
        assert left.error_code == ErrorCode.NONE and [m.error_code for m in left.members] == [ErrorCode.NONE]
    else:
        assert (
            client.call(ApiKey.LEAVE_GROUP, version, {"group_id": group, "member_id": me}).error_code
            == ErrorCode.NONE
        )
    assert client.call(ApiKey.HEARTBEAT, min(version, 4), hb).error_code == ErrorCode.UNKNOWN_MEMBER_ID


def test_second_member_waits_for_the_first_to_rejoin(broker: EmbeddedBroker, client: WireClient) -> None:
    a = join_new(client, "waiting")
    sync(client, "waiting", a.member_id, 1, {a.member_id: b""})
    with WireClient(broker.bootstrap_servers) as other:
        pending = join(other, "waiting")
        assert pending.error_code == ErrorCode.MEMBER_ID_REQUIRED
        # The second member's JoinGroup is held by the broker until the first member rejoins.
        other.send(request_frame(ApiKey.JOIN_GROUP, 7, 99, _join_body("waiting", pending.member_id)))
        hb = client.call(
            ApiKey.HEARTBEAT, 4, {"group_id": "waiting", "generation_id": 1, "member_id": a.member_id}
        )
        assert hb.error_code == ErrorCode.REBALANCE_IN_PROGRESS
        rejoined = join(client, "waiting", a.member_id)
        joined = decode_response(11, 7, other.read_frame(), 99)
        assert rejoined.generation_id == joined.generation_id == 2
        assert rejoined.leader == a.member_id and {m.member_id for m in rejoined.members} == {
            a.member_id,
            pending.member_id,
        }
        assert joined.members == ()


def _join_body(group: str, member_id: str) -> dict[str, Any]:
    return {
        "group_id": group,
        "session_timeout": 10_000,
        "rebalance_timeout": 10_000,
        "member_id": member_id,
        "protocol_type": "consumer",
        "protocols": [{"name": "range", "metadata": SUB}],
    }


def test_bad_joins(client: WireClient) -> None:
    join_new(client, "bad-joins")
    assert (
        join(client, "bad-joins", protocols=[("roundrobin", SUB)]).error_code
        == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    )
    assert (
        join(client, "bad-joins", protocol_type="connect").error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    )
    assert join(client, "bad-joins-2", protocols=[]).error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert join(client, "").error_code == ErrorCode.INVALID_GROUP_ID
    assert join(client, "bad-joins", session_ms=1).error_code == ErrorCode.INVALID_SESSION_TIMEOUT
    assert join(client, "bad-joins", "no-such-member").error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert join(client, "x" * 40_000).error_code == ErrorCode.INVALID_GROUP_ID


def test_generation_and_member_fencing(client: WireClient) -> None:
    a = join_new(client, "fencing")
    me = a.member_id
    assert sync(client, "fencing", me, 7, {}).error_code == ErrorCode.ILLEGAL_GENERATION
    assert sync(client, "fencing", "stranger", 1, {}).error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert sync(client, "", me, 1, {}).error_code == ErrorCode.INVALID_GROUP_ID
    sync(client, "fencing", me, 1, {me: b""})
    hb = client.call(ApiKey.HEARTBEAT, 4, {"group_id": "fencing", "generation_id": 0, "member_id": me})
    assert hb.error_code == ErrorCode.ILLEGAL_GENERATION
    hb = client.call(ApiKey.HEARTBEAT, 4, {"group_id": "nope", "generation_id": 1, "member_id": me})
    assert hb.error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert errors_of(commit(client, "fencing", 0, me, [(TOPIC, 0, 1, "")])) == {
        (TOPIC, 0): ErrorCode.ILLEGAL_GENERATION
    }
    assert errors_of(commit(client, "fencing", 1, "stranger", [(TOPIC, 0, 1, "")])) == {
        (TOPIC, 0): ErrorCode.UNKNOWN_MEMBER_ID
    }
    assert errors_of(commit(client, "fencing", -1, "", [(TOPIC, 0, 1, "")])) == {
        (TOPIC, 0): ErrorCode.UNKNOWN_MEMBER_ID
    }
    left = client.call(ApiKey.LEAVE_GROUP, 4, {"group_id": "fencing", "members": [{"member_id": "stranger"}]})
    assert [m.error_code for m in left.members] == [ErrorCode.UNKNOWN_MEMBER_ID]
    assert (
        client.call(ApiKey.LEAVE_GROUP, 1, {"group_id": "fencing", "member_id": "stranger"}).error_code
        == ErrorCode.UNKNOWN_MEMBER_ID
    )


def test_static_member_fencing(client: WireClient) -> None:
    old = join(client, "static", version=5, instance="instance-1")
    assert old.error_code == ErrorCode.NONE  # static members skip MEMBER_ID_REQUIRED
    sync(client, "static", old.member_id, 1, {old.member_id: b"mine"})
    new = join(client, "static", version=5, instance="instance-1")
    assert new.error_code == ErrorCode.NONE and new.member_id != old.member_id and new.generation_id == 1
    assert sync(client, "static", new.member_id, 1, {}).assignment == b"mine"
    hb = client.call(
        ApiKey.HEARTBEAT,
        4,
        {
            "group_id": "static",
            "generation_id": 1,
            "member_id": old.member_id,
            "group_instance_id": "instance-1",
        },
    )
    assert hb.error_code == ErrorCode.FENCED_INSTANCE_ID


def test_offset_commit_and_fetch(client: WireClient) -> None:
    response = commit(
        client,
        "offsets",
        -1,
        "",
        [(TOPIC, 0, 10, "hello"), (TOPIC, 9, 1, ""), ("missing", 0, 1, ""), (TOPIC, 1, 5, "m" * 101)],
    )
    assert errors_of(response) == {
        (TOPIC, 0): ErrorCode.NONE,
        (TOPIC, 9): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ("missing", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        (TOPIC, 1): ErrorCode.OFFSET_METADATA_TOO_LARGE,
    }
    fetched = client.call(
        ApiKey.OFFSET_FETCH,
        7,
        {"group_id": "offsets", "topics": [{"name": TOPIC, "partition_indexes": [0, 1]}]},
    )
    rows = {
        p.partition_index: (p.committed_offset, p.metadata, p.error_code)
        for p in fetched.topics[0].partitions
    }
    assert rows == {0: (10, "hello", ErrorCode.NONE), 1: (-1, "", ErrorCode.NONE)}
    everything = client.call(ApiKey.OFFSET_FETCH, 7, {"group_id": "offsets", "topics": None})
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in everything.topics] == [(TOPIC, [0])]
    old = client.call(
        ApiKey.OFFSET_FETCH, 1, {"group_id": "offsets", "topics": [{"name": TOPIC, "partition_indexes": [0]}]}
    )
    assert old.topics[0].partitions[0].committed_offset == 10
    bad = client.call(ApiKey.OFFSET_FETCH, 7, {"group_id": "y" * 40_000, "topics": None})
    assert bad.error_code == ErrorCode.INVALID_GROUP_ID


@pytest.mark.parametrize("version", range(4))
def test_find_coordinator(broker: EmbeddedBroker, client: WireClient, version: int) -> None:
    response = client.call(ApiKey.FIND_COORDINATOR, version, {"key": "any-group", "key_type": 0})
    assert response.error_code == ErrorCode.NONE
    assert f"{response.host}:{response.port}" == broker.bootstrap_servers
    if version >= 1:
        assert (
            client.call(ApiKey.FIND_COORDINATOR, version, {"key": "txn-id", "key_type": 1}).error_code
            == ErrorCode.NONE
        )
        assert (
            client.call(ApiKey.FIND_COORDINATOR, version, {"key": "g", "key_type": 5}).error_code
            == ErrorCode.INVALID_REQUEST
        )


def test_admin_apis_at_every_version(client: WireClient) -> None:
    a = join_new(client, "admin")
    sync(client, "admin", a.member_id, 1, {a.member_id: b"\x00\x01"})
    commit(client, "simple-admin", -1, "", [(TOPIC, 2, 3, "")])
    for version in range(6):
        (desc,) = client.call(
            ApiKey.DESCRIBE_GROUPS, version, {"groups": ["admin"], "include_authorized_operations": True}
        ).groups
        assert (desc.error_code, desc.group_state, desc.protocol_type, desc.protocol_data) == (
            ErrorCode.NONE,
            "Stable",
            "consumer",
            "range",
        )
        (member,) = desc.members
        assert (member.member_id, member.member_metadata, member.member_assignment) == (
            a.member_id,
            SUB,
            b"\x00\x01",
        )
        assert member.client_host == "/127.0.0.1"
        (missing,) = client.call(
            ApiKey.DESCRIBE_GROUPS, version, {"groups": ["missing"], "include_authorized_operations": False}
        ).groups
        assert missing.group_state == "Dead"
    for version in range(5):
        listed = client.call(ApiKey.LIST_GROUPS, version, {"states_filter": []})
        assert {("admin", "consumer"), ("simple-admin", "")} <= {
            (g.group_id, g.protocol_type) for g in listed.groups
        }
    stable_only = client.call(ApiKey.LIST_GROUPS, 4, {"states_filter": ["Stable"]})
    assert "simple-admin" not in {g.group_id for g in stable_only.groups}
    for version in range(2):
        deleted = client.call(ApiKey.DELETE_GROUPS, version, {"groups_names": ["admin", "missing"]})
        assert [(r.group_id, r.error_code) for r in deleted.results] == [
            ("admin", ErrorCode.NON_EMPTY_GROUP),
            ("missing", ErrorCode.GROUP_ID_NOT_FOUND),
        ]
    gone = client.call(
        ApiKey.OFFSET_DELETE,
        0,
        {"group_id": "missing", "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0}]}]},
    )
    assert gone.error_code == ErrorCode.GROUP_ID_NOT_FOUND
    subscribed = client.call(
        ApiKey.OFFSET_DELETE,
        0,
        {
            "group_id": "admin",
            "topics": [
                {"name": TOPIC, "partitions": [{"partition_index": 0}]},
                {"name": "missing", "partitions": [{"partition_index": 0}]},
            ],
        },
    )
    assert errors_of(subscribed) == {
        (TOPIC, 0): ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC,
        ("missing", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    }
    removed = client.call(
        ApiKey.OFFSET_DELETE,
        0,
        {"group_id": "simple-admin", "topics": [{"name": TOPIC, "partitions": [{"partition_index": 2}]}]},
    )
    assert errors_of(removed) == {(TOPIC, 2): ErrorCode.NONE}
    assert [
        r.error_code for r in client.call(ApiKey.DELETE_GROUPS, 1, {"groups_names": ["simple-admin"]}).results
    ] == [ErrorCode.NONE]


def test_offset_delete_naming_a_partition_twice_answers_both(client: WireClient) -> None:
    commit(client, "twice", -1, "", [(TOPIC, 1, 4, "")])
    partitions = [{"partition_index": 1}, {"partition_index": 1}]
    removed = client.call(
        ApiKey.OFFSET_DELETE, 0, {"group_id": "twice", "topics": [{"name": TOPIC, "partitions": partitions}]}
    )
    assert removed.error_code == ErrorCode.NONE
    assert [(p.partition_index, p.error_code) for t in removed.topics for p in t.partitions] == [
        (1, ErrorCode.NONE),
        (1, ErrorCode.NONE),
    ]
    fetched = client.call(
        ApiKey.OFFSET_FETCH, 1, {"group_id": "twice", "topics": [{"name": TOPIC, "partition_indexes": [1]}]}
    )
    assert fetched.topics[0].partitions[0].committed_offset == -1


def test_group_too_large_to_persist_is_refused_and_the_group_recovers(client: WireClient) -> None:
    # 1.5 MB of subscription metadata: fine on the wire, but the group record would exceed the internal
    # topic's max.message.bytes (1 MB), so the leader's SyncGroup cannot be stored.
    huge = SUB + b"\x00" * 1_500_000
    a = join_new(client, "huge", protocols=[("range", huge)])
    assert a.error_code == ErrorCode.NONE and a.members[0].metadata == huge
    refused = sync(client, "huge", a.member_id, a.generation_id, {a.member_id: b""})
    assert refused.error_code == ErrorCode.UNKNOWN_SERVER_ERROR
    hb = client.call(
        ApiKey.HEARTBEAT, 4, {"group_id": "huge", "generation_id": a.generation_id, "member_id": a.member_id}
    )
    assert hb.error_code == ErrorCode.REBALANCE_IN_PROGRESS
    again = join(client, "huge", a.member_id)  # a normal-sized subscription is stored fine
    assert again.error_code == ErrorCode.NONE and again.generation_id == a.generation_id + 1
    assert sync(client, "huge", a.member_id, again.generation_id, {a.member_id: b"ok"}).assignment == b"ok"
