"""A schema walk over a request body before kio decodes it: bounds every length, finds unknown tagged fields.

Why: kio's decoder trusts array lengths and reserves memory for them up front, so a four-byte count of a
billion elements makes it abort the whole process ("memory allocation of N bytes failed"), not raise. The
walk reads each length, checks it against the bytes actually left in the request, and refuses the request
(`RequestWalkError`) before kio sees it. It also notes tagged fields the schema does not declare: flexible
versions let a newer client add tags to an existing version and a receiver must skip them (KIP-482), which
kio refuses instead; such a body is copied without them and the copy is decoded.

The walk follows the wire format of request fields: fixed-size primitives, strings and bytes (compact in
flexible versions), arrays of primitives or structs, nullable structs, and a tagged-field section at the end
of each struct of a flexible version. Field plans are computed once per schema class.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, NamedTuple

from strom.protocol.errors import MalformedRequest, VarintError
from strom.protocol.varint import read_uvarint, write_uvarint

_FIXED = {
    "int8": 1,
    "bool": 1,
    "int16": 2,
    "uint16": 2,
    "error_code": 2,
    "int32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "datetime_i64": 8,
    "timedelta_i64": 8,
    "float64": 8,
    "uuid": 16,
}
_LENGTH_WIDTH = {"string": 2, "bytes": 4, "records": 4}


class RequestWalkError(MalformedRequest):
    """The body does not fit its schema: truncated, a negative or oversized length, an unknown field type."""


class _Step(NamedTuple):
    kafka_type: str  # primitive type, or "" for a struct
    struct: type[Any] | None
    array: bool
    nullable: bool  # the field itself (the array, string or struct) may be null
    element_nullable: bool  # for arrays of primitives: each element may be null


class _Plan(NamedTuple):
    steps: tuple[_Step, ...]
    known_tags: frozenset[int]
    flexible: bool


_PLANS: dict[type[Any], _Plan] = {}


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


def _plan(cls: type[Any]) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is not None:
        return plan
    hints = typing.get_type_hints(cls)
    steps = []
    tags = set()
    for f in dataclasses.fields(cls):
        if "tag" in f.metadata:
            tags.add(int(f.metadata["tag"]))
            continue
        inner, nullable = _unwrap_optional(hints[f.name])
        array = typing.get_origin(inner) is tuple
        element_nullable = False
        if array:
            inner, element_nullable = _unwrap_optional(typing.get_args(inner)[0])
        if dataclasses.is_dataclass(inner):
            steps.append(_Step("", typing.cast(type[Any], inner), array, nullable, False))
        else:
            kafka_type = str(f.metadata.get("kafka_type", ""))
            if kafka_type not in _FIXED and kafka_type not in _LENGTH_WIDTH:
                raise RequestWalkError(f"{cls.__qualname__}.{f.name}: unknown field type {kafka_type!r}")
            steps.append(_Step(kafka_type, None, array, nullable, element_nullable))
    plan = _PLANS[cls] = _Plan(tuple(steps), frozenset(tags), bool(cls.__flexible__))
    return plan


class _Walker:
    """Reads `buf` from `pos`; with `out` set, copies everything except unknown tagged fields into it."""

    def __init__(self, buf: bytes, pos: int, out: bytearray | None) -> None:
        self.buf = buf
        self.pos = pos
        self.out = out
        self.unknown_tags = False

    def _skip(self, n: int) -> None:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise RequestWalkError("the request ends inside a field")
        if self.out is not None:
            self.out += self.buf[self.pos : end]
        self.pos = end

    def _uvarint(self) -> tuple[int, int]:
        """(value, start position); the bytes are not copied."""
        start = self.pos
        if start < len(self.buf) and self.buf[start] < 0x80:  # the usual case: a one-byte length or count
            self.pos = start + 1
            return self.buf[start], start
        try:
            value, self.pos = read_uvarint(self.buf, start)
        except IndexError:
            raise RequestWalkError("the request ends inside a varint") from None
        except VarintError:
            raise RequestWalkError("unsigned varint longer than 5 bytes") from None
        return value, start

    def _length(self, flexible: bool, width: int, nullable: bool) -> int:
        """A length or count prefix (copied); -1 for null. Refuses one larger than the bytes left, and null
        where the schema does not allow it (kio would hand the handler a None it does not expect)."""
        if flexible:
            value, start = self._uvarint()
            if self.out is not None:
                self.out += self.buf[start : self.pos]
            length = value - 1
        else:
            start = self.pos
            self._skip(width)
            length = int.from_bytes(self.buf[start : self.pos], "big", signed=True)
            if length < -1:
                raise RequestWalkError(f"negative length {length}")
        if length > len(self.buf) - self.pos:
            raise RequestWalkError(f"length {length} exceeds the {len(self.buf) - self.pos} bytes left")
        if length == -1 and not nullable:
            raise RequestWalkError("null where the schema requires a value")
        return length

    def _primitive(self, kafka_type: str, flexible: bool, nullable: bool) -> None:
        size = _FIXED.get(kafka_type)
        if size is not None:
            self._skip(size)
        else:
            self._skip(max(0, self._length(flexible, _LENGTH_WIDTH[kafka_type], nullable)))

    def entity(self, cls: type[Any]) -> None:
        plan = _plan(cls)
        flexible = plan.flexible
        for step in plan.steps:
            if step.array:
                count = self._length(flexible, 4, step.nullable)
                for _ in range(count):
                    if step.struct is not None:
                        self.entity(step.struct)
                    else:
                        self._primitive(step.kafka_type, flexible, step.element_nullable)
            elif step.struct is not None:
                if step.nullable:
                    marker = self.pos
                    self._skip(1)
                    if self.buf[marker] == 0xFF:
                        continue
                self.entity(step.struct)
            else:
                self._primitive(step.kafka_type, flexible, step.nullable)
        if flexible:
            self._tags(plan.known_tags)

    def _tags(self, known: frozenset[int]) -> None:
        if self.pos < len(self.buf) and self.buf[self.pos] == 0:  # the usual case: no tagged fields
            self.pos += 1
            if self.out is not None:
                self.out.append(0)
            return
        count, _ = self._uvarint()
        if count > len(self.buf) - self.pos:
            raise RequestWalkError(f"{count} tagged fields exceed the request size")
        kept: list[bytes] = []
        for _ in range(count):
            tag, start = self._uvarint()
            size, _ = self._uvarint()
            end = self.pos + size
            if end > len(self.buf):
                raise RequestWalkError("the request ends inside a tagged field")
            if tag in known:
                kept.append(self.buf[start:end])
            else:
                self.unknown_tags = True
            self.pos = end
        if self.out is not None:
            self.out += write_uvarint(len(kept))
            for entry in kept:
                self.out += entry


def check_body(cls: type[Any], frame: bytes, pos: int) -> bool:
    """Check that the body of schema `cls` at `frame[pos:]` fits the frame; True if it has unknown tags.

    Raises RequestWalkError for a body kio must not be given.
    """
    walker = _Walker(frame, pos, None)
    walker.entity(cls)
    return walker.unknown_tags


def strip_unknown_tags(cls: type[Any], frame: bytes, pos: int) -> bytes:
    """The body at `frame[pos:]` without the tagged fields `cls` does not declare."""
    out = bytearray()
    walker = _Walker(frame, pos, out)
    walker.entity(cls)
    return bytes(out) + frame[walker.pos :]
