"""Reading a window of one partition's records for the message browser, and producing one from a form.

A browse reads at most `MAX_SCANNED` records per page view, whatever the filter, so a filter that matches
nothing in a huge partition costs one bounded read; the page then offers to continue from where the scan
stopped. Newest-first reads backwards in chunks from the log end (or from the given offset).
"""

from __future__ import annotations

import datetime
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from strom.console.cluster import Cluster, error_text
from strom.console.errors import ClusterError
from strom.console.registry import Registry

MAX_SCANNED = 2000
_CHUNK = 200


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    timestamp_ms: int
    key: str | None  # a registry-framed key decoded to one line of JSON (or hex), like the value
    value: str | None
    headers: list[tuple[str, str]]
    schema: str | None  # "schema 7 (JSON)" when the value was decoded through the registry

    @property
    def time(self) -> str:
        if self.timestamp_ms < 0:
            return "-"
        moment = datetime.datetime.fromtimestamp(self.timestamp_ms / 1000, tz=datetime.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Browse:
    """What the browser asked for: where to start, which way, what to keep."""

    topic: str
    partition: int
    offset: int | None = None  # first offset to show (oldest first) or last one (newest first)
    time_ms: int | None = None  # start at the first record at or after this time (oldest first)
    newest_first: bool = True
    key: str = ""
    text: str = ""
    limit: int = 50


@dataclass(frozen=True, slots=True)
class BrowsePage:
    records: list[Record]
    start: int  # the partition's log start and end offsets when read
    end: int
    scanned: int
    resume_at: int | None  # offset to continue the scan from, when it stopped before the partition's edge


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


class Records:
    """Message reads and writes for the console, over the Cluster's bootstrap servers."""

    def __init__(self, cluster: Cluster, registry: Registry | None = None) -> None:
        self.cluster = cluster
        self.registry = registry
        self._producer: Producer | None = None

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.cluster.timeout)

    def _consumer(self) -> Consumer:
        # A fresh group id that never commits: browsing must not create or move any real group's offsets.
        return Consumer(
            self.cluster.client_config(
                **{
                    "group.id": f"strom-console-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": False,
                }
            )
        )

    def browse(self, request: Browse) -> BrowsePage:
        consumer = self._consumer()
        try:
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(request.topic, request.partition), timeout=self.cluster.timeout
                )
            except KafkaException as error:
                raise ClusterError(
                    f"cannot read partition {request.partition} of {request.topic!r}: {error_text(error)}"
                ) from error
            if request.time_ms is not None:
                found = consumer.offsets_for_times(
                    [TopicPartition(request.topic, request.partition, request.time_ms)],
                    timeout=self.cluster.timeout,
                )[0].offset
                start = found if found >= 0 else high
                return self._forward(consumer, request, low, high, start)
            if request.newest_first:
                last = high - 1 if request.offset is None else min(request.offset, high - 1)
                return self._backward(consumer, request, low, high, last)
            first = low if request.offset is None else max(request.offset, low)
            return self._forward(consumer, request, low, high, first)
        finally:
            consumer.close()

    def _forward(self, consumer: Consumer, request: Browse, low: int, high: int, first: int) -> BrowsePage:
        kept: list[Record] = []
        scanned = 0
        position = first  # the next offset to look at
        while position < high and len(kept) < request.limit and scanned < MAX_SCANNED:
            chunk = self._read(consumer, request, position, min(high, position + _CHUNK))
            if not chunk:  # a range without records (compacted away): nothing to show there
                position = min(high, position + _CHUNK)
            scanned += len(chunk)
            for record in chunk:
                position = record.offset + 1
                if self._matches(record, request):
                    kept.append(record)
                    if len(kept) >= request.limit:
                        break
        return BrowsePage(kept, low, high, scanned, position if position < high else None)

    def _backward(self, consumer: Consumer, request: Browse, low: int, high: int, last: int) -> BrowsePage:
        kept: list[Record] = []
        scanned = 0
        stop = last + 1  # everything at or above this offset has been looked at
        while stop > low and len(kept) < request.limit and scanned < MAX_SCANNED:
            begin = max(low, stop - _CHUNK)
            chunk = self._read(consumer, request, begin, stop)
            scanned += len(chunk)
            stop = begin
            for record in reversed(chunk):
                if self._matches(record, request):
                    kept.append(record)
                    if len(kept) >= request.limit:
                        stop = record.offset
                        break
        return BrowsePage(kept, low, high, scanned, stop - 1 if stop > low else None)

    def _read(self, consumer: Consumer, request: Browse, begin: int, end: int) -> list[Record]:
        """The records with offsets in [begin, end), in offset order (fewer where the log has gaps).

        Waits up to the cluster timeout for the first record, then stops after a second without more:
        a range whose tail was compacted away (or holds only control batches) ends early that way.
        """
        consumer.assign([TopicPartition(request.topic, request.partition, begin)])
        records: list[Record] = []
        deadline = time.monotonic() + self.cluster.timeout
        idle = 0
        while time.monotonic() < deadline and idle < 2:
            messages = consumer.consume(num_messages=min(500, end - begin), timeout=0.5)
            idle = idle + 1 if not messages and records else 0
            for message in messages:
                if message.error() is not None:
                    raise ClusterError(f"cannot read {request.topic!r}: {message.error().str()}")
                if message.offset() >= end:
                    return records
                records.append(self._record(message))
            if records and records[-1].offset >= end - 1:
                break
        return records

    def _record(self, message: Any) -> Record:
        value: bytes | None = message.value()
        schema = None
        shown = _text(value)
        if self.registry is not None and value is not None:
            decoded = self.registry.decode(value)
            if decoded is not None:
                schema, shown = decoded
        elif shown is not None:
            shown = _pretty(shown)
        key: bytes | None = message.key()
        shown_key = _text(key)
        if self.registry is not None and key is not None:
            decoded_key = self.registry.decode(key, indent=None)
            if decoded_key is not None:
                shown_key = decoded_key[1]
        headers = [(name, _text(data) or "") for name, data in (message.headers() or [])]
        return Record(message.offset(), message.timestamp()[1], shown_key, shown, headers, schema)

    @staticmethod
    def _matches(record: Record, request: Browse) -> bool:
        if request.key and request.key not in (record.key or ""):
            return False
        return not request.text or request.text in (record.value or "") or request.text in (record.key or "")

    def produce(
        self, topic: str, partition: int | None, key: str | None, value: str, headers: list[tuple[str, str]]
    ) -> tuple[int, int]:
        """Send one record and wait for its acknowledgement; returns (partition, offset)."""
        if self._producer is None:
            self._producer = Producer(self.cluster.client_config(**{"linger.ms": 0}))
        outcome: dict[str, Any] = {}

        def delivered(error: Any, message: Any) -> None:
            outcome["error"], outcome["message"] = error, message

        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        try:
            self._producer.produce(
                topic,
                value=value.encode(),
                key=None if key is None else key.encode(),
                headers=[(name, data.encode()) for name, data in headers],
                on_delivery=delivered,
                **extra,
            )
        except (KafkaException, BufferError) as error:
            raise ClusterError(f"cannot produce to {topic!r}: {error_text(error)}") from error
        self._producer.flush(self.cluster.timeout)
        if "message" not in outcome:
            raise ClusterError(f"no acknowledgement from {topic!r} within {self.cluster.timeout:g} s")
        if outcome["error"] is not None:
            raise ClusterError(f"cannot produce to {topic!r}: {outcome['error'].str()}")
        message = outcome["message"]
        return message.partition(), message.offset()


def _pretty(text: str) -> str:
    """JSON values indented for reading; anything else as it is."""
    if text[:1] not in ("{", "["):
        return text
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text
