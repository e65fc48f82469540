"""A running console: the cluster client, the records reader and the HTTP site, started and stopped together.

`strom console` runs one on its own; `strom broker --console-listen` and `EmbeddedBroker(console_listen=)` run
one beside the broker, started once the broker (and its registry, when there is one) accepts connections and
stopped before them, as the console is the broker's client like any other.
"""

from __future__ import annotations

from strom.console.cluster import Cluster
from strom.console.records import Records
from strom.console.registry import Registry
from strom.console.web import Console
from strom.http_site import HttpSite


class ConsoleServer(HttpSite):
    """Serves the console for `bootstrap` on host:port (0 picks a free one); `url` is right once started."""

    def __init__(
        self, bootstrap: str, host: str, port: int, registry: str | None = None, timeout: float = 10.0
    ) -> None:
        super().__init__(host, port)
        self.cluster = Cluster(bootstrap, timeout)
        self.records = Records(self.cluster, Registry(registry) if registry else None)

    async def start(self) -> None:
        """Serve; raises OSError when the address cannot be bound (the cluster need not be up)."""
        await self._start_site(Console(self.cluster, self.records).app())

    async def stop(self) -> None:
        try:
            await self._stop_site()
        finally:
            self.records.close()
