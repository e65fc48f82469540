"""The classic group protocol's observable rules, pinned by running the same raw requests against strom and
against Apache Kafka: which error each phase of a rebalance answers, how fencing and static members behave.

Every expected code here is asserted against both brokers, so a rule strom gets wrong and a rule the reference
notes misremember both fail."""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from tests.support.brokers import running_strom
from tests.support.wire import WireClient, decode_response, request_frame

TOPIC = "group-rules"
NO_OPS = {"include_cluster_authorized_operations": False, "include_topic_authorized_operations": False}
SUB = struct.pack(">hih", 0, 1, len(TOPIC)) + TOPIC.encode() + struct.pack(">i", -1)


@pytest.fixture(scope="module")
def strom_groups_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_strom(tmp_path_factory.mktemp("groups"), {"group.initial.rebalance.delay.ms": "0"}) as b:
        yield b.bootstrap_servers


@pytest.fixture(params=["strom", pytest.param("kafka", marks=pytest.mark.kafka)])
def bootstrap(request: pytest.FixtureRequest) -> str:
    address: str = request.getfixturevalue(
        "strom_groups_broker" if request.param == "strom" else "apache_kafka"
    )
    with WireClient(address) as c:
        c.call(
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
        )  # TOPIC_ALREADY_EXISTS after the first test: fine
        deadline = time.monotonic() + 30
        while True:
            meta = c.call(
                ApiKey.METADATA,
                9,
                {"topics": [{"name": TOPIC}], "allow_auto_topic_creation": False, **NO_OPS},
            )
            if meta.topics[0].error_code == ErrorCode.NONE and len(meta.topics[0].partitions) == 3:
                break
            assert time.monotonic() < deadline, meta
    return address


def unique(bootstrap: str, prefix: str) -> str:
    """A fresh group id whose coordinator is ready (Kafka creates and loads __consumer_offsets lazily)."""
    group = f"{prefix}-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + 60
    with WireClient(bootstrap) as c:
        while True:
            found = c.call(ApiKey.FIND_COORDINATOR, 3, {"key": group, "key_type": 0}).error_code
            described = c.call(
                ApiKey.DESCRIBE_GROUPS, 5, {"groups": [group], "include_authorized_operations": False}
            ).groups[0]
            if found == ErrorCode.NONE and described.error_code == ErrorCode.NONE:
                return group
            assert time.monotonic() < deadline, (found, described)


def join_body(
    group: str, member_id: str = "", instance: str | None = None, protocol: str = "range"
) -> dict[str, Any]:
    return {
        "group_id": group,
        "session_timeout": 10_000,
        "rebalance_timeout": 10_000,
        "member_id": member_id,
        "group_instance_id": instance,
        "protocol_type": "consumer",
        "protocols": [{"name": protocol, "metadata": SUB}],
    }


def join(c: WireClient, group: str, member_id: str = "", **kw: Any) -> Any:
    return c.call(ApiKey.JOIN_GROUP, 7, join_body(group, member_id, **kw))


def sync(c: WireClient, group: str, member: str, gen: int, assignments: dict[str, bytes], **kw: Any) -> Any:
    return c.call(
        ApiKey.SYNC_GROUP,
        5,
        {
            "group_id": group,
            "generation_id": gen,
            "member_id": member,
            "protocol_type": "consumer",
            "protocol_name": kw.get("protocol_name", "range"),
            "group_instance_id": kw.get("instance"),
            "assignments": [{"member_id": m, "assignment": a} for m, a in assignments.items()],
        },
    )


def heartbeat(c: WireClient, group: str, member: str, gen: int, instance: str | None = None) -> ErrorCode:
    body = {"group_id": group, "generation_id": gen, "member_id": member, "group_instance_id": instance}
    return c.call(ApiKey.HEARTBEAT, 4, body).error_code  # type: ignore[no-any-return]


def await_rebalance(c: WireClient, group: str, member: str, gen: int, instance: str | None = None) -> None:
    """Heartbeat until the broker reports the rebalance another connection's JoinGroup started."""
    deadline = time.monotonic() + 30
    while heartbeat(c, group, member, gen, instance) != ErrorCode.REBALANCE_IN_PROGRESS:
        assert time.monotonic() < deadline, "the other member's JoinGroup never started a rebalance"


def commit(c: WireClient, group: str, gen: int, member: str) -> ErrorCode:
    response = c.call(
        ApiKey.OFFSET_COMMIT,
        8,
        {
            "group_id": group,
            "generation_id_or_member_epoch": gen,
            "member_id": member,
            "topics": [
                {
                    "name": TOPIC,
                    "partitions": [
                        {
                            "partition_index": 0,
                            "committed_offset": 1,
                            "committed_leader_epoch": -1,
                            "committed_metadata": "",
                        }
                    ],
                }
            ],
        },
    )
    return response.topics[0].partitions[0].error_code  # type: ignore[no-any-return]


