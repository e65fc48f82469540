"""Well-formed but arbitrary requests of every API and version the broker advertises: it answers each one
with the request's correlation id, or closes the connection; it never logs a handler bug.

Structure-aware where `test_broker_fuzz` mutates bytes: hypothesis builds each request from kio's request
dataclasses (`st.from_type`), so every request decodes and reaches its handler with values a parser-level
fuzzer rarely reaches (null names, unknown ids, duplicate entries, boundary integers). Names are drawn
mostly from things that exist (topic "t", group "g") so handlers go past their first lookup.

Quantities that would make the broker do real work for a long time are kept small (`_tame`): partition
counts to create and waiting times; everything else is as hypothesis draws it. `make fuzz` runs the same
test with many more examples (STROM_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import logging
import os
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.index import UnknownEntity, load_request_schema
from kio.schema.types import GroupId, TopicName
from kio.serial import entity_writer
from kio.static.primitive import Records

from strom.broker import EmbeddedBroker
from strom.protocol.api_keys import ApiKey
from strom.protocol.codec import build
from strom.protocol.records import BatchBuilder
from tests.support.wire import WireClient

EXAMPLES = int(os.environ.get("STROM_FUZZ_EXAMPLES", "400"))
# Each request must be answered (or its connection closed) within this time.
ANSWER_TIMEOUT_S = 10.0
MAX_NEW_PARTITIONS = 3
MAX_WAIT = datetime.timedelta(milliseconds=50)
PARTITION_COUNT_FIELDS = frozenset({"num_partitions", "count"})


def _batch() -> bytes:
    builder = BatchBuilder()
    builder.append(key=b"k", value=b"v", timestamp=int(time.time() * 1000))
    return builder.build()


def _names(*existing: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(existing), st.text(max_size=12))


def _register_kio_strategies() -> None:
    """Register kio's strategy for each of its value types: kio does so only when hypothesis was imported
    before it, and strom.protocol imports kio without it (see strom.protocol.codec)."""
    from kio.static._phantom import Phantom

    pending: list[type[Any]] = [Phantom]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        cls.__hypothesis_hook__()


_register_kio_strategies()
# Records fields: a valid batch, or bytes that are not one. Names: mostly ones the broker knows.
st.register_type_strategy(Records, st.one_of(st.just(Records(_batch())), st.binary(max_size=80).map(Records)))
st.register_type_strategy(TopicName, _names("t", "__consumer_offsets", ""))
st.register_type_strategy(GroupId, _names("g", ""))


def _tame(value: Any) -> Any:
    """The request with partition counts to create and waiting times capped (see the module docstring)."""
    if isinstance(value, tuple):
        return tuple(_tame(v) for v in value)
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return value
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(value):
        old = getattr(value, field.name)
        new = _tame(old)
        if isinstance(new, datetime.timedelta) and new > MAX_WAIT:
            new = MAX_WAIT
        elif field.name in PARTITION_COUNT_FIELDS and isinstance(new, int):
            new = type(new)(min(new, MAX_NEW_PARTITIONS))
        if new is not old:
            changes[field.name] = new
    return dataclasses.replace(value, **changes) if changes else value


def _request(api_key: int, version: int) -> st.SearchStrategy[Any]:
    return st.from_type(load_request_schema(api_key, version)).map(_tame)


def _frame(api_key: int, version: int, correlation_id: int, body: Any) -> bytes:
    cls = type(body)
    header_cls = cls.__header_schema__  # the body's, even when `version` has no schema of its own
    header = header_cls(
        request_api_key=api_key, request_api_version=version, correlation_id=correlation_id, client_id="fuzz"
    )
    buf = io.BytesIO()
    entity_writer(header_cls)(buf, header)
    entity_writer(cls)(buf, body)
    payload = buf.getvalue()
    return struct.pack(">i", len(payload)) + payload


class _Prober:
    """One connection to the broker, reopened after the broker closes it."""

    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self._address = (host, int(port))
        self._sock: socket.socket | None = None
        self._correlation = 0
        self.closed = 0

    def send(self, api_key: int, version: int, body: Any) -> None:
        """Send one request; return once it is answered or the connection is closed."""
        self._correlation += 1
        frame = _frame(api_key, version, self._correlation, body)
        if self._sock is None:
            self._sock = socket.create_connection(self._address, timeout=ANSWER_TIMEOUT_S)
        sock = self._sock
        try:
            sock.sendall(frame)
            if api_key == ApiKey.PRODUCE and getattr(body, "acks", 1) == 0:
                return  # no answer by design (the next request's answer shows the connection still works)
            size = struct.unpack(">i", _read(sock, 4))[0]
            answer = _read(sock, size)
        except (ConnectionError, EOFError):
            self.reset()
            self.closed += 1
            return
        assert struct.unpack_from(">i", answer)[0] == self._correlation, (api_key, version)

    def reset(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _read(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        try:
            chunk = sock.recv(n)
        except TimeoutError:
            raise AssertionError(f"no answer and no close within {ANSWER_TIMEOUT_S} s") from None
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(num_partitions=2, group_initial_rebalance_delay_ms=0) as b:
        with WireClient(b.bootstrap_servers) as client:
            client.call(
                ApiKey.METADATA,
                9,
                {
                    "topics": [{"name": "t"}],
                    "allow_auto_topic_creation": True,
                    "include_topic_authorized_operations": False,
                    "include_cluster_authorized_operations": False,
                },
            )
        yield b


@pytest.fixture(scope="module")
def prober(broker: EmbeddedBroker) -> Iterator[_Prober]:
    p = _Prober(broker.bootstrap_servers)
    yield p
    p.reset()


@pytest.fixture(scope="module")
def handler_errors(broker: EmbeddedBroker) -> Iterator[list[logging.LogRecord]]:
    """ERROR records of strom.broker (a handler bug is logged as "... after an internal error")."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(logging.ERROR)
    logger = logging.getLogger("strom.broker")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def _advertised(broker: EmbeddedBroker) -> list[tuple[int, int]]:
    versions: dict[int, tuple[int, int]] = broker.call(lambda b: dict(b.advertised_versions()))
    return [(key, v) for key, (low, high) in sorted(versions.items()) for v in range(low, high + 1)]


