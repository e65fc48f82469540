"""Key and value schemas of the records in `__consumer_offsets`, byte-compatible with Apache Kafka's.

Why Kafka's exact layout: the internal topic is ordinary strom log data, so `kafka-dump-log
--offsets-decoder` and anyone who knows Kafka's `OffsetCommitKey`/`GroupMetadataValue` JSON schemas can read
it, and a data directory never needs a strom-specific migration when these records evolve the way Kafka's do.

Layout (all integers big-endian; strings are int16 length + UTF-8, null = -1; bytes are int32 length):

- key version 0 or 1 = offset commit:  `group string, topic string, partition int32`
- key version 2      = group metadata: `group string`
- OffsetCommitValue v0: offset int64, metadata string, timestamp int64
  v1: offset, metadata, commitTimestamp, expireTimestamp int64;
  v2: offset, metadata, commitTimestamp;  v3: offset, leaderEpoch int32, metadata, commitTimestamp;
  v4: v3 in the flexible encoding (compact strings, tagged fields).
- GroupMetadataValue v0-v3: protocolType string, generation int32, protocol nullable string, leader nullable
  string, currentStateTimestamp int64 (v2+), members [memberId string, groupInstanceId nullable string (v3+),
  clientId string, clientHost string, rebalanceTimeout int32 (v1+), sessionTimeout int32, subscription bytes,
  assignment bytes]; v4 is v3 in the flexible encoding.

strom writes key version 1, OffsetCommitValue v3 (v1 when an explicit expiry was requested, as Kafka does) and
GroupMetadataValue v3; it reads every version above. A null value is a tombstone.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from strom.broker.errors import BrokerError
from strom.protocol.errors import VarintError
from strom.protocol.varint import read_uvarint

OFFSET_COMMIT_KEY_VERSION = 1
GROUP_METADATA_KEY_VERSION = 2

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class SchemaError(BrokerError):
    """A `__consumer_offsets` key or value does not decode under any known schema version."""


@dataclass(frozen=True, slots=True)
class OffsetKey:
    """Key of an offset-commit record."""

    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class GroupKey:
    """Key of a group-metadata record."""

    group: str


@dataclass(frozen=True, slots=True)
class OffsetValue:
    """A committed offset as stored. `expire_timestamp` is set only for pre-KIP-211 explicit retention."""

    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int
    expire_timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class MemberValue:
    """One member inside a stored group-metadata value."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupValue:
    """A stored group: the last completed generation and its members (empty for an Empty group)."""

    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int
    members: tuple[MemberValue, ...]


# ---------------------------------------------------------------------------------------------- writing


def _string(value: str | None) -> bytes:
    if value is None:
        return _I16.pack(-1)
    data = value.encode()
    if len(data) > 0x7FFF:
        raise SchemaError(f"string of {len(data)} bytes exceeds the int16 length limit of 32767")
    return _I16.pack(len(data)) + data


def _bytes(value: bytes) -> bytes:
    return _I32.pack(len(value)) + value


def encode_offset_key(key: OffsetKey) -> bytes:
    """Encode an offset-commit key (version 1)."""
    return (
        _I16.pack(OFFSET_COMMIT_KEY_VERSION)
        + _string(key.group)
        + _string(key.topic)
        + _I32.pack(key.partition)
    )


def encode_group_key(key: GroupKey) -> bytes:
    """Encode a group-metadata key (version 2)."""
    return _I16.pack(GROUP_METADATA_KEY_VERSION) + _string(key.group)


def encode_offset_value(value: OffsetValue) -> bytes:
    """Encode OffsetCommitValue v3, or v1 when the commit carries an explicit expiry timestamp."""
    if value.expire_timestamp is not None:
        return (
            _I16.pack(1)
            + _I64.pack(value.offset)
            + _string(value.metadata)
            + _I64.pack(value.commit_timestamp)
            + _I64.pack(value.expire_timestamp)
        )
    return (
        _I16.pack(3)
        + _I64.pack(value.offset)
        + _I32.pack(value.leader_epoch)
        + _string(value.metadata)
        + _I64.pack(value.commit_timestamp)
    )


def encode_group_value(value: GroupValue) -> bytes:
    """Encode GroupMetadataValue v3."""
    parts = [
        _I16.pack(3),
        _string(value.protocol_type),
        _I32.pack(value.generation),
        _string(value.protocol),
        _string(value.leader),
        _I64.pack(value.current_state_timestamp),
        _I32.pack(len(value.members)),
    ]
    for m in value.members:
        parts += [
            _string(m.member_id),
            _string(m.group_instance_id),
            _string(m.client_id),
            _string(m.client_host),
            _I32.pack(m.rebalance_timeout_ms),
            _I32.pack(m.session_timeout_ms),
            _bytes(m.subscription),
            _bytes(m.assignment),
        ]
    return b"".join(parts)


# ---------------------------------------------------------------------------------------------- reading


