"""GroupCoordinator: the classic consumer-group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and the
offsets API, as one state machine independent of the wire.

Behaviour follows Apache Kafka's classic coordinator so that unmodified clients rebalance the way they do
against Kafka: KIP-394 member ids (MEMBER_ID_REQUIRED), KIP-345 static membership (replacement and
FENCED_INSTANCE_ID), the initial-rebalance delay, rebalance and session timeouts, generation fencing and the
pending-sync timeout. Requests that must wait (JoinGroup until the join phase completes, SyncGroup until the
leader's assignment arrives) take a callback that is invoked exactly once; the API layer makes it a future.

Time is an injected clock in milliseconds and nothing here sleeps or schedules: the server calls `tick()`
periodically and every deadline (session, pending member, join phase, pending sync, offset retention) is
evaluated there, so tests drive time explicitly.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from strom.broker.config import BrokerConfig
from strom.broker.coordinator.membership import (
    CONSUMER_PROTOCOL_TYPE,
    Group,
    GroupState,
    JoinCallback,
    JoinResult,
    Member,
    SyncCallback,
    SyncResult,
)
from strom.broker.coordinator.offsets import (
    LoadedGroup,
    OffsetLog,
    OffsetsRecordTooLargeError,
    OffsetsStorageError,
)
from strom.broker.coordinator.schema import GroupValue, MemberValue, OffsetValue, SchemaError
from strom.protocol.error_codes import ErrorCode

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


# Group ids are stored as int16-length strings in `__consumer_offsets` (flexible requests could carry longer).
MAX_GROUP_ID_BYTES = 0x7FFF


def is_valid_group_id(group_id: str, allow_empty: bool = False) -> bool:
    """Kafka's rule: the offsets and admin APIs accept "" (legacy), group membership APIs do not."""
    return (allow_empty or bool(group_id)) and len(group_id.encode()) <= MAX_GROUP_ID_BYTES


@dataclass(frozen=True)
class GroupConfig:
    """Broker settings of the coordinator, with Kafka's names and defaults."""

    min_session_timeout_ms: int = 6000  # group.min.session.timeout.ms
    max_session_timeout_ms: int = 1_800_000  # group.max.session.timeout.ms
    initial_rebalance_delay_ms: int = 3000  # group.initial.rebalance.delay.ms
    max_size: int = 2**31 - 1  # group.max.size
    offset_metadata_max_bytes: int = 4096  # offset.metadata.max.bytes
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000  # offsets.retention.minutes
    offsets_retention_check_interval_ms: int = 600_000  # offsets.retention.check.interval.ms
    # Kafka's fixed NewMemberJoinTimeoutMs: a member that joined in this rebalance but never completes it
    # (its client gave up on the JoinGroup) is dropped after this long, not kept for the whole rebalance.
    new_member_join_timeout_ms: int = 300_000

    @classmethod
    def from_broker_config(cls, cfg: BrokerConfig) -> GroupConfig:
        """The coordinator's settings from the broker configuration (Kafka's keys)."""
        return cls(
            min_session_timeout_ms=cfg.int("group.min.session.timeout.ms"),
            max_session_timeout_ms=cfg.int("group.max.session.timeout.ms"),
            initial_rebalance_delay_ms=cfg.int("group.initial.rebalance.delay.ms"),
            max_size=cfg.int("group.max.size"),
            offset_metadata_max_bytes=cfg.int("offset.metadata.max.bytes"),
            offsets_retention_ms=cfg.int("offsets.retention.minutes") * 60_000,
            offsets_retention_check_interval_ms=cfg.int("offsets.retention.check.interval.ms"),
        )


@dataclass(frozen=True)
class JoinRequest:
    """A JoinGroup request in coordinator terms. `rebalance_timeout_ms` equals the session timeout for v0."""

    group_id: str
    member_id: str
    group_instance_id: str | None
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    client_id: str
    client_host: str
    # KIP-394: v4+ dynamic members must first obtain a member id (MEMBER_ID_REQUIRED).
    require_known_member_id: bool


@dataclass(frozen=True)
class SyncRequest:
    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None
    assignments: dict[str, bytes]
    protocol_type: str | None = None  # v5+
    protocol_name: str | None = None  # v5+


@dataclass(frozen=True)
class OffsetCommit:
    """One partition of an OffsetCommit request. `metadata` None is stored as the empty string."""

    topic: str
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str | None = ""


@dataclass(frozen=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True)
class GroupDescription:
    """DescribeGroups data. Metadata and assignments are given only for Stable groups, as in Kafka."""

    error: ErrorCode
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: tuple[MemberDescription, ...]


@dataclass(frozen=True)
class GroupOverview:
    group_id: str
    protocol_type: str
    state: str


