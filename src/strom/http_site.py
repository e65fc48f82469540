"""An aiohttp application served on one host:port, the part the console and schema registry servers share.

Its own module because neither `strom.console` nor `strom.registry` imports the other: each server subclasses
`HttpSite` for its bound address, its URL and its site's start and cleanup, and adds what it owns besides.
"""

from __future__ import annotations

from aiohttp import web


class HttpSite:
    """Serves an app on host:port (0 picks a free one); `port` and `url` are right once it has started."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    async def _start_site(self, app: web.Application) -> None:
        """Serve `app`; raises OSError when the address cannot be bound."""
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def _stop_site(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
