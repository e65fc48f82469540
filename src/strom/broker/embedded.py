"""Run a broker inside the current process, for tests and applications: `with EmbeddedBroker() as b: ...`.

The broker gets its own event loop on a daemon thread, so it works from synchronous code and from code that
runs its own asyncio loop, and binds a free port on 127.0.0.1. Without `data_dir` it uses a temporary
directory removed on exit. With `registry_listen="127.0.0.1:0"` it also serves a schema registry (see
strom.registry.server) on that loop, started once the broker accepts connections and stopped before it.
With `console_listen="127.0.0.1:0"` it serves the web console there too, after the registry (decoding
through it) and stopped first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from strom.broker.config import BrokerConfig
from strom.broker.metrics import METRICS_PATH
from strom.broker.server import Broker

if TYPE_CHECKING:
    from strom.console.server import ConsoleServer
    from strom.registry.server import RegistryServer

_START_TIMEOUT_S = 30.0

# What runs beside the broker on its loop: the registry and the console, each when asked for.
_Beside = tuple["RegistryServer | None", "ConsoleServer | None"]


def _address(name: str, value: str | None) -> tuple[str, int] | None:
    """ "HOST:PORT" (IPv6 as "[::1]:0") -> (host, port); ValueError naming the argument otherwise."""
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{name} expects HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


class EmbeddedBroker:
    """An in-process broker on a free port.

    Config keys are Kafka's with dots replaced by underscores (`num_partitions=3`), or a mapping with the
    dotted keys as the single positional-or-keyword `config`. Unknown keys raise ConfigError at construction.
    `stop()` then `start()` restarts it on the same data directory and port, as a process restart would.
    `metrics_port` serves Prometheus metrics on 127.0.0.1 at that port (0: a free one; see `metrics_url`).
    `registry_listen` ("HOST:PORT", port 0 for a free one) adds a schema registry at `registry_url`, and
    `console_listen` the web console at `console_url`.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        metrics_port: int | None = None,
        registry_listen: str | None = None,
        console_listen: str | None = None,
        **kw: Any,
    ):
        values: dict[str, Any] = dict(config or {})
        values.update({key.replace("_", "."): value for key, value in kw.items()})
        self.config = BrokerConfig(values, strict=True)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="strom-broker-")
            data_dir = self._tmp.name
        self.data_dir = Path(data_dir)
        self._port = 0
        self._metrics_port = metrics_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.broker: Broker | None = None
        self.registry: RegistryServer | None = None
        self.console: ConsoleServer | None = None
        self._registry_listen = _address("registry_listen", registry_listen)
        self._console_listen = _address("console_listen", console_listen)

    @property
    def bootstrap_servers(self) -> str:
        """ "127.0.0.1:PORT" of the running broker."""
        if self.broker is None:
            raise RuntimeError("the embedded broker is not running")
        return f"{self.broker.advertised_host}:{self.broker.advertised_port}"

    @property
    def registry_url(self) -> str:
        """ "http://127.0.0.1:PORT" of the running registry (needs `registry_listen`)."""
        if self.registry is None:
            raise RuntimeError("the embedded broker runs no registry (give it registry_listen) or is stopped")
        return self.registry.url

    @property
    def console_url(self) -> str:
        """ "http://127.0.0.1:PORT" of the running console (needs `console_listen`)."""
        if self.console is None:
            raise RuntimeError("the embedded broker runs no console (give it console_listen) or is stopped")
        return self.console.url

    @property
    def port(self) -> int:
        return self._port

    @property
    def metrics_url(self) -> str:
        """ "http://127.0.0.1:PORT/metrics" of the running broker's Prometheus endpoint."""
        endpoint = self.broker.metrics_endpoint if self.broker is not None else None
        if endpoint is None:
            raise RuntimeError("the embedded broker is not running with metrics_port")
        return f"http://{endpoint.host}:{endpoint.port}{METRICS_PATH}"

    def start(self) -> EmbeddedBroker:
        """Start the broker and return once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the embedded broker is already running")
        loop = asyncio.new_event_loop()
        metrics = ("127.0.0.1", self._metrics_port) if self._metrics_port is not None else None
        broker = Broker(self.data_dir, self.config, "127.0.0.1", self._port, metrics)
        ready: concurrent.futures.Future[_Beside] = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                beside = loop.run_until_complete(self._start_on_loop(broker))
            except BaseException as exc:
                ready.set_exception(exc)
                loop.close()
                return
            ready.set_result(beside)
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="strom-embedded-broker", daemon=True)
        self._thread.start()
        try:
            registry, console = ready.result(_START_TIMEOUT_S)
        except BaseException:
            self._thread.join(_START_TIMEOUT_S)
            self._thread = None
            raise
        self._loop, self.broker, self.registry, self.console = loop, broker, registry, console
        self._port = broker.listen_port
        if broker.metrics_endpoint is not None:  # a restart serves metrics on the same port
            self._metrics_port = broker.metrics_endpoint.port
        return self

    async def _start_on_loop(self, broker: Broker) -> _Beside:
        """Start the broker, then the registry and the console as its clients; a failure stops the rest."""
        await broker.start()
        registry = console = None
        try:
            if self._registry_listen is not None:
                from strom.registry.server import RegistryServer

                server = RegistryServer(
                    f"{broker.advertised_host}:{broker.advertised_port}", *self._registry_listen
                )
                await server.start()  # one that fails has closed what it opened
                registry = server
                # A restart keeps the registry's port, as it keeps the broker's.
                self._registry_listen = (registry.host, registry.port)
            if self._console_listen is not None:
                from strom.console.server import ConsoleServer

                console = ConsoleServer(
                    f"{broker.advertised_host}:{broker.advertised_port}",
                    *self._console_listen,
                    registry=registry.url if registry is not None else None,
                )
                try:
                    await console.start()
                except BaseException:
                    await console.stop()
                    raise
                self._console_listen = (console.host, console.port)
        except BaseException:
            try:
                if registry is not None:
                    await registry.stop()
            finally:
                await broker.stop()
            raise
        return registry, console

    def stop(self) -> None:
        """Stop the broker cleanly (flush, clean-shutdown marker); the data directory is kept."""
        if self._loop is None or self._thread is None or self.broker is None:
            return
        loop, broker, registry, console = self._loop, self.broker, self.registry, self.console
        try:
            for beside in (console, registry):
                if beside is not None:
                    asyncio.run_coroutine_threadsafe(beside.stop(), loop).result(_START_TIMEOUT_S)
        finally:
            try:
                asyncio.run_coroutine_threadsafe(broker.stop(), loop).result(_START_TIMEOUT_S)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                self._thread.join(_START_TIMEOUT_S)
                self._loop = self._thread = self.broker = self.registry = self.console = None

    def close(self) -> None:
        """Stop, and remove the data directory if it is a temporary one."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn(broker, *args)` on the broker's loop and return its result (for tests and tools)."""
        if self._loop is None or self.broker is None:
            raise RuntimeError("the embedded broker is not running")
        broker = self.broker

        async def run() -> Any:
            return fn(broker, *args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(_START_TIMEOUT_S)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
