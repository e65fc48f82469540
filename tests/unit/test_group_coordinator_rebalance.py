"""The classic group state machine: joins, syncs, heartbeats, leaves, timeouts and static membership."""

from __future__ import annotations

from strom.broker.coordinator.group import GroupConfig
from strom.protocol.error_codes import ErrorCode
from tests.unit.test_group_coordinator_support import Harness, subscription


def stable_group_of_two(h: Harness) -> tuple[str, str, int]:
    """Two dynamic members, both synced; returns (leader, follower, generation)."""
    a, ja = h.join_new()
    assert ja.result.error == ErrorCode.NONE
    gen1 = ja.result.generation_id
    assert h.sync("g", a, gen1, {a: b"A1"}).result.error == ErrorCode.NONE
    b, jb = h.join_new()
    assert not jb.done  # waits for the existing member to rejoin
    assert h.coordinator.heartbeat("g", a, None, gen1) == ErrorCode.REBALANCE_IN_PROGRESS
    ja2 = h.join("g", a)
    assert ja2.result.error == ErrorCode.NONE and jb.result.error == ErrorCode.NONE
    gen = ja2.result.generation_id
    assert gen == gen1 + 1 == jb.result.generation_id
    leader = ja2.result.leader_id
    follower = b if leader == a else a
    fs = h.sync("g", follower, gen)
    assert not fs.done
    ls = h.sync("g", leader, gen, {leader: b"L", follower: b"F"})
    assert ls.result.assignment == b"L" and fs.result.assignment == b"F"
    assert h.state() == "Stable"
    return leader, follower, gen


def test_dynamic_member_must_obtain_member_id_first() -> None:
    h = Harness()
    first = h.join()
    assert first.result.error == ErrorCode.MEMBER_ID_REQUIRED
    assert first.result.member_id.startswith("client-")
    assert h.state() == "Empty"
    second = h.join("g", first.result.member_id)
    r = second.result
    assert r.error == ErrorCode.NONE and r.generation_id == 1 and r.leader_id == r.member_id
    assert r.protocol_type == "consumer" and r.protocol_name == "range"
    assert [m.member_id for m in r.members] == [r.member_id]
    assert h.state() == "CompletingRebalance"


def test_old_join_version_gets_member_id_without_second_round() -> None:
    h = Harness()
    rec = h.join(require_known=False)
    assert rec.result.error == ErrorCode.NONE and rec.result.member_id


def test_second_member_triggers_rebalance_and_both_get_assignments() -> None:
    h = Harness()
    leader, follower, gen = stable_group_of_two(h)
    assert gen == 2
    assert h.coordinator.heartbeat("g", follower, None, gen) == ErrorCode.NONE
    desc = h.coordinator.describe_group("g")
    assert desc.state == "Stable" and desc.protocol == "range" and desc.protocol_type == "consumer"
    assert {m.member_id: m.assignment for m in desc.members} == {leader: b"L", follower: b"F"}
    assert all(m.client_host == "/127.0.0.1" and m.client_id == "client" for m in desc.members)
    assert all(m.metadata == subscription("t") for m in desc.members)


def test_leader_only_receives_member_list() -> None:
    h = Harness()
    a, _ja = h.join_new()
    h.sync("g", a, 1, {a: b""})
    b, jb = h.join_new()
    ja2 = h.join("g", a)
    leader_result = ja2.result if ja2.result.leader_id == a else jb.result
    follower_result = jb.result if leader_result is ja2.result else ja2.result
    assert {m.member_id for m in leader_result.members} == {a, b}
    assert follower_result.members == ()


def test_initial_rebalance_delay_waits_for_more_members() -> None:
    h = Harness(GroupConfig(initial_rebalance_delay_ms=3000))
    a, ja = h.join_new()
    h.advance(2000)
    b, jb = h.join_new()
    h.advance(1000)  # first delay over, but a member arrived meanwhile: extended by one more delay
    assert not ja.done and not jb.done
    h.advance(3000)
    assert ja.result.error == ErrorCode.NONE and jb.result.error == ErrorCode.NONE
    assert ja.result.generation_id == 1
    assert {m.member_id for m in (ja.result.members or jb.result.members)} == {a, b}


