"""Random interleavings of clients against the coordinator (hypothesis stateful testing).

Clients behave as real ones do (rejoin on REBALANCE_IN_PROGRESS, reset on UNKNOWN_MEMBER_ID, ...) but at
arbitrary moments, possibly dying silently. After every step the group's invariants must hold and no request
may be answered twice; once the clients stop, every waiting request must get its answer and the group must
end up empty, within the timeouts alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from strom.broker.coordinator.group import GroupConfig, JoinRequest, OffsetCommit, SyncRequest
from strom.broker.coordinator.membership import GroupState, JoinResult, SyncResult
from strom.protocol.error_codes import ErrorCode
from tests.unit.test_group_coordinator_support import Harness, subscription

GROUP = "g"
SUB = subscription("t")
PROTOCOL_SETS = [[("range", SUB)], [("roundrobin", SUB), ("range", SUB)], [("sticky", SUB)]]
SESSION_MS = 6_000
REBALANCE_MS = 10_000


@dataclass
class Client:
    instance: str | None
    member_id: str = ""
    generation: int = -1
    leader: bool = False
    members: list[str] = field(default_factory=list)
    waiting: int = 0  # requests sent and not answered yet
    alive: bool = True


class GroupModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(GroupConfig(initial_rebalance_delay_ms=0))
        self.clients = [Client(None), Client(None), Client("static-a"), Client("static-b")]

    # ---------------------------------------------------------------------------- answers

    def _answer_once(self, client: Client, handle):  # type: ignore[no-untyped-def]
        answered = []

        def answer(result: JoinResult | SyncResult) -> None:
            assert not answered, f"request answered twice: {answered[0]} then {result}"
            answered.append(result)
            client.waiting -= 1
            handle(result)

        client.waiting += 1
        return answer

    def _on_join(self, client: Client, result: JoinResult) -> None:
        if result.error == ErrorCode.MEMBER_ID_REQUIRED:
            client.member_id = result.member_id
        elif result.error == ErrorCode.NONE:
            client.member_id = result.member_id
            client.generation = result.generation_id
            client.leader = result.leader_id == result.member_id
            client.members = [m.member_id for m in result.members]
        elif result.error in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.FENCED_INSTANCE_ID):
            client.member_id, client.generation = "", -1

    def _on_sync(self, client: Client, result: SyncResult) -> None:
        if result.error in (
            ErrorCode.UNKNOWN_MEMBER_ID,
            ErrorCode.FENCED_INSTANCE_ID,
            ErrorCode.ILLEGAL_GENERATION,
        ):
            client.member_id, client.generation = "", -1

    # ---------------------------------------------------------------------------- rules

    @rule(i=st.integers(0, 3), protocols=st.sampled_from(PROTOCOL_SETS))
    def join(self, i: int, protocols: list[tuple[str, bytes]]) -> None:
        c = self.clients[i]
        c.alive = True
        self.h.coordinator.join_group(
            JoinRequest(
                group_id=GROUP,
                member_id=c.member_id,
                group_instance_id=c.instance,
                protocol_type="consumer",
                protocols=protocols,
                session_timeout_ms=SESSION_MS,
                rebalance_timeout_ms=REBALANCE_MS,
                client_id=f"c{i}",
                client_host="/127.0.0.1",
                require_known_member_id=True,
            ),
            self._answer_once(c, lambda r, c=c: self._on_join(c, r)),
        )

    @rule(i=st.integers(0, 3))
    def sync(self, i: int) -> None:
        c = self.clients[i]
        assignments = {m: m.encode() for m in c.members} if c.leader else {}
        self.h.coordinator.sync_group(
            SyncRequest(GROUP, c.generation, c.member_id, c.instance, assignments),
            self._answer_once(c, lambda r, c=c: self._on_sync(c, r)),
        )

    @rule(i=st.integers(0, 3))
    def heartbeat(self, i: int) -> None:
        c = self.clients[i]
        error = self.h.coordinator.heartbeat(GROUP, c.member_id, c.instance, c.generation)
        if error in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.FENCED_INSTANCE_ID, ErrorCode.ILLEGAL_GENERATION):
            c.member_id, c.generation = "", -1

    @rule(i=st.integers(0, 3))
    def commit(self, i: int) -> None:
        c = self.clients[i]
        errors = self.h.coordinator.commit_offsets(
            GROUP, c.generation, c.member_id, c.instance, [OffsetCommit("t", 0, 5)]
        )
        assert set(errors) == {("t", 0)}

    @rule(i=st.integers(0, 3))
    def leave(self, i: int) -> None:
        c = self.clients[i]
        self.h.coordinator.leave_group(GROUP, [(c.member_id, c.instance)])
        c.member_id, c.generation, c.alive = "", -1, False

    @rule(i=st.integers(0, 3))
    def die(self, i: int) -> None:
        self.clients[i].alive = False  # no more requests from it; only timeouts can notice

    @rule(ms=st.sampled_from([0, 100, 2_000, 7_000]))
    def advance(self, ms: int) -> None:
        self.h.advance(ms)

    @precondition(lambda self: self.h.coordinator.group(GROUP) is not None)
    @invariant()
    def group_is_consistent(self) -> None:
        g = self.h.coordinator.group(GROUP)
        assert g is not None
        assert g.leader_id is None or g.leader_id in g.members
        assert bool(g.members) == (g.leader_id is not None)
        for instance, member_id in g.static_members.items():
            assert g.members[member_id].group_instance_id == instance
        assert not set(g.pending_members) & set(g.members)
        assert g.pending_sync <= set(g.members)
        if g.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            assert g.protocol_name is not None and g.members
        if g.state is GroupState.EMPTY:
            assert not g.members and g.protocol_name is None
        if g.state is GroupState.STABLE:
            assert not any(m.awaiting_join for m in g.members.values())

    def teardown(self) -> None:
        # Everyone stops: the timeouts alone must answer every waiting request and empty the group.
        for _ in range(8):
            self.h.advance(REBALANCE_MS)
        assert all(c.waiting == 0 for c in self.clients), [c.waiting for c in self.clients]
        g = self.h.coordinator.group(GROUP)
        assert g is None or (g.state is GroupState.EMPTY and not g.members and not g.pending_members)


TestGroupModel = GroupModel.TestCase
TestGroupModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
