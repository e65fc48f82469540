"""A running registry: the `_schemas` topic reader plus the REST app, started and stopped on one asyncio loop.

`strom registry` runs one on its own; `strom broker --registry-listen` and `EmbeddedBroker(registry_listen=)`
run one beside the broker, started once the broker accepts connections (the registry is the broker's client
like any other) and stopped before it.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from strom.registry.app import serve_registry
from strom.registry.service import SchemaRegistry
from strom.registry.store import DEFAULT_TOPIC, SchemasTopic


class RegistryServer:
    """Owns the topic's reader thread and the HTTP site; `url` is set once `start()` has returned."""

    def __init__(
        self, bootstrap: str, host: str, port: int, topic: str = DEFAULT_TOPIC, timeout: float = 30.0
    ) -> None:
        self.host = host
        self.port = port
        self._topic = SchemasTopic(bootstrap, topic, timeout)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    async def start(self) -> None:
        """Read the topic to its end, then serve; raises RegistryError (cluster) or OSError (address)."""
        await asyncio.to_thread(self._topic.start)
        try:
            self._runner, self.port = await serve_registry(SchemaRegistry(self._topic), self.host, self.port)
        except BaseException:
            await asyncio.to_thread(self._topic.close)
            raise

    async def stop(self) -> None:
        try:
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None
        finally:
            await asyncio.to_thread(self._topic.close)