def test_initial_delay_bounded_by_rebalance_timeout() -> None:
    h = Harness(GroupConfig(initial_rebalance_delay_ms=3000))
    _, ja = h.join_new(rebalance_ms=4000)
    h.advance(1000)
    h.join_new(rebalance_ms=4000)
    h.advance(2000)  # 3 s: extension allowed only up to 1 s more
    assert not ja.done
    h.advance(1000)
    assert ja.result.error == ErrorCode.NONE


def test_protocol_chosen_by_votes_among_common_protocols() -> None:
    h = Harness(GroupConfig(initial_rebalance_delay_ms=100))
    sub = subscription("t")
    _, ja = h.join_new(protocols=[("range", sub), ("roundrobin", sub), ("sticky", sub)])
    _, jb = h.join_new(protocols=[("roundrobin", sub), ("range", sub)])
    _, jc = h.join_new(protocols=[("sticky", sub), ("roundrobin", sub), ("range", sub)])
    h.advance(100)  # members arrived during the delay: one more delay
    h.advance(100)
    # common: range, roundrobin. Votes: a->range, b->roundrobin, c->roundrobin.
    assert {r.result.protocol_name for r in (ja, jb, jc)} == {"roundrobin"}


def test_unsupported_protocols_are_inconsistent() -> None:
    h = Harness()
    a, _ja = h.join_new()
    assert h.join(protocols=[("roundrobin", b"x")]).result.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert h.join(protocol_type="connect").result.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert h.join("g2", protocols=[]).result.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert h.join("g3", protocol_type="").result.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert h.coordinator.group("g2") is None  # a refused first join leaves no group behind
    assert h.join("g", a, protocols=[("other", b"")]).result.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL


def test_invalid_group_id_and_session_timeout() -> None:
    h = Harness()
    assert h.join("").result.error == ErrorCode.INVALID_GROUP_ID
    assert h.join(session_ms=10).result.error == ErrorCode.INVALID_SESSION_TIMEOUT
    assert h.join(session_ms=1_800_001).result.error == ErrorCode.INVALID_SESSION_TIMEOUT
    assert h.coordinator.heartbeat("", "m", None, 1) == ErrorCode.INVALID_GROUP_ID
    assert h.sync("", "m", 1).result.error == ErrorCode.INVALID_GROUP_ID
    assert h.coordinator.leave_group("", [("m", None)])[0] == ErrorCode.INVALID_GROUP_ID
    huge = "g" * 40_000  # longer than an int16 string in __consumer_offsets can hold
    assert h.join(huge).result.error == ErrorCode.INVALID_GROUP_ID
    assert h.coordinator.commit_offsets(huge, -1, "", None, []) == {}
    assert h.coordinator.describe_group(huge).error == ErrorCode.INVALID_GROUP_ID
    assert h.coordinator.delete_groups([huge]) == {huge: ErrorCode.INVALID_GROUP_ID}


def test_unknown_member_ids_are_refused() -> None:
    h = Harness()
    assert h.join("nogroup", "made-up").result.error == ErrorCode.UNKNOWN_MEMBER_ID
    h.join_new()
    assert h.join("g", "made-up").result.error == ErrorCode.UNKNOWN_MEMBER_ID
    assert h.sync("g", "made-up", 1).result.error == ErrorCode.UNKNOWN_MEMBER_ID
    assert h.sync("nogroup", "made-up", 1).result.error == ErrorCode.UNKNOWN_MEMBER_ID
    assert h.coordinator.heartbeat("g", "made-up", None, 1) == ErrorCode.UNKNOWN_MEMBER_ID
    assert h.coordinator.heartbeat("nogroup", "made-up", None, 1) == ErrorCode.UNKNOWN_MEMBER_ID


def test_heartbeat_and_sync_fence_stale_generations() -> None:
    h = Harness()
    _leader, follower, gen = stable_group_of_two(h)
    assert h.coordinator.heartbeat("g", follower, None, gen - 1) == ErrorCode.ILLEGAL_GENERATION
    assert h.sync("g", follower, gen - 1).result.error == ErrorCode.ILLEGAL_GENERATION


