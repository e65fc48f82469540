"""`strom broker`: run a broker in the foreground until SIGTERM or Ctrl-C.

Prints exactly one line, `strom broker ready on HOST:PORT`, once connections are accepted, so scripts can
wait for it. SIGTERM and SIGINT stop it cleanly: connections close, logs are flushed and the clean-shutdown
marker is written. With `--registry-listen HOST:PORT` it also serves a schema registry (stored in the
`_schemas` topic, as `strom registry` does), started once the broker accepts connections and announced by a
second line, `strom registry ready on http://HOST:PORT`; it stops before the broker does. With
`--console-listen HOST:PORT` it serves the web console (docs/console.md) the same way, after the registry when
both are asked (the console then decodes values through it), announced by `strom console ready on
http://HOST:PORT` and stopped first.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import shutil
import signal
import sys
from pathlib import Path

from strom.broker.config import BrokerConfig, ConfigError, KeyPolicy, warn_ignored

DEFAULT_LISTEN = ("127.0.0.1", 9092)
DEFAULT_DATA_DIR = Path("strom-data")


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:9092`) -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def listen_from_config(config: BrokerConfig) -> tuple[str, int]:
    """The first non-controller entry of a Kafka `listeners` value (`PLAINTEXT://host:port,...`)."""
    for entry in (config.raw("listeners") or "").split(","):
        name, sep, address = entry.strip().partition("://")
        if sep and not name.upper().startswith("CONTROLLER"):
            return parse_listen(address)
    return DEFAULT_LISTEN


def data_dir_from_config(config: BrokerConfig) -> Path:
    """The first entry of Kafka's `log.dirs` (or `log.dir`); strom uses one data directory."""
    dirs = config.raw("log.dirs") or config.raw("log.dir")
    return Path(dirs.split(",")[0].strip()) if dirs else DEFAULT_DATA_DIR


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("broker", help="run a Kafka-protocol broker", description=__doc__)
    parser.add_argument(
        "--data-dir", type=Path, help="default: the config's log.dirs (first entry), else ./strom-data"
    )
    parser.add_argument(
        "--listen",
        type=parse_listen,
        metavar="HOST:PORT",
        help="default: the config's listeners (first non-controller entry), else 127.0.0.1:9092",
    )
    parser.add_argument(
        "--metrics-listen",
        type=parse_listen,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (docs/metrics.md); default: not served",
    )
    parser.add_argument("--config", type=Path, help="a Kafka-style server.properties file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a broker config, e.g. num.partitions=3",
    )
    parser.add_argument(
        "--lenient-config",
        action="store_true",
        help="start even with configuration keys Kafka does not know (they are ignored, with a warning)",
    )
    parser.add_argument(
        "--registry-listen",
        type=parse_listen,
        metavar="HOST:PORT",
        help="also serve a schema registry here (port 0 picks a free one)",
    )
    parser.add_argument(
        "--console-listen",
        type=parse_listen,
        metavar="HOST:PORT",
        help="also serve the web console here (port 0 picks a free one)",
    )
    parser.set_defaults(func=run)


class ConsoleListenError(OSError):
    """The console's address could not be bound: named apart from the broker's, whose data is then removed."""

    def __init__(self, host: str, port: int, exc: OSError) -> None:
        super().__init__(exc.errno, exc.strerror or str(exc))
        self.host, self.port = host, port


def data_dir_problem(data_dir: Path) -> str | None:
    """Why `data_dir` cannot be the data directory, in the user's terms, or None if it can be."""
    for path in (data_dir, *data_dir.parents):
        if path.is_dir():
            return None
        if path == data_dir and path.exists():
            return f"the data directory {data_dir} is a file, not a directory"
        if path.exists():
            return f"{path} (a parent of the data directory {data_dir}) is a file, not a directory"
    return None


def first_missing(data_dir: Path) -> Path | None:
    """The outermost directory of `data_dir`'s path that does not exist yet (what a start would create)."""
    missing = None
    for path in (data_dir, *data_dir.parents):
        if path.exists():
            return missing
        missing = path
    return missing


def remove_created(data_dir: Path, created_root: Path | None, existing: set[str]) -> None:
    """Undo a failed start: remove the directories it made, or the entries it added to an existing one."""
    if created_root is not None:
        shutil.rmtree(created_root, ignore_errors=True)
        return
    for entry in data_dir.iterdir():
        if entry.name not in existing:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