class _Reader:
    """Cursor over one key or value; `flexible` switches to the compact (KIP-482) encodings."""

    def __init__(self, data: bytes, flexible: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.flexible = flexible

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise SchemaError(
                f"record needs {n} bytes at position {self.pos}, has {len(self.data) - self.pos}"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def uvarint(self) -> int:
        try:
            value, self.pos = read_uvarint(self.data, self.pos)
        except IndexError:
            raise SchemaError(f"record ends inside a varint at position {self.pos}") from None
        except VarintError as exc:
            raise SchemaError(str(exc)) from None
        return value

    def i16(self) -> int:
        return int(_I16.unpack(self._take(2))[0])

    def i32(self) -> int:
        return int(_I32.unpack(self._take(4))[0])

    def i64(self) -> int:
        return int(_I64.unpack(self._take(8))[0])

    def nullable_string(self) -> str | None:
        n = self.uvarint() - 1 if self.flexible else self.i16()
        if n < 0:
            return None
        try:
            return self._take(n).decode()
        except UnicodeDecodeError as exc:
            raise SchemaError(f"string at position {self.pos - n} is not UTF-8") from exc

    def string(self) -> str:
        value = self.nullable_string()
        if value is None:
            raise SchemaError(f"null where a string is required (position {self.pos})")
        return value

    def bytes_(self) -> bytes:
        n = self.uvarint() - 1 if self.flexible else self.i32()
        if n < 0:
            return b""
        return self._take(n)

    def array_length(self) -> int:
        n = self.uvarint() - 1 if self.flexible else self.i32()
        return max(n, 0)

    def tagged_fields(self) -> None:
        if self.flexible:
            for _ in range(self.uvarint()):
                self.uvarint()
                self._take(self.uvarint())

    def done(self) -> None:
        if self.pos != len(self.data):
            raise SchemaError(f"{len(self.data) - self.pos} trailing bytes after the record")


def decode_key(data: bytes) -> OffsetKey | GroupKey:
    """Decode a record key; versions 0-1 are offset commits, 2 is group metadata."""
    r = _Reader(data)
    version = r.i16()
    if version in (0, 1):
        key: OffsetKey | GroupKey = OffsetKey(r.string(), r.string(), r.i32())
    elif version == GROUP_METADATA_KEY_VERSION:
        key = GroupKey(r.string())
    else:
        raise SchemaError(f"unknown __consumer_offsets key version {version}")
    r.done()
    return key


def decode_offset_value(data: bytes) -> OffsetValue:
    """Decode OffsetCommitValue v0-v4."""
    r = _Reader(data)
    version = r.i16()
    if version not in range(5):
        raise SchemaError(f"unknown OffsetCommitValue version {version}")
    r.flexible = version >= 4
    offset = r.i64()
    epoch = r.i32() if version >= 3 else -1
    metadata = r.string()
    commit_timestamp = r.i64()
    expire = r.i64() if version == 1 else None
    r.tagged_fields()
    r.done()
    return OffsetValue(offset, epoch, metadata, commit_timestamp, expire)


def decode_group_value(data: bytes) -> GroupValue:
    """Decode GroupMetadataValue v0-v4."""
    r = _Reader(data)
    version = r.i16()
    if version not in range(5):
        raise SchemaError(f"unknown GroupMetadataValue version {version}")
    r.flexible = version >= 4
    protocol_type = r.string()
    generation = r.i32()
    protocol = r.nullable_string()
    leader = r.nullable_string()
    timestamp = r.i64() if version >= 2 else -1
    members = []
    for _ in range(r.array_length()):
        member_id = r.string()
        instance_id = r.nullable_string() if version >= 3 else None
        client_id = r.string()
        client_host = r.string()
        rebalance_timeout = r.i32() if version >= 1 else -1
        session_timeout = r.i32()
        subscription = r.bytes_()
        assignment = r.bytes_()
        if rebalance_timeout < 0:
            rebalance_timeout = session_timeout
        r.tagged_fields()
        members.append(
            MemberValue(
                member_id,
                instance_id,
                client_id,
                client_host,
                rebalance_timeout,
                session_timeout,
                subscription,
                assignment,
            )
        )
    r.tagged_fields()
    r.done()
    return GroupValue(protocol_type, generation, protocol, leader, timestamp, tuple(members))


def subscribed_topics(subscription: bytes) -> frozenset[str] | None:
    """Topics named in a ConsumerProtocolSubscription (any version), or None if it does not parse.

    Every version starts with `version int16, topics [string]`; the rest (user data, owned partitions,
    generation, rack) is irrelevant to the coordinator, which only needs topics for OffsetDelete and
    offset expiry.
    """
    r = _Reader(subscription)
    try:
        if r.i16() < 0:
            return None
        n = r.i32()
        if n < 0 or n > len(subscription):
            return None
        return frozenset(r.string() for _ in range(n))
    except SchemaError:
        return None


def java_string_hash(value: str) -> int:
    """Java's `String.hashCode` (over UTF-16 code units), as a signed 32-bit int."""
    h = 0
    data = value.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group: str, num_partitions: int) -> int:
    """The `__consumer_offsets` partition of a group: Kafka's `Utils.abs(hashCode) % partitions`."""
    return (java_string_hash(group) & 0x7FFFFFFF) % num_partitions
