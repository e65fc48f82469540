"""Committed offsets: validation, persistence across restarts, retention, and the admin APIs over groups."""

from __future__ import annotations

from strom.broker.coordinator.group import GroupConfig, OffsetCommit
from strom.protocol.error_codes import ErrorCode
from tests.unit.test_group_coordinator_rebalance import stable_group_of_two
from tests.unit.test_group_coordinator_support import Harness, MemoryOffsetsTopic, subscription

DAY = 24 * 3600 * 1000


def commit(h: Harness, group: str, gen: int, member: str, *offsets: tuple[str, int, int], **kw) -> dict:  # type: ignore[no-untyped-def]
    return h.coordinator.commit_offsets(
        group, gen, member, kw.pop("instance", None), [OffsetCommit(t, p, o, **kw) for t, p, o in offsets]
    )


def fetched(h: Harness, group: str, partitions=None) -> dict:  # type: ignore[no-untyped-def]
    return {(t, p): (v.offset if v else -1) for t, p, v in h.coordinator.fetch_offsets(group, partitions)}


def test_member_commit_and_fetch() -> None:
    h = Harness()
    leader, _follower, gen = stable_group_of_two(h)
    assert commit(h, "g", gen, leader, ("t", 0, 10), ("t", 1, 20), metadata="m", leader_epoch=3) == {
        ("t", 0): ErrorCode.NONE,
        ("t", 1): ErrorCode.NONE,
    }
    got = h.coordinator.fetch_offsets("g", [("t", 0), ("t", 2)])
    assert got[0][2].offset == 10 and got[0][2].metadata == "m" and got[0][2].leader_epoch == 3
    assert got[1][2] is None
    assert fetched(h, "g") == {("t", 0): 10, ("t", 1): 20}
    assert fetched(h, "unknown-group", [("t", 0)]) == {("t", 0): -1}
    assert fetched(h, "unknown-group") == {}


def test_commit_fencing() -> None:
    h = Harness()
    leader, _follower, gen = stable_group_of_two(h)
    assert commit(h, "g", gen - 1, leader, ("t", 0, 1)) == {("t", 0): ErrorCode.ILLEGAL_GENERATION}
    assert commit(h, "g", gen, "stranger", ("t", 0, 1)) == {("t", 0): ErrorCode.UNKNOWN_MEMBER_ID}
    assert commit(h, "g", -1, "", ("t", 0, 1)) == {("t", 0): ErrorCode.UNKNOWN_MEMBER_ID}
    assert commit(h, "nogroup", 3, "m", ("t", 0, 1)) == {("t", 0): ErrorCode.ILLEGAL_GENERATION}
    assert commit(h, "x" * 40_000, -1, "", ("t", 0, 1)) == {("t", 0): ErrorCode.INVALID_GROUP_ID}
    assert fetched(h, "g") == {}


def test_commit_allowed_while_preparing_but_not_while_completing_rebalance() -> None:
    h = Harness()
    leader, follower, gen = stable_group_of_two(h)
    h.join_new()  # third member: PreparingRebalance, old generation still valid for commits
    assert commit(h, "g", gen, follower, ("t", 0, 5)) == {("t", 0): ErrorCode.NONE}
    h.join("g", leader)
    h.join("g", follower)
    assert h.state() == "CompletingRebalance"
    assert commit(h, "g", gen + 1, follower, ("t", 0, 6)) == {("t", 0): ErrorCode.REBALANCE_IN_PROGRESS}
    assert fetched(h, "g") == {("t", 0): 5}


def test_standalone_consumer_commits_create_simple_group() -> None:
    h = Harness()
    assert commit(h, "simple", -1, "", ("t", 0, 7)) == {("t", 0): ErrorCode.NONE}
    assert h.state("simple") == "Empty"
    assert commit(h, "simple", -1, "", ("t", 0, 8)) == {("t", 0): ErrorCode.NONE}
    assert fetched(h, "simple") == {("t", 0): 8}
    overview = {g.group_id: g for g in h.coordinator.list_groups()}
    assert overview["simple"].protocol_type == "" and overview["simple"].state == "Empty"


def test_metadata_too_large_is_refused_per_partition() -> None:
    h = Harness(GroupConfig(initial_rebalance_delay_ms=0, offset_metadata_max_bytes=10))
    got = h.coordinator.commit_offsets(
        "s",
        -1,
        "",
        None,
        [OffsetCommit("t", 0, 1, metadata="x" * 11), OffsetCommit("t", 1, 2, metadata=None)],
    )
    assert got == {("t", 0): ErrorCode.OFFSET_METADATA_TOO_LARGE, ("t", 1): ErrorCode.NONE}
    assert fetched(h, "s") == {("t", 1): 2}
    assert h.coordinator.fetch_offsets("s", [("t", 1)])[0][2].metadata == ""