def test_codes_through_the_phases_of_a_rebalance(bootstrap: str) -> None:
    group = unique(bootstrap, "phases")
    with WireClient(bootstrap) as a, WireClient(bootstrap) as b:
        first = join(a, group)
        assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED
        ja = join(a, group, first.member_id)
        me = ja.member_id
        assert (ja.error_code, ja.generation_id, ja.leader) == (ErrorCode.NONE, 1, me)
        # CompletingRebalance: heartbeats are fine, commits must wait for the assignment.
        assert heartbeat(a, group, me, 1) == ErrorCode.NONE
        assert commit(a, group, 1, me) == ErrorCode.REBALANCE_IN_PROGRESS
        assert sync(a, group, me, 1, {me: b""}).error_code == ErrorCode.NONE
        # Stable
        assert commit(a, group, 1, me) == ErrorCode.NONE
        assert commit(a, group, -1, "") == ErrorCode.UNKNOWN_MEMBER_ID
        # A second member arrives: PreparingRebalance.
        pending = join(b, group)
        b.send(request_frame(ApiKey.JOIN_GROUP, 7, 77, join_body(group, pending.member_id)))
        await_rebalance(a, group, me, 1)
        assert commit(a, group, 1, me) == ErrorCode.NONE  # eager consumers commit in their revoke callback
        assert sync(a, group, me, 1, {}).error_code == ErrorCode.REBALANCE_IN_PROGRESS
        ja2 = join(a, group, me)
        jb = decode_response(11, 7, b.read_frame(), 77)
        assert ja2.generation_id == jb.generation_id == 2
        assert ja2.leader == me and jb.leader == me and jb.members == ()
        assert {m.member_id for m in ja2.members} == {me, jb.member_id}
        # The old generation is fenced everywhere.
        assert heartbeat(a, group, me, 1) == ErrorCode.ILLEGAL_GENERATION
        assert commit(a, group, 1, me) == ErrorCode.ILLEGAL_GENERATION
        assert sync(b, group, jb.member_id, 2, {}, protocol_name="roundrobin").error_code == (
            ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        )


def test_bad_requests_get_the_same_codes(bootstrap: str) -> None:
    group = unique(bootstrap, "bad")
    with WireClient(bootstrap) as c:
        assert join(c, group, "made-up").error_code == ErrorCode.UNKNOWN_MEMBER_ID
        assert join(c, "").error_code == ErrorCode.INVALID_GROUP_ID
        body = join_body(group)
        body["session_timeout"] = 1
        assert c.call(ApiKey.JOIN_GROUP, 7, body).error_code == ErrorCode.INVALID_SESSION_TIMEOUT
        first = join(c, group)
        me = join(c, group, first.member_id).member_id
        sync(c, group, me, 1, {me: b""})
        assert join(c, group, protocol="roundrobin").error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        assert heartbeat(c, unique(bootstrap, "nogroup"), me, 1) == ErrorCode.UNKNOWN_MEMBER_ID
        assert sync(c, unique(bootstrap, "nogroup"), me, 1, {}).error_code == ErrorCode.UNKNOWN_MEMBER_ID
        assert commit(c, unique(bootstrap, "nogroup"), 5, "m") == ErrorCode.ILLEGAL_GENERATION
        left = c.call(ApiKey.LEAVE_GROUP, 4, {"group_id": group, "members": [{"member_id": "made-up"}]})
        assert (left.error_code, [m.error_code for m in left.members]) == (
            ErrorCode.NONE,
            [ErrorCode.UNKNOWN_MEMBER_ID],
        )
        (dead,) = c.call(
            ApiKey.DESCRIBE_GROUPS,
            5,
            {"groups": [unique(bootstrap, "nogroup")], "include_authorized_operations": False},
        ).groups
        assert (dead.error_code, dead.group_state) == (ErrorCode.NONE, "Dead")
        offset_delete = c.call(
            ApiKey.OFFSET_DELETE,
            0,
            {"group_id": group, "topics": [{"name": TOPIC, "partitions": [{"partition_index": 0}]}]},
        )
        assert offset_delete.topics[0].partitions[0].error_code == ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
        missing = unique(bootstrap, "nogroup")
        deleted = c.call(ApiKey.DELETE_GROUPS, 1, {"groups_names": [group, missing]})
        assert {r.group_id: r.error_code for r in deleted.results} == {
            group: ErrorCode.NON_EMPTY_GROUP,
            missing: ErrorCode.GROUP_ID_NOT_FOUND,
        }