class GroupCoordinator:
    """All classic groups of this broker, their members and their committed offsets.

    Invariants: each group is in exactly one `GroupState`; a member receives at most one answer per JoinGroup
    or SyncGroup; offsets are changed in memory only after their records were appended to
    `__consumer_offsets`; a group with neither members nor offsets is eventually removed (Dead). Survives:
    clients that vanish mid-rebalance (rebalance, pending-sync and session deadlines remove them), duplicate
    instances of a static member (the older one is fenced), and broker restarts (state reloaded from the log).
    Not thread-safe: every call happens on the broker's event loop.
    """

    def __init__(
        self,
        log: OffsetLog,
        config: GroupConfig | None = None,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._log = log
        self.config = config or GroupConfig()
        self._clock = clock
        self._groups: dict[str, Group] = {}
        self._next_retention_check_ms = clock() + self.config.offsets_retention_check_interval_ms

    # ================================================================================== start/stop

    def load(self) -> None:
        """Rebuild groups and offsets from `__consumer_offsets` (call once, before serving requests)."""
        now = self._clock()
        for group_id, loaded in self._log.load().items():
            self._groups[group_id] = self._restore(group_id, loaded, now)
        if self._log.skipped_records:
            log.warning("skipped %d undecodable records in __consumer_offsets", self._log.skipped_records)

    def _restore(self, group_id: str, loaded: LoadedGroup, now: int) -> Group:
        """A stored group with members comes back Stable, each member with a fresh session timer; the
        others come back Empty (groups known only by their offsets are simple groups)."""
        group = Group(group_id, state_timestamp_ms=now, offsets=loaded.offsets)
        value = loaded.metadata
        if value is None:
            return group
        group.protocol_type = value.protocol_type or None
        group.generation_id = value.generation
        if value.current_state_timestamp >= 0:
            group.state_timestamp_ms = value.current_state_timestamp
        if not value.members or not value.protocol:
            return group
        group.protocol_name = value.protocol
        for mv in value.members:
            member = Member(
                member_id=mv.member_id,
                group_instance_id=mv.group_instance_id,
                client_id=mv.client_id,
                client_host=mv.client_host,
                rebalance_timeout_ms=mv.rebalance_timeout_ms,
                session_timeout_ms=mv.session_timeout_ms,
                protocol_type=value.protocol_type,
                protocols=[(value.protocol, mv.subscription)],
                assignment=mv.assignment,
            )
            group.add(member)
            self._touch(member, member.session_timeout_ms, now)
        if value.leader in group.members:
            group.leader_id = value.leader
        group.state = GroupState.STABLE
        group.subscribed = group.compute_subscribed_topics()
        return group

    def shutdown(self) -> None:
        """Answer every waiting JoinGroup/SyncGroup with NOT_COORDINATOR so clients move on."""
        for group in self._groups.values():
            for member in group.members.values():
                member.complete_join(JoinResult(ErrorCode.NOT_COORDINATOR, member.member_id))
                member.complete_sync(SyncResult(ErrorCode.NOT_COORDINATOR))

    # ================================================================================== queries

    def group(self, group_id: str) -> Group | None:
        return self._groups.get(group_id)

    # ================================================================================== JoinGroup

    def join_group(self, req: JoinRequest, respond: JoinCallback) -> None:
        """Handle JoinGroup; `respond` is called now or when the join phase completes."""
        cfg = self.config
        if not is_valid_group_id(req.group_id):
            respond(JoinResult(ErrorCode.INVALID_GROUP_ID, req.member_id))
            return
        if not cfg.min_session_timeout_ms <= req.session_timeout_ms <= cfg.max_session_timeout_ms:
            respond(JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, req.member_id))
            return
        unknown = req.member_id == ""
        group = self._groups.get(req.group_id)
        if group is None:
            if not unknown:
                respond(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, req.member_id))
                return
            if not req.protocol_type or not req.protocols:
                respond(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, ""))
                return
            group = Group(req.group_id, state_timestamp_ms=self._clock())
            self._groups[req.group_id] = group
        if unknown and len(group.members) + len(group.pending_members) >= cfg.max_size:
            respond(JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, ""))
            return
        if unknown:
            self._join_unknown_member(group, req, respond)
        else:
            self._join_known_member(group, req, respond)
        self._try_complete_join(group)

    def _join_unknown_member(self, group: Group, req: JoinRequest, respond: JoinCallback) -> None:
        if group.is_(GroupState.DEAD):
            respond(JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, ""))
            return
        if not group.supports_protocols(req.protocol_type, [name for name, _ in req.protocols]):
            respond(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, ""))
            return
        new_id = f"{req.group_instance_id or req.client_id}-{uuid.uuid4()}"
        old_id = group.static_member_id(req.group_instance_id)
        if old_id is not None:
            self._replace_static_member(group, old_id, new_id, req, respond)
        elif req.require_known_member_id and req.group_instance_id is None:
            group.pending_members[new_id] = self._clock() + req.session_timeout_ms
            respond(JoinResult(ErrorCode.MEMBER_ID_REQUIRED, new_id))
        else:
            self._add_member_and_rebalance(group, new_id, req, respond)

    def _join_known_member(self, group: Group, req: JoinRequest, respond: JoinCallback) -> None:
        member_id = req.member_id
        if group.is_(GroupState.DEAD):
            respond(JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id))
        elif not group.supports_protocols(req.protocol_type, [name for name, _ in req.protocols]):
            respond(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id))
        elif member_id in group.pending_members and req.group_instance_id is None:
            # (a pending id is dynamic: presented with an instance id it is judged by the static rules)
            self._add_member_and_rebalance(group, member_id, req, respond)
        elif group.is_static_member_fenced(member_id, req.group_instance_id):
            respond(JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id))
        elif not group.has(member_id) or (
            req.group_instance_id is not None and group.static_member_id(req.group_instance_id) is None
        ):
            respond(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id))
        else:
            member = group.members[member_id]
            state = group.state
            if state is GroupState.PREPARING_REBALANCE:
                self._update_member_and_rebalance(group, member, req, respond)
            elif state is GroupState.COMPLETING_REBALANCE:
                if member.matches(req.protocols):
                    # The member lost our JoinGroup response: answer again with the current generation.
                    respond(self._join_result(group, member))
                else:
                    self._update_member_and_rebalance(group, member, req, respond)
            elif state is GroupState.STABLE:
                if group.leader_id == member_id or not member.matches(req.protocols):
                    # A leader's rejoin asks for a new assignment (e.g. topic metadata changed).
                    self._update_member_and_rebalance(group, member, req, respond)
                else:
                    respond(self._join_result(group, member, with_members=False))
            else:
                respond(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id))

    def _join_result(self, group: Group, member: Member, with_members: bool = True) -> JoinResult:
        is_leader = group.leader_id == member.member_id
        return JoinResult(
            error=ErrorCode.NONE,
            member_id=member.member_id,
            generation_id=group.generation_id,
            protocol_type=group.protocol_type,
            protocol_name=group.protocol_name,
            leader_id=group.leader_id or "",
            members=group.joined_members() if with_members and is_leader else (),
        )

    def _add_member_and_rebalance(
        self, group: Group, member_id: str, req: JoinRequest, respond: JoinCallback
    ) -> None:
        member = _member_from_join(member_id, req, respond, is_new=True)
        if group.is_(GroupState.PREPARING_REBALANCE) and group.generation_id == 0:
            group.new_member_added = True
        group.pending_members.pop(member_id, None)
        group.add(member)
        self._touch(member, self.config.new_member_join_timeout_ms)
        self._maybe_prepare_rebalance(group)

    def _update_member_and_rebalance(
        self, group: Group, member: Member, req: JoinRequest, respond: JoinCallback
    ) -> None:
        member.protocols = list(req.protocols)
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.session_timeout_ms = req.session_timeout_ms
        # A second JoinGroup from the same member supersedes the first (its client retried elsewhere).
        member.complete_join(JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member.member_id))
        member.join_callback = respond
        self._maybe_prepare_rebalance(group)

    def _replace_static_member(
        self, group: Group, old_id: str, new_id: str, req: JoinRequest, respond: JoinCallback
    ) -> None:
        """KIP-345: a known group.instance.id joined without a member id; it takes over the old member."""
        old = group.members[old_id]
        previous_leader = group.leader_id
        old.complete_join(JoinResult(ErrorCode.FENCED_INSTANCE_ID, old_id))
        old.complete_sync(SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        member = _member_from_join(new_id, req, respond, assignment=old.assignment)
        group.members = {
            (new_id if mid == old_id else mid): (member if mid == old_id else m)
            for mid, m in group.members.items()
        }
        assert req.group_instance_id is not None
        group.static_members[req.group_instance_id] = new_id
        if group.leader_id == old_id:
            group.leader_id = new_id
        if old_id in group.pending_sync:
            group.pending_sync.discard(old_id)
            group.pending_sync.add(new_id)
        self._touch(member, member.session_timeout_ms)

        if group.is_(GroupState.STABLE):
            if group.select_protocol() != group.protocol_name:
                self._prepare_rebalance(group)
                return
            try:
                self._store_group(group)
            except OffsetsStorageError:
                log.warning("group %s: could not persist replaced static member", group.group_id)
            # The old leader id is returned on purpose: the new member id never matches it, so no client
            # believes it is the leader and computes an assignment the Stable group would not distribute.
            member.complete_join(
                JoinResult(
                    error=ErrorCode.NONE,
                    member_id=new_id,
                    generation_id=group.generation_id,
                    protocol_type=group.protocol_type,
                    protocol_name=group.protocol_name,
                    leader_id=previous_leader or "",
                )
            )
        elif group.is_(GroupState.COMPLETING_REBALANCE):
            # The leader may already hold the old member id: rebalance so nobody is left unassigned.
            self._prepare_rebalance(group)

    # ================================================================================== rebalance

    def _maybe_prepare_rebalance(self, group: Group) -> None:
        if group.can_rebalance():
            self._prepare_rebalance(group)

    def _prepare_rebalance(self, group: Group) -> None:
        now = self._clock()
        if group.is_(GroupState.COMPLETING_REBALANCE):
            self._propagate_assignment_error(group, ErrorCode.REBALANCE_IN_PROGRESS)
        group.pending_sync.clear()
        group.pending_sync_deadline_ms = None
        delay = self.config.initial_rebalance_delay_ms
        if group.is_(GroupState.EMPTY) and delay > 0:
            group.initial_delay_ms = delay
            group.initial_remaining_ms = max(group.rebalance_timeout_ms() - delay, 0)
            group.new_member_added = False
            group.join_deadline_ms = now + delay
        else:
            group.initial_delay_ms = None
            group.join_deadline_ms = now + group.rebalance_timeout_ms()
        group.transition(GroupState.PREPARING_REBALANCE, now)
        log.info("group %s preparing rebalance (generation %d)", group.group_id, group.generation_id)
        self._try_complete_join(group)

    def _try_complete_join(self, group: Group) -> None:
        if (
            group.is_(GroupState.PREPARING_REBALANCE)
            and group.initial_delay_ms is None
            and group.has_all_members_joined()
        ):
            self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        now = self._clock()
        group.join_deadline_ms = None
        group.initial_delay_ms = None
        for member in list(group.members.values()):
            if not member.awaiting_join and member.group_instance_id is None:
                group.remove(member.member_id)
        if not group.elect_joined_leader() and group.members:
            # Only static members that have not rejoined remain: give them another rebalance timeout.
            group.join_deadline_ms = now + group.rebalance_timeout_ms()
            return
        group.generation_id += 1
        if not group.members:
            group.protocol_name = None
            group.leader_id = None
            group.subscribed = None
            group.transition(GroupState.EMPTY, now)
            try:
                self._store_group(group)
            except OffsetsStorageError:
                log.warning("group %s: could not persist the empty generation", group.group_id)
            return
        group.protocol_name = group.select_protocol()
        group.subscribed = group.compute_subscribed_topics()
        group.transition(GroupState.COMPLETING_REBALANCE, now)
        log.info(
            "group %s generation %d: %d members, protocol %s",
            group.group_id,
            group.generation_id,
            len(group.members),
            group.protocol_name,
        )
        for member in list(group.members.values()):
            member.complete_join(self._join_result(group, member))
            member.is_new = False
            self._touch(member, member.session_timeout_ms, now)
        group.pending_sync = set(group.members)
        group.pending_sync_deadline_ms = now + group.rebalance_timeout_ms()

    def _propagate_assignment_error(self, group: Group, error: ErrorCode) -> None:
        for member in group.members.values():
            member.assignment = b""
            if member.complete_sync(SyncResult(error)):
                self._touch(member, member.session_timeout_ms)

    # ================================================================================== SyncGroup

    def sync_group(self, req: SyncRequest, respond: SyncCallback) -> None:
        """Handle SyncGroup; followers are answered when the leader's assignment arrives."""
        log.debug("group %s: SyncGroup from %s generation %d", req.group_id, req.member_id, req.generation_id)
        if not is_valid_group_id(req.group_id):
            respond(SyncResult(ErrorCode.INVALID_GROUP_ID))
            return
        group = self._groups.get(req.group_id)
        if group is None:
            respond(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
            return
        if group.is_(GroupState.DEAD):
            respond(SyncResult(ErrorCode.COORDINATOR_NOT_AVAILABLE))
        elif group.is_static_member_fenced(req.member_id, req.group_instance_id):
            respond(SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        elif not group.has(req.member_id):
            respond(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        elif req.generation_id != group.generation_id:
            respond(SyncResult(ErrorCode.ILLEGAL_GENERATION))
        elif (req.protocol_type is not None and req.protocol_type != group.protocol_type) or (
            req.protocol_name is not None
            and group.protocol_name is not None
            and req.protocol_name != group.protocol_name
        ):
            respond(SyncResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
        elif group.is_(GroupState.EMPTY):
            respond(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        elif group.is_(GroupState.PREPARING_REBALANCE):
            respond(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        elif group.is_(GroupState.COMPLETING_REBALANCE):
            member = group.members[req.member_id]
            group.pending_sync.discard(req.member_id)
            member.complete_sync(SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
            member.sync_callback = respond
            if group.leader_id == req.member_id:
                self._apply_leader_assignment(group, req.assignments)
        else:  # Stable: the assignment was already distributed
            member = group.members[req.member_id]
            group.pending_sync.discard(req.member_id)
            respond(self._sync_result(group, ErrorCode.NONE, member.assignment))
            self._touch(member, member.session_timeout_ms)

    def _sync_result(self, group: Group, error: ErrorCode, assignment: bytes = b"") -> SyncResult:
        return SyncResult(error, assignment, group.protocol_type, group.protocol_name)

    def _apply_leader_assignment(self, group: Group, assignments: dict[str, bytes]) -> None:
        # Members the leader left out get an empty (but present) assignment.
        assignment = {mid: assignments.get(mid, b"") for mid in group.members}
        try:
            self._store_group(group, assignment)
        except OffsetsStorageError as exc:
            error = (
                ErrorCode.UNKNOWN_SERVER_ERROR
                if isinstance(exc, OffsetsRecordTooLargeError)
                else ErrorCode.COORDINATOR_NOT_AVAILABLE
            )
            log.warning("group %s: storing the assignment failed: %s", group.group_id, exc)
            self._propagate_assignment_error(group, error)
            self._maybe_prepare_rebalance(group)
            return
        for member in group.members.values():
            member.assignment = assignment[member.member_id]
        group.transition(GroupState.STABLE, self._clock())
        for member in group.members.values():
            if member.complete_sync(self._sync_result(group, ErrorCode.NONE, member.assignment)):
                self._touch(member, member.session_timeout_ms)

    # ================================================================================== Heartbeat, LeaveGroup

    def heartbeat(
        self, group_id: str, member_id: str, group_instance_id: str | None, generation_id: int
    ) -> ErrorCode:
        """Handle Heartbeat; REBALANCE_IN_PROGRESS tells a member of the current generation to rejoin."""
        if not is_valid_group_id(group_id):
            return ErrorCode.INVALID_GROUP_ID
        group = self._groups.get(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if group.is_(GroupState.DEAD):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if group.is_static_member_fenced(member_id, group_instance_id):
            return ErrorCode.FENCED_INSTANCE_ID
        if not group.has(member_id):
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if group.is_(GroupState.EMPTY):
            return ErrorCode.UNKNOWN_MEMBER_ID
        self._touch(group.members[member_id], group.members[member_id].session_timeout_ms)
        if group.is_(GroupState.PREPARING_REBALANCE):
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave_group(
        self, group_id: str, leaving: Sequence[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        """Handle LeaveGroup of `(member_id, group_instance_id)` pairs: (top-level error, member errors)."""
        if not is_valid_group_id(group_id):
            return ErrorCode.INVALID_GROUP_ID, []
        group = self._groups.get(group_id)
        if group is None:
            return ErrorCode.NONE, [ErrorCode.UNKNOWN_MEMBER_ID for _ in leaving]
        if group.is_(GroupState.DEAD):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, []
        errors = []
        for member_id, instance_id in leaving:
            if member_id and group.is_static_member_fenced(member_id, instance_id):
                errors.append(ErrorCode.FENCED_INSTANCE_ID)
            elif member_id in group.pending_members:
                del group.pending_members[member_id]
                self._try_complete_join(group)
                errors.append(ErrorCode.NONE)
            else:
                target = group.static_member_id(instance_id) or member_id
                if not group.has(target):
                    errors.append(ErrorCode.UNKNOWN_MEMBER_ID)
                else:
                    log.info("group %s: member %s left", group_id, target)
                    self._remove_member_and_update_group(group, group.members[target])
                    errors.append(ErrorCode.NONE)
        return ErrorCode.NONE, errors

    def _remove_member_and_update_group(self, group: Group, member: Member) -> None:
        # A member removed while its JoinGroup or SyncGroup waits is told so; a live client will rejoin.
        member.complete_join(JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, ""))
        member.complete_sync(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        group.remove(member.member_id)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._maybe_prepare_rebalance(group)
        elif group.is_(GroupState.PREPARING_REBALANCE):
            self._try_complete_join(group)

    # ================================================================================== timers

    def _touch(self, member: Member, timeout_ms: int, now: int | None = None) -> None:
        member.latest_heartbeat_ms = self._clock() if now is None else now
        member.heartbeat_deadline_ms = member.latest_heartbeat_ms + timeout_ms

    def _keep_alive(self, member: Member, now: int) -> bool:
        """Whether an expired session is forgiven: members inside a rebalance answer to its deadlines."""
        if member.awaiting_join:
            return (
                not member.is_new or member.latest_heartbeat_ms + self.config.new_member_join_timeout_ms > now
            )
        return member.awaiting_sync

    def tick(self) -> None:
        """Fire every deadline that has passed: sessions, pending members, join and sync phases, retention."""
        now = self._clock()
        for group in list(self._groups.values()):
            self._expire_pending_members(group, now)
            self._expire_sessions(group, now)
            if (
                group.is_(GroupState.PREPARING_REBALANCE)
                and group.join_deadline_ms is not None
                and now >= group.join_deadline_ms
            ):
                self._on_join_deadline(group, now)
            if (
                group.pending_sync
                and group.pending_sync_deadline_ms is not None
                and now >= group.pending_sync_deadline_ms
                and group.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE)
            ):
                log.info(
                    "group %s: removing members that never synced: %s", group.group_id, group.pending_sync
                )
                for member_id in list(group.pending_sync):
                    member = group.members[member_id]
                    member.complete_sync(SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
                    group.remove(member_id)
                group.pending_sync_deadline_ms = None
                self._maybe_prepare_rebalance(group)
        if now >= self._next_retention_check_ms:
            self._next_retention_check_ms = now + self.config.offsets_retention_check_interval_ms
            self.expire_offsets()

    def _expire_pending_members(self, group: Group, now: int) -> None:
        expired = [mid for mid, deadline in group.pending_members.items() if now >= deadline]
        for member_id in expired:
            del group.pending_members[member_id]
        if expired:
            self._try_complete_join(group)

    def _expire_sessions(self, group: Group, now: int) -> None:
        for member in list(group.members.values()):
            # A removal can cascade (the join phase completes and drops others), hence the identity check.
            expired = now >= member.heartbeat_deadline_ms and not self._keep_alive(member, now)
            if expired and group.members.get(member.member_id) is member:
                log.info("group %s: session of member %s expired", group.group_id, member.member_id)
                self._remove_member_and_update_group(group, member)

    def _on_join_deadline(self, group: Group, now: int) -> None:
        if group.initial_delay_ms is not None and group.new_member_added and group.initial_remaining_ms > 0:
            # More members arrived during the initial delay: wait once more, within the rebalance timeout.
            group.new_member_added = False
            delay = min(group.initial_delay_ms, group.initial_remaining_ms)
            group.initial_remaining_ms = max(group.initial_remaining_ms - delay, 0)
            group.join_deadline_ms = now + delay
        else:
            self._complete_join(group)

    # ================================================================================== offsets

    def commit_offsets(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        offsets: Sequence[OffsetCommit],
        retention_ms: int = -1,
    ) -> dict[TopicPartition, ErrorCode]:
        """Handle OffsetCommit; returns an error per partition (the API has no group-level error)."""
        keys = [(o.topic, o.partition) for o in offsets]
        if not is_valid_group_id(group_id, allow_empty=True):
            return {tp: ErrorCode.INVALID_GROUP_ID for tp in keys}
        group = self._groups.get(group_id)
        error = self._validate_commit(group, generation_id, member_id, group_instance_id)
        if error is not ErrorCode.NONE:
            return {tp: error for tp in keys}

        now = self._clock()
        result: dict[TopicPartition, ErrorCode] = {}
        accepted: dict[TopicPartition, OffsetValue] = {}
        for o in offsets:
            metadata = o.metadata or ""
            if len(metadata.encode()) > self.config.offset_metadata_max_bytes:
                result[(o.topic, o.partition)] = ErrorCode.OFFSET_METADATA_TOO_LARGE
                continue
            expire = now + retention_ms if retention_ms >= 0 else None
            accepted[(o.topic, o.partition)] = OffsetValue(o.offset, o.leader_epoch, metadata, now, expire)
        if accepted:
            try:
                self._log.write_offsets(group_id, accepted, now)
            except (OffsetsStorageError, SchemaError) as exc:
                log.warning("group %s: offset commit not stored: %s", group_id, exc)
                error = (
                    ErrorCode.INVALID_COMMIT_OFFSET_SIZE
                    if isinstance(exc, OffsetsRecordTooLargeError | SchemaError)
                    else ErrorCode.COORDINATOR_NOT_AVAILABLE
                )
                return {tp: result.get(tp, error) for tp in keys}
            if group is None:
                group = Group(group_id, state_timestamp_ms=now)
                self._groups[group_id] = group
            group.offsets.update(accepted)
            if group.has(member_id):
                self._touch(group.members[member_id], group.members[member_id].session_timeout_ms, now)
        return {tp: result.get(tp, ErrorCode.NONE) for tp in keys}

    def _validate_commit(
        self, group: Group | None, generation_id: int, member_id: str, group_instance_id: str | None
    ) -> ErrorCode:
        if group is None:
            # Without a group only a standalone (assign-mode) consumer may commit; it creates a simple group.
            return ErrorCode.NONE if generation_id < 0 else ErrorCode.ILLEGAL_GENERATION
        if group.is_(GroupState.DEAD):
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if group.is_static_member_fenced(member_id, group_instance_id):
            return ErrorCode.FENCED_INSTANCE_ID
        if generation_id < 0 and group.is_(GroupState.EMPTY):
            return ErrorCode.NONE
        if not group.has(member_id):
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation_id != group.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if group.is_(GroupState.COMPLETING_REBALANCE):
            # The member has the new generation but not its assignment yet: let it finish the rebalance.
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def fetch_offsets(
        self, group_id: str, partitions: Sequence[TopicPartition] | None
    ) -> list[tuple[str, int, OffsetValue | None]]:
        """Handle OffsetFetch: the committed offset per partition (None = no commit), or all when None."""
        group = self._groups.get(group_id)
        offsets = group.offsets if group is not None else {}
        if partitions is None:
            return [(t, p, v) for (t, p), v in sorted(offsets.items())]
        return [(t, p, offsets.get((t, p))) for t, p in partitions]

    def delete_offsets(
        self, group_id: str, partitions: Sequence[TopicPartition]
    ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
        """Handle OffsetDelete: only offsets of topics the group is not consuming may go."""
        if not is_valid_group_id(group_id):
            return ErrorCode.INVALID_GROUP_ID, {}
        group = self._groups.get(group_id)
        if group is None or group.is_(GroupState.DEAD):
            return ErrorCode.GROUP_ID_NOT_FOUND, {}
        active = not group.is_(GroupState.EMPTY)
        if active and group.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return ErrorCode.NON_EMPTY_GROUP, {}
        result: dict[TopicPartition, ErrorCode] = {}
        doomed = []
        for tp in dict.fromkeys(partitions):  # a partition named twice is answered twice, deleted once
            if active and group.is_subscribed_to(tp[0]):
                result[tp] = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
            else:
                result[tp] = ErrorCode.NONE
                if tp in group.offsets:
                    doomed.append(tp)
        if doomed:
            try:
                self._log.delete_offsets(group_id, doomed, self._clock())
            except OffsetsStorageError:
                return ErrorCode.COORDINATOR_NOT_AVAILABLE, {}
            for tp in doomed:
                del group.offsets[tp]
        return ErrorCode.NONE, result

    def on_topic_deleted(self, topic: str) -> None:
        """Drop the committed offsets of a deleted topic from every group (DeleteTopics), as Kafka does."""
        now = self._clock()
        for group in self._groups.values():
            doomed = [tp for tp in group.offsets if tp[0] == topic]
            if doomed:
                try:
                    self._log.delete_offsets(group.group_id, doomed, now)
                except OffsetsStorageError:
                    log.warning(
                        "group %s: could not delete offsets of deleted topic %s", group.group_id, topic
                    )
                    continue
                for tp in doomed:
                    del group.offsets[tp]

    def expire_offsets(self) -> int:
        """Remove offsets past `offsets.retention.minutes` (KIP-211 rules) and groups left with nothing."""
        now = self._clock()
        retention = self.config.offsets_retention_ms
        removed = 0
        for group in list(self._groups.values()):
            if group.protocol_type is not None and group.is_(GroupState.EMPTY):
                # Counted from when the group became empty: its offsets are unused since then.
                keep: frozenset[str] = frozenset()
                from_state = True
            elif (
                group.protocol_type == CONSUMER_PROTOCOL_TYPE
                and group.subscribed is not None
                and group.is_(GroupState.STABLE)
            ):
                keep, from_state = group.subscribed, False
            elif group.protocol_type is None:
                keep, from_state = frozenset(), False  # standalone consumers: from the last commit
            else:
                continue
            expired = []
            for tp, value in group.offsets.items():
                if tp[0] in keep:
                    continue
                if value.expire_timestamp is not None:
                    due = now >= value.expire_timestamp
                else:
                    base = group.state_timestamp_ms if from_state else value.commit_timestamp
                    due = now - base >= retention
                if due:
                    expired.append(tp)
            try:
                if (
                    group.is_(GroupState.EMPTY)
                    and not group.pending_members
                    and len(expired) == len(group.offsets)
                ):
                    self._log.delete_group(group.group_id, expired, now)
                    group.transition(GroupState.DEAD, now)
                    del self._groups[group.group_id]
                elif expired:
                    self._log.delete_offsets(group.group_id, expired, now)
            except OffsetsStorageError:
                log.warning("group %s: could not expire offsets", group.group_id)
                continue
            for tp in expired:
                del group.offsets[tp]
            removed += len(expired)
        return removed

    # ================================================================================== admin

    def describe_group(self, group_id: str) -> GroupDescription:
        """Handle one group of DescribeGroups; an unknown group is reported Dead, as Kafka does before v6."""
        if not is_valid_group_id(group_id, allow_empty=True):
            return GroupDescription(ErrorCode.INVALID_GROUP_ID, group_id, "", "", "", ())
        group = self._groups.get(group_id)
        if group is None:
            return GroupDescription(ErrorCode.NONE, group_id, GroupState.DEAD.value, "", "", ())
        stable = group.is_(GroupState.STABLE) and group.protocol_name is not None
        members = tuple(
            MemberDescription(
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                metadata=m.metadata(group.protocol_name) if stable and group.protocol_name else b"",
                assignment=m.assignment if stable else b"",
            )
            for m in group.members.values()
        )
        return GroupDescription(
            error=ErrorCode.NONE,
            group_id=group_id,
            state=group.state.value,
            protocol_type=group.protocol_type or "",
            protocol=(group.protocol_name or "") if stable else "",
            members=members,
        )

    def list_groups(self, states: Iterable[str] = ()) -> list[GroupOverview]:
        """Handle ListGroups; `states` (v4+) filters by state name, case-insensitively."""
        wanted = {s.lower() for s in states}
        return [
            GroupOverview(g.group_id, g.protocol_type or "", g.state.value)
            for g in self._groups.values()
            if not g.is_(GroupState.DEAD) and (not wanted or g.state.value.lower() in wanted)
        ]

    def delete_groups(self, group_ids: Iterable[str]) -> dict[str, ErrorCode]:
        """Handle DeleteGroups: only Empty groups go, together with their offsets."""
        result: dict[str, ErrorCode] = {}
        for group_id in group_ids:
            group = self._groups.get(group_id)
            if not is_valid_group_id(group_id, allow_empty=True):
                result[group_id] = ErrorCode.INVALID_GROUP_ID
            elif group is None or group.is_(GroupState.DEAD):
                result[group_id] = ErrorCode.GROUP_ID_NOT_FOUND
            elif not group.is_(GroupState.EMPTY):
                result[group_id] = ErrorCode.NON_EMPTY_GROUP
            else:
                now = self._clock()
                try:
                    self._log.delete_group(group_id, list(group.offsets), now)
                except OffsetsStorageError:
                    result[group_id] = ErrorCode.COORDINATOR_NOT_AVAILABLE
                    continue
                for member_id in list(group.pending_members):
                    del group.pending_members[member_id]
                group.transition(GroupState.DEAD, now)
                del self._groups[group_id]
                result[group_id] = ErrorCode.NONE
        return result

    # ================================================================================== persistence

    def _store_group(self, group: Group, assignment: dict[str, bytes] | None = None) -> None:
        protocol = group.protocol_name
        members: tuple[MemberValue, ...] = ()
        if protocol is not None:
            members = tuple(
                MemberValue(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    rebalance_timeout_ms=m.rebalance_timeout_ms,
                    session_timeout_ms=m.session_timeout_ms,
                    subscription=m.metadata(protocol),
                    assignment=(assignment or {}).get(m.member_id, m.assignment),
                )
                for m in group.members.values()
            )
        value = GroupValue(
            protocol_type=group.protocol_type or "",
            generation=group.generation_id,
            protocol=protocol,
            leader=group.leader_id,
            current_state_timestamp=group.state_timestamp_ms,
            members=members,
        )
        try:
            self._log.write_group(group.group_id, value, self._clock())
        except SchemaError as exc:
            raise OffsetsRecordTooLargeError(str(exc)) from exc


def _member_from_join(
    member_id: str, req: JoinRequest, respond: JoinCallback, *, assignment: bytes = b"", is_new: bool = False
) -> Member:
    """A member as its JoinGroup request describes it (a new joiner, or a static member's replacement)."""
    return Member(
        member_id=member_id,
        group_instance_id=req.group_instance_id,
        client_id=req.client_id,
        client_host=req.client_host,
        rebalance_timeout_ms=req.rebalance_timeout_ms,
        session_timeout_ms=req.session_timeout_ms,
        protocol_type=req.protocol_type,
        protocols=list(req.protocols),
        assignment=assignment,
        join_callback=respond,
        is_new=is_new,
    )