def test_storage_failure_is_reported_and_nothing_changes() -> None:
    h = Harness()
    commit(h, "s", -1, "", ("t", 0, 1))
    h.storage.fail = True
    assert commit(h, "s", -1, "", ("t", 0, 2)) == {("t", 0): ErrorCode.COORDINATOR_NOT_AVAILABLE}
    h.storage.fail = False
    h.storage.max_batch_bytes = 50
    assert (
        commit(h, "s", -1, "", *[("t", p, 3) for p in range(10)])[("t", 0)]
        == ErrorCode.INVALID_COMMIT_OFFSET_SIZE
    )
    assert fetched(h, "s") == {("t", 0): 1}


def test_offsets_and_groups_survive_restart() -> None:
    h = Harness()
    leader, follower, gen = stable_group_of_two(h)
    commit(h, "g", gen, leader, ("t", 0, 10), metadata="meta")
    commit(h, "g", gen, follower, ("t", 1, 11))
    commit(h, "s", -1, "", ("u", 0, 5))
    h2 = h.restart()
    assert fetched(h2, "g") == {("t", 0): 10, ("t", 1): 11}
    assert h2.coordinator.fetch_offsets("g", [("t", 0)])[0][2].metadata == "meta"
    assert fetched(h2, "s") == {("u", 0): 5}
    # The group comes back Stable with its members, so connected consumers carry on heartbeating.
    assert h2.state("g") == "Stable"
    assert h2.coordinator.heartbeat("g", follower, None, gen) == ErrorCode.NONE
    desc = h2.coordinator.describe_group("g")
    assert {m.member_id: m.assignment for m in desc.members} == {leader: b"L", follower: b"F"}
    assert desc.protocol == "range"
    # ...and members that do not come back expire by their session timeout.
    h2.advance(10_000)
    assert h2.state("g") == "Empty"


def test_empty_group_generation_survives_restart() -> None:
    h = Harness()
    a, _ja = h.join_new()
    h.sync("g", a, 1, {a: b"x"})
    h.coordinator.leave_group("g", [(a, None)])
    h2 = h.restart()
    g = h2.coordinator.group("g")
    assert (
        g is not None and g.state.value == "Empty" and g.generation_id == 2 and g.protocol_type == "consumer"
    )


def test_deleted_group_stays_deleted_after_restart() -> None:
    h = Harness()
    commit(h, "s", -1, "", ("t", 0, 1))
    assert h.coordinator.delete_groups(["s"]) == {"s": ErrorCode.NONE}
    h2 = h.restart()
    assert h2.coordinator.group("s") is None and fetched(h2, "s") == {}


def test_undecodable_records_are_skipped_on_load() -> None:
    storage = MemoryOffsetsTopic(num_partitions=1)
    h = Harness(storage=storage)
    commit(h, "s", -1, "", ("t", 0, 1))
    storage.partitions[0].insert(0, (b"\x00\x09garbage", b"x"))
    storage.partitions[0].append((b"\x00\x01\x00\x01s\x00\x01t\x00\x00\x00\x01", b"\x00\x63"))
    h2 = h.restart()
    assert fetched(h2, "s") == {("t", 0): 1}


def test_expired_offsets_of_empty_group_are_removed_with_the_group() -> None:
    h = Harness(
        GroupConfig(
            initial_rebalance_delay_ms=0, offsets_retention_ms=DAY, offsets_retention_check_interval_ms=60_000
        )
    )
    a, _ja = h.join_new()
    h.sync("g", a, 1, {a: b""})
    commit(h, "g", 1, a, ("t", 0, 1))
    h.advance(10_000)  # the member's session expires: the group is Empty from now on
    assert h.state("g") == "Empty"
    h.advance(DAY - 60_000)  # retention counts from when the group became empty, not from the commit
    assert fetched(h, "g") == {("t", 0): 1}
    h.advance(60_000)
    assert fetched(h, "g") == {}
    assert h.coordinator.group("g") is None
    records_before = h.storage.record_count()
    h2 = h.restart()
    assert h2.coordinator.group("g") is None
    assert h.storage.record_count() == records_before


