"""`strom registry`: serve a Confluent-compatible schema registry stored in the cluster's `_schemas` topic.

Prints `strom registry ready on http://HOST:PORT` once it has read the topic to its end and serves, so scripts
and tests can wait for it. Runs until Ctrl-C or SIGTERM. Several registries on one cluster serve the same
schemas: each reads the topic, and each writes through it.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import signal
import sys

from strom.commands.broker import parse_listen
from strom.commands.connection import DEFAULT_BOOTSTRAP, positive_seconds

DEFAULT_LISTEN = ("127.0.0.1", 8081)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("registry", help="serve a schema registry", description=__doc__)
    parser.add_argument(
        "--bootstrap",
        default=DEFAULT_BOOTSTRAP,
        metavar="HOST:PORT[,...]",
        help=f"broker(s) of the cluster that stores the schemas (default: {DEFAULT_BOOTSTRAP})",
    )
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="where to serve the REST API (default: 127.0.0.1:8081, Confluent's; port 0 picks a free one)",
    )
    parser.add_argument(
        "--topic", default="_schemas", help="the topic that stores the schemas (default: _schemas)"
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="give up on reaching the cluster or on a write after (default: 30)",
    )
    parser.set_defaults(func=run)


async def serve(args: argparse.Namespace) -> None:
    from strom.registry.server import RegistryServer

    host, port = args.listen
    server = RegistryServer(args.bootstrap, host, port, args.topic, args.timeout)
    await server.start()
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"strom registry ready on {server.url}", flush=True)
        await stop.wait()
    finally:
        await server.stop()


def run(args: argparse.Namespace) -> int:
    from strom.registry.errors import RegistryError

    host, port = args.listen
    try:
        asyncio.run(serve(args))
    except RegistryError as error:
        print(f"strom registry: {error}", file=sys.stderr)
        return 1
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        print(f"strom registry: cannot serve on {host}:{port}: {reason}", file=sys.stderr)
        return 1
    return 0