def test_heartbeat_during_completing_rebalance_is_fine() -> None:
    h = Harness()
    a, ja = h.join_new()
    assert h.state() == "CompletingRebalance"
    assert h.coordinator.heartbeat("g", a, None, ja.result.generation_id) == ErrorCode.NONE


def test_sync_during_preparing_rebalance_asks_to_rejoin() -> None:
    h = Harness()
    _leader, follower, gen = stable_group_of_two(h)
    h.join_new()
    assert h.state() == "PreparingRebalance"
    assert h.sync("g", follower, gen).result.error == ErrorCode.REBALANCE_IN_PROGRESS


def test_new_join_during_completing_rebalance_cancels_pending_syncs() -> None:
    h = Harness()
    a, _ja = h.join_new()
    follower_sync = None
    b, _jb = h.join_new()
    ja2 = h.join("g", a)
    gen = ja2.result.generation_id
    follower = b if ja2.result.leader_id == a else a
    follower_sync = h.sync("g", follower, gen)
    h.join_new()  # a third member arrives before the leader synced
    assert follower_sync.result.error == ErrorCode.REBALANCE_IN_PROGRESS
    assert h.state() == "PreparingRebalance"


def test_follower_rejoin_with_same_metadata_in_stable_returns_current_generation() -> None:
    h = Harness()
    _leader, follower, gen = stable_group_of_two(h)
    r = h.join("g", follower).result
    assert r.error == ErrorCode.NONE and r.generation_id == gen and r.members == ()
    assert h.state() == "Stable"


def test_leader_rejoin_triggers_rebalance() -> None:
    h = Harness()
    leader, _follower, _gen = stable_group_of_two(h)
    rec = h.join("g", leader)
    assert not rec.done and h.state() == "PreparingRebalance"


def test_changed_subscription_triggers_rebalance() -> None:
    h = Harness()
    _leader, follower, _gen = stable_group_of_two(h)
    h.join("g", follower, protocols=[("range", subscription("t", "u"))])
    assert h.state() == "PreparingRebalance"


def test_lost_join_response_in_completing_rebalance_is_repeated() -> None:
    h = Harness()
    a, ja = h.join_new()
    again = h.join("g", a)
    assert again.result.generation_id == ja.result.generation_id
    assert again.result.members == ja.result.members


def test_member_leaving_hands_over_via_rebalance() -> None:
    h = Harness()
    leader, follower, gen = stable_group_of_two(h)
    assert h.coordinator.leave_group("g", [(follower, None)]) == (ErrorCode.NONE, [ErrorCode.NONE])
    assert h.state() == "PreparingRebalance"
    rec = h.join("g", leader)
    r = rec.result
    assert r.generation_id == gen + 1 and [m.member_id for m in r.members] == [leader]
    assert h.coordinator.leave_group("g", [(leader, None)]) == (ErrorCode.NONE, [ErrorCode.NONE])
    assert h.state() == "Empty"


def test_last_member_leaving_empties_group() -> None:
    h = Harness()
    a, _ja = h.join_new()
    h.sync("g", a, 1, {a: b"x"})
    h.coordinator.leave_group("g", [(a, None)])
    assert h.state() == "Empty"
    assert h.coordinator.group("g").generation_id == 2


def test_leave_errors() -> None:
    h = Harness()
    assert h.coordinator.leave_group("nogroup", [("m", None)]) == (
        ErrorCode.NONE,
        [ErrorCode.UNKNOWN_MEMBER_ID],
    )
    pending = h.join().result.member_id
    _a, _ = h.join_new()
    assert h.coordinator.leave_group("g", [("zzz", None), (pending, None)]) == (
        ErrorCode.NONE,
        [ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.NONE],
    )


def test_rebalance_timeout_removes_members_that_do_not_rejoin() -> None:
    h = Harness()
    leader, follower, gen = stable_group_of_two(h)
    h.join_new(rebalance_ms=30_000)  # third member; the others must rejoin within 30 s
    h.join("g", leader)
    for _ in range(5):  # the follower stays alive but never rejoins
        h.advance(5_000)
        assert h.coordinator.heartbeat("g", follower, None, gen) == ErrorCode.REBALANCE_IN_PROGRESS
    h.advance(4_000)
    assert h.state() == "PreparingRebalance"
    h.advance(1_000)
    g = h.coordinator.group("g")
    assert follower not in g.members and leader in g.members
    assert h.state() == "CompletingRebalance"


