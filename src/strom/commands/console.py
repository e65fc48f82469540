"""`strom console`: serve the web console for a cluster (strom or Apache Kafka) until Ctrl-C or SIGTERM.

Prints one line, `strom console ready on http://HOST:PORT`, once it serves, so scripts and tests can wait for
it. The cluster need not be up yet: each page says so when it cannot reach it.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import signal
import sys

from strom.commands.broker import parse_listen
from strom.commands.connection import DEFAULT_BOOTSTRAP, positive_seconds

DEFAULT_LISTEN = ("127.0.0.1", 8080)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("console", help="serve the web console", description=__doc__)
    parser.add_argument(
        "--bootstrap",
        default=DEFAULT_BOOTSTRAP,
        metavar="HOST:PORT[,...]",
        help=f"broker(s) of the cluster to show (default: {DEFAULT_BOOTSTRAP})",
    )
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="where to serve the console (default: 127.0.0.1:8080; port 0 picks a free one)",
    )
    parser.add_argument(
        "--registry",
        metavar="URL",
        help="a schema registry: its schemas pages, and values decoded through it",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="give up on a cluster request after (default: 10)",
    )
    parser.set_defaults(func=run)


async def serve(args: argparse.Namespace) -> None:
    from strom.console.server import ConsoleServer

    host, port = args.listen
    console = ConsoleServer(args.bootstrap, host, port, args.registry, args.timeout)
    await console.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"strom console ready on {console.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await console.stop()


def run(args: argparse.Namespace) -> int:
    host, port = args.listen
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        print(f"strom console: cannot serve on {host}:{port}: {reason}", file=sys.stderr)
        return 1
    return 0
