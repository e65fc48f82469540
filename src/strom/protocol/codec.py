"""Request decoding and response encoding for the broker, built on kio behind a small interface.

Why a wrapper: kio's schema classes differ per API version, so handlers would otherwise be written once per
version. Here a handler describes its response as plain Python values (ints for error codes, milliseconds for
durations and timestamps, dicts for nested structs) and `build` turns them into the dataclass of whichever
version the client asked for, dropping fields that version lacks and defaulting the ones it omits. kio stays
swappable: nothing outside this module imports it for (de)serialisation.

The request header is read once by `framing.read_request_header`; for header v2 its tagged fields are
skipped here (KIP-482), since only the schema says which header version an API version uses. Every body is
walked once with its schema before kio decodes it (`request_walk`): lengths are checked against the frame,
because kio would try to allocate whatever a hostile count says and abort the process, and unknown tagged
fields, which kio refuses, are dropped from a copy that is decoded instead.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import io
import struct
import sys
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from strom.protocol.errors import MalformedRequest, UnsupportedRequest, VarintError
from strom.protocol.framing import RequestHeader, size_prefix
from strom.protocol.request_walk import RequestWalkError, check_body, strip_unknown_tags
from strom.protocol.varint import read_uvarint


def _import_kio_without_hypothesis() -> None:
    """Import kio without letting it register hypothesis strategies for its types.

    kio imports hypothesis whenever it is installed (as in a development environment) and registers a
    strategy per type, which costs about a second at start-up; the broker must be ready in well under one.
    Blocking the import only while kio loads leaves hypothesis importable for everyone afterwards.
    """
    if "hypothesis" in sys.modules or "kio.static._phantom" in sys.modules:
        return
    sys.modules["hypothesis"] = None  # type: ignore[assignment]
    try:
        importlib.import_module("kio.static._phantom")
    finally:
        del sys.modules["hypothesis"]


_import_kio_without_hypothesis()

from kio.index import UnknownAPIKey, UnknownEntity, load_request_schema, load_response_schema  # noqa: E402
from kio.schema.errors import ErrorCode as KioErrorCode  # noqa: E402
from kio.serial import entity_reader, entity_writer  # noqa: E402
from kio.serial.errors import SerialError  # noqa: E402
from kio.static.primitive import TZAware, i32Timedelta, i64Timedelta  # noqa: E402

_CORRELATION = struct.Struct(">i")
_UTC = datetime.UTC


def _skip_header_tags(frame: bytes, pos: int) -> int:
    """Skip the tagged-field section of a request header v2 (none are known); return the body offset."""
    if pos < len(frame) and frame[pos] == 0:  # the usual case: no tagged fields
        return pos + 1
    try:
        count, pos = read_uvarint(frame, pos)
        for _ in range(count):
            _tag, pos = read_uvarint(frame, pos)
            size, pos = read_uvarint(frame, pos)
            pos += size
            if pos > len(frame):
                raise MalformedRequest("tagged field runs past the end of the request header")
    except (IndexError, VarintError):
        raise MalformedRequest("truncated or overlong unsigned varint in request header") from None
    return pos


@cache
def request_class(api_key: int, api_version: int) -> type[Any]:
    """The kio request dataclass for (key, version); UnsupportedRequest when kio has none."""
    try:
        return load_request_schema(api_key, api_version)
    except (UnknownAPIKey, UnknownEntity):
        raise UnsupportedRequest(api_key, api_version) from None


@cache
def response_class(api_key: int, api_version: int) -> type[Any]:
    """The kio response dataclass for (key, version)."""
    return load_response_schema(api_key, api_version)


_READERS: dict[type[Any], Callable[[bytes, int], tuple[Any, int]]] = {}
_WRITERS: dict[type[Any], Callable[[io.BytesIO, Any], None]] = {}


def _reader(cls: type[Any]) -> Callable[[bytes, int], tuple[Any, int]]:
    reader = _READERS.get(cls)
    if reader is None:
        reader = _READERS[cls] = entity_reader(cls)
    return reader


def _writer(cls: type[Any]) -> Callable[[io.BytesIO, Any], None]:
    writer = _WRITERS.get(cls)
    if writer is None:
        writer = _WRITERS[cls] = entity_writer(cls)
    return writer


def decode_request(header: RequestHeader, frame: bytes) -> Any:
    """The kio body dataclass of a request frame (without its size prefix) whose header is `header`.

    Raises UnsupportedRequest for an api key or version kio cannot parse, MalformedRequest for a body that
    does not decode (truncated, bad lengths or varints, invalid UTF-8, unknown tagged fields in the body).
    """
    api_key, api_version = header.api_key, header.api_version
    cls = request_class(api_key, api_version)
    pos = _skip_header_tags(frame, header.size) if cls.__flexible__ else header.size
    try:
        # Bounds every length before kio reserves memory for it (kio aborts the process on a huge count).
        if check_body(cls, frame, pos):  # unknown tagged fields: kio refuses them, KIP-482 skips them
            body, _used = _reader(cls)(strip_unknown_tags(cls, frame, pos), 0)
        else:
            body, _used = _reader(cls)(frame, pos)
    except (RequestWalkError, SerialError, ValueError, KeyError, OverflowError, TypeError) as exc:
        raise MalformedRequest(f"cannot decode api_key={api_key} v{api_version}: {exc}") from exc
    # Trailing bytes are ignored, as Kafka's own parser does: librdkafka 2.16 appends three bytes to
    # Metadata v12 requests, and Kafka answers them.
    return body


# --- building responses from plain values -------------------------------------------------------------

_Converter = Callable[[Any], Any]


def _ms_to_timedelta(value: Any) -> Any:
    return datetime.timedelta(milliseconds=value) if isinstance(value, int) else value


def _ms_to_datetime(value: Any) -> Any:
    if isinstance(value, int):
        return datetime.datetime.fromtimestamp(value / 1000, tz=_UTC)
    return value


def _error_code(value: Any) -> Any:
    """strom's ErrorCode (or a plain int) to kio's: the one place the two enums meet."""
    return value if isinstance(value, KioErrorCode) else KioErrorCode(value)


def _uuid(value: Any) -> Any:
    return uuid.UUID(bytes=value) if isinstance(value, bytes) else value


def _converter_for(hint: Any) -> _Converter | None:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            inner = _converter_for(args[0])
            if inner is None:
                return None
            return lambda v: None if v is None else inner(v)
        return None
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if dataclasses.is_dataclass(item):
            item_cls = typing.cast(type[Any], item)
            return lambda v: tuple(build(item_cls, x) if isinstance(x, Mapping) else x for x in v)
        return lambda v: tuple(v)
    if isinstance(hint, type):
        if issubclass(hint, KioErrorCode):
            return _error_code
        if issubclass(hint, (i32Timedelta, i64Timedelta)):
            return _ms_to_timedelta
        if issubclass(hint, (TZAware, datetime.datetime)):
            return _ms_to_datetime
        if issubclass(hint, uuid.UUID):
            return _uuid
        if dataclasses.is_dataclass(hint):
            struct_cls = hint
            return lambda v: build(struct_cls, v) if isinstance(v, Mapping) else v
    return None


_PLANS: dict[type[Any], tuple[tuple[str, _Converter | None, bool], ...]] = {}


def _plan(cls: type[Any]) -> tuple[tuple[str, _Converter | None, bool], ...]:
    cached = _PLANS.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    plan = []
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        plan.append((f.name, _converter_for(hints[f.name]), required))
    _PLANS[cls] = tuple(plan)
    return _PLANS[cls]


def build(cls: type[Any], values: Mapping[str, Any]) -> Any:
    """Instantiate kio dataclass `cls` from plain values, ignoring keys this version does not have.

    A required field missing from `values` is a programming error and raises KeyError naming it.
    """
    kwargs: dict[str, Any] = {}
    for name, convert, required in _plan(cls):
        if name in values:
            value = values[name]
            kwargs[name] = convert(value) if convert is not None else value
        elif required:
            raise KeyError(f"{cls.__module__}.{cls.__qualname__} needs field {name!r}")
    return cls(**kwargs)


def encode_response(api_key: int, api_version: int, correlation_id: int, values: Mapping[str, Any]) -> bytes:
    """A complete size-prefixed response frame for the given request, from plain values (see `build`)."""
    cls = response_class(api_key, api_version)
    return encode_entity(build(cls, values), correlation_id)


def encode_entity(body: Any, correlation_id: int) -> bytes:
    """A complete size-prefixed response frame for a kio response dataclass."""
    cls = type(body)
    header_cls = cls.__header_schema__
    buf = io.BytesIO()
    buf.write(b"\0\0\0\0")
    _writer(header_cls)(buf, header_cls(correlation_id=correlation_id))
    _writer(cls)(buf, body)
    frame = buf.getbuffer()
    frame[0:4] = size_prefix(len(frame) - 4)
    del frame
    return buf.getvalue()


_HEADER_TAGGED: dict[tuple[int, int], bool] = {}


def response_header(api_key: int, api_version: int, correlation_id: int) -> bytes:
    """The response header bytes without a size prefix: v0 is the correlation id, v1 adds an empty
    tagged-field section. Which one an API version uses is read once from its schema (ApiVersions: v0)."""
    tagged = _HEADER_TAGGED.get((api_key, api_version))
    if tagged is None:
        header_cls = response_class(api_key, api_version).__header_schema__
        tagged = _HEADER_TAGGED[(api_key, api_version)] = bool(header_cls.__flexible__)
    return _CORRELATION.pack(correlation_id) + (b"\x00" if tagged else b"")


def api_versions_fallback(correlation_id: int, ranges: Mapping[int, tuple[int, int]]) -> bytes:
    """ApiVersions v0 body with UNSUPPORTED_VERSION: the answer to an ApiVersions version we cannot parse.

    Clients read it with the v0 layout whatever they sent (KIP-511) and retry with the advertised maximum.
    """
    values = {
        "error_code": ErrorCode.UNSUPPORTED_VERSION,
        "api_keys": [
            {"api_key": key, "min_version": lo, "max_version": hi} for key, (lo, hi) in sorted(ranges.items())
        ],
    }
    return encode_response(ApiKey.API_VERSIONS, 0, correlation_id, values)