def test_session_timeout_expires_silent_member() -> None:
    h = Harness()
    leader, follower, gen = stable_group_of_two(h)
    for _ in range(2):
        h.advance(4_000)
        assert h.coordinator.heartbeat("g", leader, None, gen) == ErrorCode.NONE
    h.advance(2_000)  # follower has been silent for its whole 10 s session timeout
    assert follower not in h.coordinator.group("g").members
    assert h.coordinator.heartbeat("g", leader, None, gen) == ErrorCode.REBALANCE_IN_PROGRESS
    assert h.coordinator.heartbeat("g", follower, None, gen) == ErrorCode.UNKNOWN_MEMBER_ID


def test_pending_member_blocks_join_until_it_expires() -> None:
    h = Harness()
    a, _ja = h.join_new()
    h.sync("g", a, 1, {a: b""})
    pending = h.join().result  # MEMBER_ID_REQUIRED, never comes back
    assert pending.error == ErrorCode.MEMBER_ID_REQUIRED
    _b, jb = h.join_new()
    ja2 = h.join("g", a)
    assert not ja2.done and not jb.done  # the pending member might still join
    h.advance(10_000)  # its session timeout
    assert ja2.result.error == ErrorCode.NONE and jb.result.error == ErrorCode.NONE
    assert pending.member_id not in h.coordinator.group("g").members


def test_members_that_never_sync_are_removed() -> None:
    h = Harness()
    a, _ja = h.join_new()
    b, _jb = h.join_new()
    ja2 = h.join("g", a)
    gen = ja2.result.generation_id
    leader = ja2.result.leader_id
    follower = b if leader == a else a
    h.sync("g", leader, gen, {leader: b"L", follower: b"F"})
    assert h.state() == "Stable"
    for _ in range(6):  # both stay alive; the follower never sends SyncGroup
        assert follower in h.coordinator.group("g").members
        h.coordinator.heartbeat("g", leader, None, gen)
        h.coordinator.heartbeat("g", follower, None, gen)
        h.advance(5_000)
    assert follower not in h.coordinator.group("g").members
    assert h.state() == "PreparingRebalance"


def test_duplicate_join_supersedes_the_first() -> None:
    h = Harness()
    leader, _follower, _gen = stable_group_of_two(h)
    first = h.join("g", leader)
    second = h.join("g", leader)
    assert first.result.error == ErrorCode.REBALANCE_IN_PROGRESS
    assert not second.done


def test_group_max_size() -> None:
    h = Harness(GroupConfig(initial_rebalance_delay_ms=0, max_size=1))
    h.join_new()
    assert h.join().result.error == ErrorCode.GROUP_MAX_SIZE_REACHED


def test_static_member_joins_without_member_id_round() -> None:
    h = Harness()
    r = h.join(instance="i-1").result
    assert r.error == ErrorCode.NONE and r.member_id.startswith("i-1-")


def test_static_member_restart_in_stable_group_skips_rebalance() -> None:
    h = Harness()
    a = h.join(instance="i-a").result
    b_rec = h.join(instance="i-b")
    ra = h.join("g", a.member_id, instance="i-a").result
    rb = b_rec.result
    gen = ra.generation_id
    leader = ra.leader_id
    members = {a.member_id: "i-a", rb.member_id: "i-b"}
    h.sync("g", leader, gen, {m: inst.encode() for m, inst in members.items()}, instance=members[leader])
    h.sync(
        "g",
        next(m for m in members if m != leader),
        gen,
        instance=next(v for m, v in members.items() if m != leader),
    )
    assert h.state() == "Stable"
    old_b = rb.member_id
    # i-b restarts: joins with an empty member id and its instance id.
    again = h.join(instance="i-b").result
    assert again.error == ErrorCode.NONE and again.generation_id == gen and again.member_id != old_b
    assert again.leader_id != again.member_id and again.members == ()
    assert h.state() == "Stable"
    assert h.sync("g", again.member_id, gen, instance="i-b").result.assignment == b"i-b"
    # The replaced process is fenced everywhere.
    assert h.coordinator.heartbeat("g", old_b, "i-b", gen) == ErrorCode.FENCED_INSTANCE_ID
    assert h.sync("g", old_b, gen, instance="i-b").result.error == ErrorCode.FENCED_INSTANCE_ID
    assert h.join("g", old_b, instance="i-b").result.error == ErrorCode.FENCED_INSTANCE_ID
    errs = h.coordinator.commit_offsets("g", gen, old_b, "i-b", [])
    assert errs == {}
    assert h.coordinator.leave_group("g", [(old_b, "i-b")]) == (
        ErrorCode.NONE,
        [ErrorCode.FENCED_INSTANCE_ID],
    )