def test_static_member_replacement(bootstrap: str) -> None:
    group = unique(bootstrap, "static")
    with WireClient(bootstrap) as a, WireClient(bootstrap) as b:
        ja = join(a, group, instance="ia")
        assert ja.error_code == ErrorCode.NONE and ja.generation_id == 1
        sync(a, group, ja.member_id, 1, {ja.member_id: b""}, instance="ia")
        b.send(request_frame(ApiKey.JOIN_GROUP, 7, 5, join_body(group, instance="ib")))
        await_rebalance(a, group, ja.member_id, 1, "ia")
        ja2 = join(a, group, ja.member_id, instance="ia")
        jb = decode_response(11, 7, b.read_frame(), 5)
        assert ja2.generation_id == jb.generation_id == 2 and ja2.leader == ja.member_id
        b.send(request_frame(ApiKey.SYNC_GROUP, 5, 6, _sync_body(group, jb.member_id, "ib", {})))
        sync(a, group, ja.member_id, 2, {ja.member_id: b"A", jb.member_id: b"B"}, instance="ia")
        assert decode_response(14, 5, b.read_frame(), 6).assignment == b"B"
        # ib restarts: it joins without its member id and takes over without a rebalance.
        again = join(b, group, instance="ib")
        assert (
            again.error_code == ErrorCode.NONE
            and again.generation_id == 2
            and again.member_id != jb.member_id
        )
        assert again.leader == ja.member_id and again.members == ()
        assert sync(b, group, again.member_id, 2, {}, instance="ib").assignment == b"B"
        assert heartbeat(a, group, ja.member_id, 2, "ia") == ErrorCode.NONE
        assert heartbeat(b, group, jb.member_id, 2, "ib") == ErrorCode.FENCED_INSTANCE_ID
        (desc,) = b.call(
            ApiKey.DESCRIBE_GROUPS, 5, {"groups": [group], "include_authorized_operations": False}
        ).groups
        assert desc.group_state == "Stable"
        assert sorted((m.group_instance_id, m.member_id) for m in desc.members) == [
            ("ia", ja.member_id),
            ("ib", again.member_id),
        ]


def _sync_body(group: str, member: str, instance: str, assignments: dict[str, bytes]) -> dict[str, Any]:
    return {
        "group_id": group,
        "generation_id": 2,
        "member_id": member,
        "group_instance_id": instance,
        "protocol_type": "consumer",
        "protocol_name": "range",
        "assignments": [{"member_id": m, "assignment": a} for m, a in assignments.items()],
    }


def test_static_leader_replacement_keeps_the_assignment(bootstrap: str) -> None:
    group = unique(bootstrap, "static-leader")
    with WireClient(bootstrap) as a, WireClient(bootstrap) as b:
        ja = join(a, group, instance="ia")
        sync(a, group, ja.member_id, 1, {ja.member_id: b"A"}, instance="ia")
        again = join(b, group, instance="ia")
        # Not told it leads (the old leader id comes back), so it computes no assignment the Stable group
        # would ignore; it gets its predecessor's assignment whatever it sends.
        assert (again.error_code, again.generation_id, again.leader, again.members) == (
            ErrorCode.NONE,
            1,
            ja.member_id,
            (),
        )
        assert sync(b, group, again.member_id, 1, {again.member_id: b"NEW"}, instance="ia").assignment == b"A"
        (desc,) = b.call(
            ApiKey.DESCRIBE_GROUPS, 5, {"groups": [group], "include_authorized_operations": False}
        ).groups
        assert desc.group_state == "Stable"
        assert heartbeat(a, group, ja.member_id, 1, "ia") == ErrorCode.FENCED_INSTANCE_ID


def test_describe_through_the_life_of_a_group(bootstrap: str) -> None:
    group = unique(bootstrap, "describe")
    with WireClient(bootstrap) as c:

        def describe() -> Any:
            (desc,) = c.call(
                ApiKey.DESCRIBE_GROUPS, 5, {"groups": [group], "include_authorized_operations": False}
            ).groups
            return desc

        first = join(c, group)
        me = join(c, group, first.member_id).member_id
        completing = describe()  # no assignment yet: members without metadata, no protocol
        assert (completing.group_state, completing.protocol_type, completing.protocol_data) == (
            "CompletingRebalance",
            "consumer",
            "",
        )
        assert [(m.member_id, m.member_metadata, m.member_assignment) for m in completing.members] == [
            (me, b"", b"")
        ]
        sync(c, group, me, 1, {me: b"\x00\x01"})
        stable = describe()
        assert (stable.group_state, stable.protocol_data) == ("Stable", "range")
        assert [(m.member_metadata, m.member_assignment) for m in stable.members] == [(SUB, b"\x00\x01")]
        assert commit(c, group, 1, me) == ErrorCode.NONE
        c.call(ApiKey.LEAVE_GROUP, 4, {"group_id": group, "members": [{"member_id": me}]})
        empty = describe()
        assert (empty.group_state, empty.protocol_type, empty.protocol_data, empty.members) == (
            "Empty",
            "consumer",
            "",
            (),
        )
        listed = {
            g.group_id: (g.protocol_type, g.group_state)
            for g in c.call(ApiKey.LIST_GROUPS, 4, {"states_filter": []}).groups
        }
        assert listed[group] == ("consumer", "Empty")
        fetched = c.call(ApiKey.OFFSET_FETCH, 7, {"group_id": group, "topics": None})
        assert [
            (t.name, [(p.partition_index, p.committed_offset) for p in t.partitions]) for t in fetched.topics
        ] == [(TOPIC, [(0, 1)])]
