"""Which handler answers which Kafka API, and at which versions: the one table of supported versions.

Registration contract (for every API family module in `strom.broker.api`):

- A module listed in `API_MODULES` defines `install(broker: Broker) -> None`. The broker imports and calls it
  once at start-up, after the data directory and logs are open and before the listener accepts connections.
- `install` calls `broker.dispatcher.register(api_key, min_version, max_version, handler)` for each API it
  serves, and may keep per-broker state (a coordinator) in a closure or on an object it creates. It may also
  use:
    * `broker.add_ticker(interval_s, fn)`: call `fn()` (sync or async) every `interval_s` on the event loop,
      for timeouts (sessions, rebalances, expiry). Exceptions are logged, never stop the ticker.
    * `broker.on_stop(fn)`: `fn()` (sync or async) runs at shutdown before the logs are closed.
    * `broker.ensure_internal_topic(name, partitions, configs)`: create (once) and return an internal topic,
      e.g. `__consumer_offsets` with `{"cleanup.policy": "compact", "segment.bytes": ...}`; its partition
      count is fixed at creation (later changes of `offsets.topic.num.partitions` do not apply).
    * `broker.partition(topic, index)`: the `strom.log` partition, to append record batches and read them.
    * `broker.on_topic_deleted(fn)`: `fn(topic_name)` runs after DeleteTopics removed a topic.
    * `broker.node_id`, `broker.advertised_host`, `broker.advertised_port`: for FindCoordinator.
    * `broker.config`: a `BrokerConfig` (`broker.config.int("group.min.session.timeout.ms")`).
- A handler is `async def handler(ctx: RequestContext, request) -> Mapping | RawResponse | None` where
  `request` is the kio request dataclass of `ctx.api_version`. Return the response as plain values (see
  `strom.protocol.codec.build`: ints for error codes, milliseconds for durations, dicts/lists for nested
  structs; fields a version lacks are dropped, missing fields with defaults are defaulted). Return None to
  send no response (Produce with acks=0). Handlers on one connection run one at a time in arrival order, so
  a handler that awaits (a long poll, a rebalance) delays later requests of that connection only.
- A handler must not raise for bad client input: answer with the Kafka error code. `CloseConnection` ends
  the connection without an answer; any other exception escaping a handler is logged as a bug and closes
  that client's connection.
- `min_version`/`max_version` must be versions the codec (kio) can decode. `advertise_min` lets an API
  advertise a lower minimum than it serves (Produce advertises 0 for old librdkafka, serves 3+): a request
  below `min_version` closes the connection, as in Kafka 4.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strom.protocol.framing import Part

if TYPE_CHECKING:
    from strom.broker.server import Broker

# One module per API family, in strom.broker.api.
API_MODULES: tuple[str, ...] = (
    "apiversions",
    "metadata",
    "produce",
    "fetch",
    "offsets",
    "idempotence",
    "admin",
    "groups",
)


@dataclass(frozen=True)
class RequestContext:
    """What a handler knows about the request besides its body."""

    broker: Broker
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    client_host: str


class CloseConnection(Exception):
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
    api_key: int
    min_version: int
    max_version: int
    advertise_min: int
    handler: Handler


class Dispatcher:
    """The api_key -> handler table. Invariant: one handler per key; ranges lie within what kio decodes."""

    def __init__(self) -> None:
        self._specs: dict[int, ApiSpec] = {}

    def register(
        self,
        api_key: int,
        min_version: int,
        max_version: int,
        handler: Handler,
        advertise_min: int | None = None,
    ) -> None:
        if api_key in self._specs:
            raise ValueError(f"api_key {api_key} already has a handler")
        if not 0 <= min_version <= max_version:
            raise ValueError(f"bad version range {min_version}..{max_version} for api_key {api_key}")
        lo = min_version if advertise_min is None else advertise_min
        self._specs[api_key] = ApiSpec(api_key, min_version, max_version, lo, handler)

    def spec(self, api_key: int) -> ApiSpec | None:
        return self._specs.get(api_key)

    def advertised(self) -> dict[int, tuple[int, int]]:
        """api_key -> (min, max) as sent in ApiVersions."""
        return {k: (s.advertise_min, s.max_version) for k, s in sorted(self._specs.items())}


def install_all(broker: Broker) -> None:
    """Import every API family module and let it register its handlers."""
    for name in API_MODULES:
        importlib.import_module(f"strom.broker.api.{name}").install(broker)