def test_static_member_replacement_fences_waiting_join() -> None:
    h = Harness()
    a = h.join(instance="i-a").result
    h.sync("g", a.member_id, a.generation_id, {a.member_id: b""}, instance="i-a")
    b_join = h.join(instance="i-b")  # rebalance: waits for i-a
    assert h.join("g", a.member_id, instance="i-a").result.error == ErrorCode.NONE
    b = b_join.result
    gen = b.generation_id
    for m, inst in ((a.member_id, "i-a"), (b.member_id, "i-b")):
        h.sync("g", m, gen, {a.member_id: b"", b.member_id: b""}, instance=inst)
    assert h.state() == "Stable"
    waiting = h.join("g", a.member_id, instance="i-a", protocols=[("range", subscription("t", "u"))])
    assert not waiting.done and h.state() == "PreparingRebalance"
    replacement = h.join(instance="i-a")  # a second process with the same instance id
    assert waiting.result.error == ErrorCode.FENCED_INSTANCE_ID
    assert not replacement.done
    h.join("g", b.member_id, instance="i-b")
    assert replacement.result.error == ErrorCode.NONE and replacement.result.generation_id == gen + 1


def test_static_member_not_rejoining_stays_through_rebalance() -> None:
    h = Harness()
    a = h.join(instance="i-a").result
    h.sync("g", a.member_id, 1, {a.member_id: b""}, instance="i-a")
    d, jd = h.join_new()
    for _ in range(6):  # i-a stays alive but never rejoins within the rebalance timeout
        assert h.coordinator.heartbeat("g", a.member_id, "i-a", 1) == ErrorCode.REBALANCE_IN_PROGRESS
        h.advance(5_000)
    assert jd.result.error == ErrorCode.NONE
    assert a.member_id in h.coordinator.group("g").members
    assert jd.result.leader_id == d


def test_static_member_leave_by_instance_id() -> None:
    h = Harness()
    a = h.join(instance="i-a").result
    assert h.coordinator.leave_group("g", [("", "i-a")]) == (ErrorCode.NONE, [ErrorCode.NONE])
    assert a.member_id not in h.coordinator.group("g").members
    assert h.coordinator.leave_group("g", [("", "i-zzz")]) == (ErrorCode.NONE, [ErrorCode.UNKNOWN_MEMBER_ID])


def test_static_member_with_unknown_instance_and_member_id() -> None:
    h = Harness()
    a = h.join(instance="i-a").result
    assert h.join("g", a.member_id, instance="i-other").result.error == ErrorCode.UNKNOWN_MEMBER_ID
    pending = h.join().result.member_id  # a dynamic id handed out with MEMBER_ID_REQUIRED...
    assert (
        h.join("g", pending, instance="i-a").result.error == ErrorCode.FENCED_INSTANCE_ID
    )  # ...is not i-a's
    assert h.join("g", pending, instance="i-new").result.error == ErrorCode.UNKNOWN_MEMBER_ID
    assert h.coordinator.group("g").static_members == {"i-a": a.member_id}


def test_shutdown_answers_waiting_requests() -> None:
    h = Harness()
    leader, _follower, _gen = stable_group_of_two(h)
    waiting = h.join("g", leader)
    h.coordinator.shutdown()
    assert waiting.result.error == ErrorCode.NOT_COORDINATOR