async def serve(
    data_dir: Path,
    config: BrokerConfig,
    host: str,
    port: int,
    started: asyncio.Event,
    metrics_listen: tuple[str, int] | None = None,
    registry_listen: tuple[str, int] | None = None,
    console_listen: tuple[str, int] | None = None,
) -> int:
    from strom.broker.server import Broker

    broker = Broker(data_dir, config, host, port, metrics_listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    started.set()
    shown = f"[{host}]" if ":" in host else host
    print(f"strom broker ready on {shown}:{broker.listen_port}", flush=True)
    if broker.metrics_endpoint is not None:
        endpoint = broker.metrics_endpoint
        print(f"strom broker metrics on http://{endpoint.host}:{endpoint.port}/metrics", flush=True)
    bootstrap = f"{broker.advertised_host}:{broker.advertised_port}"
    if ":" in broker.advertised_host:
        bootstrap = f"[{broker.advertised_host}]:{broker.advertised_port}"
    try:
        if registry_listen is None:
            await serve_console_beside(bootstrap, console_listen, None, stop)
            return 0
        return await serve_registry_beside(bootstrap, registry_listen, console_listen, stop)
    finally:
        await broker.stop()


async def serve_console_beside(
    bootstrap: str, listen: tuple[str, int] | None, registry_url: str | None, stop: asyncio.Event
) -> None:
    """Serve the console (when `listen` is given) until `stop`; ConsoleListenError if it cannot bind."""
    if listen is None:
        await stop.wait()
        return
    from strom.console.server import ConsoleServer

    console = ConsoleServer(bootstrap, *listen, registry=registry_url)
    try:
        await console.start()
    except OSError as exc:
        await console.stop()
        raise ConsoleListenError(*listen, exc) from exc
    try:
        print(f"strom console ready on {console.url}", flush=True)
        await stop.wait()
    finally:
        await console.stop()


async def serve_registry_beside(
    bootstrap: str, listen: tuple[str, int], console_listen: tuple[str, int] | None, stop: asyncio.Event
) -> int:
    """Serve a registry (and then the console) on the broker until `stop`; 1 (said on stderr) if it cannot
    start."""
    from strom.registry.errors import RegistryError
    from strom.registry.server import RegistryServer

    registry = RegistryServer(bootstrap, *listen)
    try:
        await registry.start()
    except (RegistryError, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            reason = "address already in use (choose another --registry-listen)"
        else:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(
            f"strom broker: cannot start the registry on {listen[0]}:{listen[1]}: {reason}", file=sys.stderr
        )
        return 1
    try:
        print(f"strom registry ready on {registry.url}", flush=True)
        await serve_console_beside(bootstrap, console_listen, registry.url, stop)
    finally:
        await registry.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        policy = KeyPolicy.LENIENT if args.lenient_config else KeyPolicy.KAFKA
        config = BrokerConfig.from_sources(args.config, args.set, policy=policy)
    except (ConfigError, OSError) as exc:
        print(f"strom broker: {exc}", file=sys.stderr)
        return 2
    warn_ignored(config)
    try:
        host, port = args.listen or listen_from_config(config)
    except argparse.ArgumentTypeError as exc:
        print(f"strom broker: listeners: {exc}", file=sys.stderr)
        return 2
    data_dir = args.data_dir or data_dir_from_config(config)
    problem = data_dir_problem(data_dir)
    if problem is not None:
        print(f"strom broker: {problem}; choose another --data-dir", file=sys.stderr)
        return 2
    created_root = first_missing(data_dir)
    existing = {entry.name for entry in data_dir.iterdir()} if created_root is None else set()
    from strom.broker.errors import BrokerError
    from strom.broker.metrics import MetricsListenError
    from strom.log.log_manager import DataDirLockedError

    started = asyncio.Event()  # set once the broker accepts connections: later errors keep the data
    try:
        return asyncio.run(
            serve(
                data_dir,
                config,
                host,
                port,
                started,
                args.metrics_listen,
                args.registry_listen,
                args.console_listen,
            )
        )
    except (DataDirLockedError, BrokerError) as exc:
        print(f"strom broker: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if not started.is_set() or isinstance(exc, ConsoleListenError):
            remove_created(data_dir, created_root, existing)
        flag = "--listen"
        if isinstance(exc, MetricsListenError):  # the metrics address, not the broker's, could not be bound
            host, port, flag = exc.host, exc.port, "--metrics-listen"
        if isinstance(exc, ConsoleListenError):
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            print(
                f"strom broker: cannot start the console on {exc.host}:{exc.port}: {reason} "
                "(choose another --console-listen)",
                file=sys.stderr,
            )
            return 1
        if exc.errno == errno.EADDRINUSE:
            reason = f"the address is already in use (another broker? choose another {flag})"
        else:
            reason = exc.strerror or str(exc)
        print(f"strom broker: cannot start on {host}:{port} with {data_dir}: {reason}", file=sys.stderr)
        return 1
