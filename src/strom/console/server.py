"""A running console: the cluster client, the records reader and the HTTP site, started and stopped together.

`strom console` runs one on its own; `strom broker --console-listen` and `EmbeddedBroker(console_listen=)` run
one beside the broker, started once the broker (and its registry, when there is one) accepts connections and
stopped before them, as the console is the broker's client like any other.
"""

from __future__ import annotations

from aiohttp import web

from strom.console.cluster import Cluster
from strom.console.records import Records
from strom.console.registry import Registry
from strom.console.web import Console, serve_console


class ConsoleServer:
    """Serves the console for `bootstrap` on host:port (0 picks a free one); `url` is right once started."""

    def __init__(
        self, bootstrap: str, host: str, port: int, registry: str | None = None, timeout: float = 10.0
    ) -> None:
        self.host = host
        self.port = port
        self.cluster = Cluster(bootstrap, timeout)
        self.records = Records(self.cluster, Registry(registry) if registry else None)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    async def start(self) -> None:
        """Serve; raises OSError when the address cannot be bound (the cluster need not be up)."""
        self._runner, self.port = await serve_console(
            Console(self.cluster, self.records), self.host, self.port
        )

    async def stop(self) -> None:
        try:
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None
        finally:
            self.records.close()
