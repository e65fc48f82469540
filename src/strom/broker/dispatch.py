"""What a Kafka API handler is, what it is given, and what it may return.

The table of which handler answers which API at which versions is `strom.broker.handlers.HANDLERS`; this
module holds the types that table and every handler share, and nothing that imports the broker itself, so
that handlers, the table and the server depend on it without a cycle.

Handler contract:
- A handler is `async def handler(ctx: RequestContext, request) -> Mapping | RawResponse | None` where
  `request` is the kio request dataclass of `ctx.api_version`. Return the response as plain values (see
  `strom.protocol.codec.build`: ErrorCode members for error codes, milliseconds for durations, dicts/lists for
  nested structs; fields a version lacks are dropped, missing fields with defaults are defaulted). Return
  None to send no response (Produce with acks=0). Handlers on one connection run one at a time in arrival
  order, so a handler that awaits (a long poll, a rebalance) delays later requests of that connection only.
- A handler reaches the broker only through `ctx.broker`, typed as `BrokerServices`: the partition logs,
  the topic registry and its changes, the group coordinator, the configuration and the advertised address.
- A handler must not raise for bad client input: answer with the Kafka error code. `CloseConnection` ends
  the connection without an answer; any other exception escaping a handler is logged as a bug and closes
  that client's connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from strom.broker.config import BrokerConfig
from strom.broker.coordinator.group import GroupCoordinator
from strom.broker.errors import BrokerError
from strom.broker.metrics import BrokerMetrics
from strom.broker.producer_ids import ProducerIdAllocator
from strom.broker.topics import TopicInfo, TopicRegistry
from strom.broker.waiters import AppendWaiters
from strom.log.partition import Partition
from strom.protocol.framing import Part


class BrokerServices(Protocol):
    """What handlers may use of the broker (`strom.broker.server.Broker` provides it)."""

    config: BrokerConfig
    topics: TopicRegistry
    waiters: AppendWaiters
    producer_ids: ProducerIdAllocator
    groups: GroupCoordinator
    metrics: BrokerMetrics
    node_id: int
    advertised_host: str
    advertised_port: int

    def partition(self, topic: str, index: int) -> Partition | None: ...

    def advertised_versions(self) -> Mapping[int, tuple[int, int]]: ...

    def topic_busy(self, name: str) -> bool: ...

    def validate_topic_configs(self, overrides: dict[str, str]) -> None: ...

    def create_topic(
        self, name: str, partitions: int, configs: dict[str, str], internal: bool = False
    ) -> TopicInfo: ...

    async def create_topic_async(self, name: str, partitions: int, configs: dict[str, str]) -> TopicInfo: ...

    async def delete_topic_async(self, name: str) -> None: ...

    async def add_partitions_async(self, name: str, count: int) -> None: ...

    def alter_topic_configs(self, name: str, overrides: dict[str, str]) -> None: ...


@dataclass(frozen=True)
class RequestContext:
    """What a handler knows about the request besides its body."""

    broker: BrokerServices
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    client_host: str


class CloseConnection(BrokerError):
    """Raised by a handler to end the client's connection without a response (Produce acks=0 errors)."""


@dataclass(frozen=True)
class RawResponse:
    """A response body already encoded by the handler (Fetch), sent after the response header as-is.

    Parts are bytes, or file regions (a `strom.log` LogSlice) that the server sends with sendfile.
    """

    parts: list[Part]


Response = Mapping[str, Any] | RawResponse
Handler = Callable[[RequestContext, Any], Awaitable[Response | None]]


@dataclass(frozen=True)
class ApiSpec:
    """One row of the handler table: the versions served and the handler that serves them.

    `min_version`/`max_version` must be versions the codec (kio) can decode. `advertise_min` lets an API
    advertise a lower minimum than it serves (Produce advertises 0 for old librdkafka, serves 3+): a request
    below `min_version` closes the connection, as in Kafka 4.
    """

    min_version: int
    max_version: int
    handler: Handler
    advertise_min: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_version <= self.max_version:
            raise ValueError(f"bad version range {self.min_version}..{self.max_version}")

    @property
    def advertised_min(self) -> int:
        return self.min_version if self.advertise_min is None else self.advertise_min
