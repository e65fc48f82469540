"""A running registry: the `_schemas` topic reader plus the REST app, started and stopped on one asyncio loop.

`strom registry` runs one on its own; `strom broker --registry-listen` and `EmbeddedBroker(registry_listen=)`
run one beside the broker, started once the broker accepts connections (the registry is the broker's client
like any other) and stopped before it.
"""

from __future__ import annotations

import asyncio

from strom.http_site import HttpSite
from strom.registry.app import RegistryApp
from strom.registry.service import SchemaRegistry
from strom.registry.store import DEFAULT_TOPIC, SchemasTopic


class RegistryServer(HttpSite):
    """Owns the topic's reader thread and the HTTP site; `url` is set once `start()` has returned."""

    def __init__(
        self, bootstrap: str, host: str, port: int, topic: str = DEFAULT_TOPIC, timeout: float = 30.0
    ) -> None:
        super().__init__(host, port)
        self._topic = SchemasTopic(bootstrap, topic, timeout)

    async def start(self) -> None:
        """Read the topic to its end, then serve; raises RegistryError (cluster) or OSError (address)."""
        await asyncio.to_thread(self._topic.start)
        try:
            await self._start_site(RegistryApp(SchemaRegistry(self._topic)).build())
        except BaseException:
            await asyncio.to_thread(self._topic.close)
            raise

    async def stop(self) -> None:
        try:
            await self._stop_site()
        finally:
            await asyncio.to_thread(self._topic.close)