def _has_schema(api_key: int, version: int) -> bool:
    try:
        load_request_schema(api_key, version)
    except UnknownEntity:
        return False
    return True


def test_advertised_versions_without_a_request_schema_close_the_connection(
    broker: EmbeddedBroker, prober: _Prober, handler_errors: list[logging.LogRecord]
) -> None:
    # Produce v0-2: advertised as Kafka 4 does for old clients' sake, refused when sent (no codec schema)
    missing = [(k, v) for k, v in _advertised(broker) if not _has_schema(k, v)]
    assert missing == [(ApiKey.PRODUCE, v) for v in range(3)]
    for api_key, version in missing:
        body = build(
            load_request_schema(api_key, 3),
            {"transactional_id": None, "acks": 1, "timeout": 100, "topic_data": []},
        )
        before = prober.closed
        prober.send(api_key, version, body)
        assert prober.closed == before + 1
    assert [r.getMessage() for r in handler_errors] == []


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    database=None,
)
@given(data=st.data())
def test_well_formed_requests_are_answered_or_closed_never_crash_a_handler(
    data: st.DataObject,
    broker: EmbeddedBroker,
    prober: _Prober,
    handler_errors: list[logging.LogRecord],
) -> None:
    decodable = [(k, v) for k, v in _advertised(broker) if _has_schema(k, v)]
    api_key, version = data.draw(st.sampled_from(decodable), label="api")
    body = data.draw(_request(api_key, version), label="request")
    prober.send(api_key, version, body)
    assert [r.getMessage() for r in handler_errors] == []
    handler_errors.clear()