def test_simple_group_offsets_expire_from_last_commit() -> None:
    h = Harness(
        GroupConfig(
            initial_rebalance_delay_ms=0, offsets_retention_ms=DAY, offsets_retention_check_interval_ms=60_000
        )
    )
    commit(h, "s", -1, "", ("t", 0, 1), ("t", 1, 1))
    h.advance(DAY // 2)
    commit(h, "s", -1, "", ("t", 1, 2))
    h.advance(DAY // 2 + 60_000)
    assert fetched(h, "s") == {("t", 1): 2}
    h.advance(DAY)
    assert h.coordinator.group("s") is None


def test_stable_group_keeps_subscribed_offsets_and_expires_others() -> None:
    h = Harness(
        GroupConfig(
            initial_rebalance_delay_ms=0,
            offsets_retention_ms=DAY,
            offsets_retention_check_interval_ms=60_000,
            max_session_timeout_ms=10 * DAY,
        )
    )
    a, _ja = h.join_new(session_ms=3 * DAY)
    h.sync("g", a, 1, {a: b""})
    commit(h, "g", 1, a, ("t", 0, 1), ("old", 0, 1))
    h.advance(DAY + 60_000)
    assert fetched(h, "g") == {("t", 0): 1}


def test_explicit_retention_time_from_old_clients() -> None:
    h = Harness(GroupConfig(initial_rebalance_delay_ms=0, offsets_retention_check_interval_ms=1000))
    h.coordinator.commit_offsets("s", -1, "", None, [OffsetCommit("t", 0, 1)], retention_ms=5000)
    h.advance(4000)
    assert fetched(h, "s") == {("t", 0): 1}
    h.advance(1000)
    assert fetched(h, "s") == {}


def test_describe_and_list_groups() -> None:
    h = Harness()
    _leader, _follower, _gen = stable_group_of_two(h)
    commit(h, "s", -1, "", ("t", 0, 1))
    h.join_new("other")
    assert h.state("other") == "CompletingRebalance"
    listed = {(g.group_id, g.protocol_type, g.state) for g in h.coordinator.list_groups()}
    assert listed == {
        ("g", "consumer", "Stable"),
        ("s", "", "Empty"),
        ("other", "consumer", "CompletingRebalance"),
    }
    assert {g.group_id for g in h.coordinator.list_groups(["stable", "Empty"])} == {"g", "s"}
    other = h.coordinator.describe_group("other")
    assert (
        other.protocol == "" and other.members[0].metadata == b"" and other.members[0].client_id == "client"
    )
    missing = h.coordinator.describe_group("missing")
    assert (missing.error, missing.state, missing.members) == (ErrorCode.NONE, "Dead", ())


def test_delete_groups() -> None:
    h = Harness()
    stable_group_of_two(h)
    commit(h, "s", -1, "", ("t", 0, 1))
    assert h.coordinator.delete_groups(["g", "s", "missing"]) == {
        "g": ErrorCode.NON_EMPTY_GROUP,
        "s": ErrorCode.NONE,
        "missing": ErrorCode.GROUP_ID_NOT_FOUND,
    }
    assert fetched(h, "s") == {} and h.coordinator.group("s") is None
    assert h.coordinator.group("g") is not None


def test_offset_delete_only_for_unsubscribed_topics() -> None:
    h = Harness()
    leader, _follower, gen = stable_group_of_two(h)  # subscribed to "t"
    commit(h, "g", gen, leader, ("t", 0, 1), ("gone", 0, 1))
    err, per = h.coordinator.delete_offsets("g", [("t", 0), ("gone", 0), ("never", 3)])
    assert err == ErrorCode.NONE
    assert per == {
        ("t", 0): ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC,
        ("gone", 0): ErrorCode.NONE,
        ("never", 3): ErrorCode.NONE,
    }
    assert fetched(h, "g") == {("t", 0): 1}
    assert h.restart().coordinator.fetch_offsets("g", [("gone", 0)])[0][2] is None


def test_offset_delete_on_empty_group_and_errors() -> None:
    h = Harness()
    commit(h, "s", -1, "", ("t", 0, 1))
    assert h.coordinator.delete_offsets("s", [("t", 0)]) == (ErrorCode.NONE, {("t", 0): ErrorCode.NONE})
    assert fetched(h, "s") == {}
    assert h.coordinator.delete_offsets("missing", [("t", 0)]) == (ErrorCode.GROUP_ID_NOT_FOUND, {})
    assert h.coordinator.delete_offsets("", [("t", 0)]) == (ErrorCode.INVALID_GROUP_ID, {})
    h.join_new("connect-group", protocol_type="connect", protocols=[("default", b"")])
    assert h.coordinator.delete_offsets("connect-group", [("t", 0)]) == (ErrorCode.NON_EMPTY_GROUP, {})


def test_deleted_topics_lose_their_offsets() -> None:
    h = Harness()
    commit(h, "s", -1, "", ("t", 0, 1), ("t", 1, 1), ("u", 0, 1))
    h.coordinator.on_topic_deleted("t")
    assert fetched(h, "s") == {("u", 0): 1}
    assert fetched(h.restart(), "s") == {("u", 0): 1}


def test_subscription_parsing_feeds_offset_delete() -> None:
    h = Harness()
    _, _j = h.join_new(protocols=[("range", subscription("a", "b", version=1) + b"\x00\x00\x00\x00")])
    g = h.coordinator.group("g")
    assert g.subscribed == frozenset({"a", "b"})
    _, _j2 = h.join_new("opaque", protocols=[("range", b"\x01")])
    assert h.coordinator.group("opaque").subscribed is None
    assert h.coordinator.delete_offsets("opaque", [("x", 0)]) == (
        ErrorCode.NONE,
        {("x", 0): ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC},
    )
