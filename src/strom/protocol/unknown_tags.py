"""Drop tagged fields a request schema does not know, so the rest of the request still decodes (KIP-482).

Why: flexible versions let a newer client add tagged fields to an existing version, and a receiver must skip
tags it does not know. kio refuses them instead. When that happens the codec walks the body once more with
the schema, copying every field and leaving out the unknown tags, and decodes the copy. Only requests that
carry an unknown tag pay for this.

The walk follows the wire format of request fields: fixed-size primitives, strings and bytes (compact in
flexible versions), arrays of primitives or structs, nullable structs, and a tagged-field section at the end
of each struct of a flexible version.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

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


class TagWalkError(ValueError):
    """The body does not follow the schema (truncated, negative lengths, an unknown field type)."""


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class _Walker:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0
        self.out = bytearray()

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise TagWalkError("request body ends inside a field")
        chunk = self.buf[self.pos : end]
        self.pos = end
        return chunk

    def _read_uvarint(self) -> tuple[int, bytes]:
        start = self.pos
        value = shift = 0
        while True:
            byte = self._take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value, self.buf[start : self.pos]
            shift += 7
            if shift > 35:
                raise TagWalkError("unsigned varint longer than 5 bytes")

    def _copy(self, n: int) -> None:
        self.out += self._take(n)

    def _length(self, flexible: bool, legacy_width: int) -> int:
        """A length prefix, copied; returns the element/byte count (-1 for null)."""
        if flexible:
            value, raw = self._read_uvarint()
            self.out += raw
            return value - 1
        raw = self._take(legacy_width)
        self.out += raw
        return int.from_bytes(raw, "big", signed=True)

    def primitive(self, kafka_type: str, flexible: bool) -> None:
        size = _FIXED.get(kafka_type)
        if size is not None:
            self._copy(size)
        elif kafka_type == "string":
            self._copy(max(0, self._length(flexible, 2)))
        elif kafka_type in ("bytes", "records"):
            self._copy(max(0, self._length(flexible, 4)))
        else:
            raise TagWalkError(f"unknown field type {kafka_type!r}")

    def entity(self, cls: type[Any]) -> None:
        flexible = bool(cls.__flexible__)
        hints = typing.get_type_hints(cls)
        known_tags = set()
        for f in dataclasses.fields(cls):
            if "tag" in f.metadata:
                known_tags.add(f.metadata["tag"])
                continue
            self.field(f, hints[f.name], flexible)
        if flexible:
            self.tags(known_tags)

    def field(self, f: dataclasses.Field[Any], hint: Any, flexible: bool) -> None:
        inner, nullable = _unwrap_optional(hint)
        if typing.get_origin(inner) is tuple:
            element, _ = _unwrap_optional(typing.get_args(inner)[0])
            count = self._length(flexible, 4)
            for _ in range(max(0, count)):
                if dataclasses.is_dataclass(element):
                    self.entity(typing.cast(type[Any], element))
                else:
                    self.primitive(f.metadata["kafka_type"], flexible)
        elif dataclasses.is_dataclass(inner):
            if nullable:
                marker = self._take(1)
                self.out += marker
                if marker[0] == 0xFF:
                    return
            self.entity(typing.cast(type[Any], inner))
        else:
            self.primitive(f.metadata["kafka_type"], flexible)

    def tags(self, known: set[int]) -> None:
        count, _ = self._read_uvarint()
        kept = []
        for _ in range(count):
            tag, raw_tag = self._read_uvarint()
            size, raw_size = self._read_uvarint()
            data = self._take(size)
            if tag in known:
                kept.append(raw_tag + raw_size + data)
        self.out += _uvarint(len(kept))
        for entry in kept:
            self.out += entry


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


def strip_unknown_tags(cls: type[Any], body: bytes) -> bytes:
    """`body` (a request body of schema `cls`) without the tagged fields `cls` does not declare."""
    walker = _Walker(body)
    walker.entity(cls)
    return bytes(walker.out) + body[walker.pos :]
