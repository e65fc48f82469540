"""Serdes: turn keys and values into bytes and back, byte-compatible with Apache Kafka's built-in serdes.

A Java Kafka Streams app and a strom.streams app can share topics: ``long()`` is 8-byte big-endian two's
complement like ``Serdes.Long()``, ``string()`` is UTF-8 like ``Serdes.String()``, and so on. Every serde maps
``None`` to ``None`` (a null key or a tombstone) in both directions, as Kafka's do.

A serde is any object with ``serialize(topic, value)`` and ``deserialize(topic, data)``; subclass ``Serde`` or
use ``serde(to_bytes, from_bytes)`` to plug in your own. Failures raise ``SerializationError`` naming the
serde and the problem. Avro and JSON Schema serdes that use a schema registry (Confluent's wire format) are in
``strom.registry.serdes``.
"""

from __future__ import annotations

import json as _json
import struct
import uuid as _uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import orjson

from strom.streams.errors import SerializationError
from strom.streams.windows import Window, Windowed

T = TypeVar("T")

_LONG = struct.Struct(">q")
_INT = struct.Struct(">i")
_SHORT = struct.Struct(">h")
_DOUBLE = struct.Struct(">d")
_JSON_ENCODER = _json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_FLOAT = struct.Struct(">f")


class Serde(Generic[T]):
    """Base class of serdes. Subclasses keep the invariant ``deserialize(t, serialize(t, v)) == v``."""

    name = "serde"

    def serialize(self, topic: str, value: T | None) -> bytes | None:
        raise NotImplementedError

    def deserialize(self, topic: str, data: bytes | None) -> T | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<serde {self.name}>"


def _size_error(name: str, expected: int, data: bytes) -> SerializationError:
    return SerializationError(
        f"size of data received by the {name} deserializer is {len(data)}, expected {expected}"
    )


class _BytesSerde(Serde[bytes]):
    name = "bytes"

    def serialize(self, topic: str, value: bytes | None) -> bytes | None:
        if value is None or type(value) is bytes:
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise SerializationError(f"bytes serde got {type(value).__name__}, expected bytes")

    def deserialize(self, topic: str, data: bytes | None) -> bytes | None:
        return data


class _StringSerde(Serde[str]):
    name = "string"

    def serialize(self, topic: str, value: str | None) -> bytes | None:
        if value is None:
            return None
        try:
            return value.encode()
        except AttributeError:
            raise SerializationError(f"string serde got {type(value).__name__}, expected str") from None

    def deserialize(self, topic: str, data: bytes | None) -> str | None:
        if data is None:
            return None
        try:
            return data.decode()
        except UnicodeDecodeError as e:
            raise SerializationError(f"string deserializer: data is not valid UTF-8 ({e})") from None


class _StructSerde(Serde[Any]):
    """Fixed-size numbers; the struct format is big-endian like Java's ByteBuffer."""

    def __init__(self, name: str, st: struct.Struct) -> None:
        self.name = name
        self._pack = st.pack
        self._unpack = st.unpack
        self._size = st.size

    def serialize(self, topic: str, value: Any) -> bytes | None:
        if value is None:
            return None
        try:
            return self._pack(value)
        except (struct.error, TypeError) as e:
            raise SerializationError(f"{self.name} serde cannot serialise {value!r}: {e}") from None

    def deserialize(self, topic: str, data: bytes | None) -> Any:
        if data is None:
            return None
        if len(data) != self._size:
            raise _size_error(self.name, self._size, data)
        return self._unpack(data)[0]


class _BooleanSerde(Serde[bool]):
    name = "boolean"

    def serialize(self, topic: str, value: bool | None) -> bytes | None:
        if value is None:
            return None
        return b"\x01" if value else b"\x00"

    def deserialize(self, topic: str, data: bytes | None) -> bool | None:
        if data is None:
            return None
        if len(data) != 1:
            raise _size_error(self.name, 1, data)
        if data == b"\x01":
            return True
        if data == b"\x00":
            return False
        raise SerializationError(f"boolean deserializer: unexpected byte {data!r}, expected 0x00 or 0x01")


class _UuidSerde(Serde[_uuid.UUID]):
    """Kafka's UUIDSerde writes the canonical string form in UTF-8."""

    name = "uuid"

    def serialize(self, topic: str, value: _uuid.UUID | None) -> bytes | None:
        return None if value is None else str(value).encode()

    def deserialize(self, topic: str, data: bytes | None) -> _uuid.UUID | None:
        if data is None:
            return None
        try:
            return _uuid.UUID(data.decode())
        except (ValueError, UnicodeDecodeError) as e:
            raise SerializationError(f"uuid deserializer: {data!r} is not a UUID string ({e})") from None


