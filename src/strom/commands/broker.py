"""`strom broker`: run a broker in the foreground until SIGTERM or Ctrl-C.

Prints exactly one line, `strom broker ready on HOST:PORT`, once connections are accepted, so scripts can
wait for it. SIGTERM and SIGINT stop it cleanly: connections close, logs are flushed and the clean-shutdown
marker is written.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from strom.broker.config import BrokerConfig, ConfigError, warn_ignored


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 as `[::1]:9092`) -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"--listen expects HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("broker", help="run a Kafka-protocol broker", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("strom-data"), help="default: ./strom-data")
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=("127.0.0.1", 9092),
        metavar="HOST:PORT",
        help="default: 127.0.0.1:9092",
    )
    parser.add_argument("--config", type=Path, help="a Kafka-style server.properties file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a broker config, e.g. num.partitions=3",
    )
    parser.set_defaults(func=run)


async def serve(data_dir: Path, config: BrokerConfig, host: str, port: int) -> None:
    from strom.broker.server import Broker

    broker = Broker(data_dir, config, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    shown = f"[{host}]" if ":" in host else host
    print(f"strom broker ready on {shown}:{broker.listen_port}", flush=True)
    try:
        await stop.wait()
    finally:
        await broker.stop()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = BrokerConfig.from_sources(args.config, args.set)
    except (ConfigError, OSError) as exc:
        print(f"strom broker: {exc}", file=sys.stderr)
        return 2
    warn_ignored(config)
    host, port = args.listen
    from strom.log.log_manager import DataDirLockedError

    try:
        asyncio.run(serve(args.data_dir, config, host, port))
    except DataDirLockedError as exc:
        print(f"strom broker: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"strom broker: cannot start on {host}:{port} with {args.data_dir}: {exc}", file=sys.stderr)
        return 1
    return 0
