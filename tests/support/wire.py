"""A raw Kafka-protocol client for broker tests: exact frames in, decoded responses out, no client library."""

from __future__ import annotations

import io
import socket
import struct
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from strom.protocol.codec import build


def request_frame(
    api_key: int, version: int, correlation_id: int, body: dict[str, Any], client_id: str = "t"
) -> bytes:
    cls = load_request_schema(api_key, version)
    header_cls = cls.__header_schema__
    header = header_cls(
        request_api_key=api_key,
        request_api_version=version,
        correlation_id=correlation_id,
        client_id=client_id,
    )
    buf = io.BytesIO()
    entity_writer(header_cls)(buf, header)
    entity_writer(cls)(buf, build(cls, body))
    payload = buf.getvalue()
    return struct.pack(">i", len(payload)) + payload


class WireClient:
    """One TCP connection; `call` sends a request and decodes the response of the same version."""

    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._corr = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> bytes:
        size = struct.unpack(">i", self._read_exactly(4))[0]
        return self._read_exactly(size)

    def _read_exactly(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def is_closed_by_peer(self) -> bool:
        """True when the broker has closed the connection (reads EOF or a reset within the timeout)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def call(self, api_key: int, version: int, body: dict[str, Any]) -> Any:
        self._corr += 1
        self.send(request_frame(api_key, version, self._corr, body))
        return decode_response(api_key, version, self.read_frame(), self._corr)


def decode_response(api_key: int, version: int, frame: bytes, correlation_id: int | None = None) -> Any:
    cls = load_response_schema(api_key, version)
    header, used = entity_reader(cls.__header_schema__)(frame, 0)
    if correlation_id is not None:
        assert header.correlation_id == correlation_id
    body, _ = entity_reader(cls)(frame, used)
    return body