class _JsonSerde(Serde[Any]):
    """Compact UTF-8 JSON, the bytes Jackson-based JSON serdes produce for the same document.

    orjson does the work; documents it refuses (non-string dict keys, integers beyond 64 bits) fall back to
    the standard library with the same compact layout.
    """

    name = "json"

    def serialize(self, topic: str, value: Any) -> bytes | None:
        if value is None:
            return None
        try:
            return orjson.dumps(value)
        except TypeError:
            pass
        try:
            return _JSON_ENCODER.encode(value).encode()
        except (TypeError, ValueError) as e:
            raise SerializationError(f"json serde cannot serialise {type(value).__name__}: {e}") from None

    def deserialize(self, topic: str, data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise SerializationError(f"json deserializer: invalid JSON ({e})") from None


class _FunctionSerde(Serde[Any]):
    def __init__(
        self, to_bytes: Callable[[Any], bytes], from_bytes: Callable[[bytes], Any], name: str
    ) -> None:
        self.name = name
        self._to = to_bytes
        self._from = from_bytes

    def serialize(self, topic: str, value: Any) -> bytes | None:
        if value is None:
            return None
        try:
            return self._to(value)
        except SerializationError:
            raise
        except Exception as e:
            raise SerializationError(f"serde {self.name} cannot serialise {type(value).__name__}: {e}") from e

    def deserialize(self, topic: str, data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            return self._from(data)
        except SerializationError:
            raise
        except Exception as e:
            raise SerializationError(f"serde {self.name} cannot deserialise {len(data)} bytes: {e}") from e


class TimeWindowedSerde(Serde[Windowed]):
    """Kafka's ``TimeWindowedSerde``: the inner key's bytes followed by the window start as 8-byte big-endian.

    The end is not on the wire; it is ``start + window_size_ms`` (Kafka's TimeWindowedDeserializer does the
    same).
    """

    name = "windowed"

    def __init__(self, inner: Serde[Any] | None, window_size_ms: int) -> None:
        if window_size_ms <= 0:
            raise ValueError(f"window_size_ms must be > 0, got {window_size_ms}")
        self.inner = inner
        self.window_size_ms = window_size_ms

    def with_inner(self, inner: Serde[Any]) -> TimeWindowedSerde:
        return TimeWindowedSerde(inner, self.window_size_ms)

    def serialize(self, topic: str, value: Windowed | None) -> bytes | None:
        if value is None:
            return None
        assert self.inner is not None, "windowed serde without an inner serde; resolve it with resolve_serde"
        key = self.inner.serialize(topic, value.key)
        return (key or b"") + _LONG.pack(value.window.start)

    def deserialize(self, topic: str, data: bytes | None) -> Windowed | None:
        if data is None:
            return None
        if len(data) < 8:
            raise _size_error("windowed", 8, data)
        start = _LONG.unpack_from(data, len(data) - 8)[0]
        assert self.inner is not None, "windowed serde without an inner serde; resolve it with resolve_serde"
        return Windowed(self.inner.deserialize(topic, data[:-8]), Window(start, start + self.window_size_ms))


class SessionWindowedSerde(Serde[Windowed]):
    """Kafka's ``SessionWindowedSerde``: the inner key's bytes, then the session end and start, each 8-byte
    big-endian (``SessionKeySchema``). Both ends are inclusive."""

    name = "session-windowed"

    def __init__(self, inner: Serde[Any] | None) -> None:
        self.inner = inner

    def with_inner(self, inner: Serde[Any]) -> SessionWindowedSerde:
        return SessionWindowedSerde(inner)

    def serialize(self, topic: str, value: Windowed | None) -> bytes | None:
        if value is None:
            return None
        assert self.inner is not None, "session serde without an inner serde; resolve it with resolve_serde"
        key = self.inner.serialize(topic, value.key) or b""
        return key + _LONG.pack(value.window.end) + _LONG.pack(value.window.start)

    def deserialize(self, topic: str, data: bytes | None) -> Windowed | None:
        if data is None:
            return None
        if len(data) < 16:
            raise _size_error("session-windowed", 16, data)
        assert self.inner is not None, "session serde without an inner serde; resolve it with resolve_serde"
        end = _LONG.unpack_from(data, len(data) - 16)[0]
        start = _LONG.unpack_from(data, len(data) - 8)[0]
        return Windowed(self.inner.deserialize(topic, data[:-16]), Window(start, end))


_BYTES = _BytesSerde()
_STRING = _StringSerde()
_INTEGER = _StructSerde("integer", _INT)
_LONG_SERDE = _StructSerde("long", _LONG)
_SHORT_SERDE = _StructSerde("short", _SHORT)
_DOUBLE_SERDE = _StructSerde("double", _DOUBLE)
_FLOAT_SERDE = _StructSerde("float", _FLOAT)
_BOOLEAN = _BooleanSerde()
_UUID = _UuidSerde()
_JSON = _JsonSerde()


def bytes_() -> Serde[bytes]:
    """Pass-through (Kafka ``Serdes.ByteArray()``); the default for keys and values."""
    return _BYTES


def string() -> Serde[str]:
    """UTF-8 text (``Serdes.String()``)."""
    return _STRING


def integer() -> Serde[int]:
    """4-byte big-endian signed int (``Serdes.Integer()``)."""
    return _INTEGER


def long() -> Serde[int]:
    """8-byte big-endian signed long (``Serdes.Long()``)."""
    return _LONG_SERDE


def short() -> Serde[int]:
    """2-byte big-endian signed short (``Serdes.Short()``)."""
    return _SHORT_SERDE


def double() -> Serde[float]:
    """8-byte IEEE 754 big-endian (``Serdes.Double()``)."""
    return _DOUBLE_SERDE


def float_() -> Serde[float]:
    """4-byte IEEE 754 big-endian (``Serdes.Float()``)."""
    return _FLOAT_SERDE


def boolean() -> Serde[bool]:
    """One byte, 0x01 or 0x00 (``Serdes.Boolean()``)."""
    return _BOOLEAN


def uuid() -> Serde[_uuid.UUID]:
    """Canonical UUID string in UTF-8 (``Serdes.UUID()``)."""
    return _UUID


def json() -> Serde[Any]:
    """Compact UTF-8 JSON documents (dicts, lists, numbers, strings)."""
    return _JSON


def windowed(inner: Serde[Any], window_size_ms: int) -> TimeWindowedSerde:
    """Serde for the ``Windowed`` keys of a time-windowed aggregation
    (``WindowedSerdes.timeWindowedSerdeFrom``)."""
    return TimeWindowedSerde(inner, window_size_ms)


def session_windowed(inner: Serde[Any]) -> SessionWindowedSerde:
    """Serde for the ``Windowed`` keys of a session-windowed aggregation
    (``WindowedSerdes.sessionWindowedSerdeFrom``)."""
    return SessionWindowedSerde(inner)


def serde(
    to_bytes: Callable[[Any], bytes], from_bytes: Callable[[bytes], Any], name: str = "custom"
) -> Serde[Any]:
    """A serde from two functions; ``None`` is handled for you and exceptions become ``SerializationError``.
    """
    return _FunctionSerde(to_bytes, from_bytes, name)


def default_serde(config: dict[str, Any], which: str) -> Serde[Any]:
    """The serde from ``default.key.serde`` / ``default.value.serde`` (a Serde object), else ``bytes_()``."""
    configured = config.get(f"default.{which}.serde")
    if configured is None:
        return _BYTES
    if not (hasattr(configured, "serialize") and hasattr(configured, "deserialize")):
        raise SerializationError(
            f"default.{which}.serde must be a serde object (e.g. strom.streams.serdes.string()), "
            f"got {configured!r}"
        )
    return configured  # type: ignore[no-any-return]


def resolve_serde(serde: Any, config: dict[str, Any], which: str, where: str = "") -> Serde[Any]:
    """``serde``, or the config default when it is None; a wrapper serde (windowed, table change) built
    without an inner serde gets the default as its inner one. Anything that is not a serde is refused here,
    when a task is built, rather than on the first record."""
    if serde is None:
        return default_serde(config, which)
    if not (callable(getattr(serde, "serialize", None)) and callable(getattr(serde, "deserialize", None))):
        raise SerializationError(
            f"{where or 'topology'}: the {which} serde {serde!r} is not a serde; pass one from "
            "strom.streams.serdes (e.g. serdes.string()) or an object with serialize(topic, value) and "
            "deserialize(topic, data)"
        )
    if getattr(serde, "inner", 0) is None:
        return serde.with_inner(default_serde(config, which))  # type: ignore[no-any-return]
    return serde  # type: ignore[no-any-return]
