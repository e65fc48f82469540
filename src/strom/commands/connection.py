"""How the client commands reach a cluster: the shared `--bootstrap` option, confluent-kafka client configs,
and turning client failures into `CommandError`s that say what went wrong and what to try.

librdkafka logs its own connection errors to stderr; the commands silence that and report one clear line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


class CommandError(Exception):
    """A failure to report to the user as `strom: <message>` with exit status 1."""


def reporting_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a command so a CommandError prints as one `strom: ...` line on stderr and exits with status 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except CommandError as error:
            print(f"strom: {error}", file=sys.stderr)
            return 1

    return run


# How long a command waits for a first answer in silence; after that it says whom it is waiting for.
QUIET_WAIT_S = 2.0


def positive_seconds(value: str) -> float:
    """An argparse type: a duration in seconds greater than zero (`--timeout -1` is refused, not a hang)."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds greater than 0, got {value!r}")
    return seconds


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap",
        default=DEFAULT_BOOTSTRAP,
        metavar="HOST:PORT[,...]",
        help=f"broker(s) to connect to (default: {DEFAULT_BOOTSTRAP})",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="give up on the cluster after (default: 10)",
    )


def client_config(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """librdkafka settings shared by every command's client: the bootstrap list, and quiet logs."""
    # log_level 0 keeps librdkafka's retry chatter off stderr; failures surface as CommandError instead.
    return {"bootstrap.servers": args.bootstrap, "log_level": 0, **extra}


def admin_client(args: argparse.Namespace) -> AdminClient:
    return AdminClient(client_config(args))


def cluster_metadata(admin: AdminClient, args: argparse.Namespace) -> ClusterMetadata:
    """Metadata for all topics; the first call of every command, so an unreachable cluster fails here.

    A broker that has not answered within QUIET_WAIT_S is named on stderr once, so the rest of the wait
    (up to --timeout) is not silent.
    """
    quiet = min(args.timeout, QUIET_WAIT_S)
    try:
        return admin.list_topics(timeout=quiet)
    except KafkaException as error:
        if quiet >= args.timeout or not is_unreachable(error):
            raise unreachable(args, error) from error
    print(
        f"strom: no broker answers at {args.bootstrap} yet; waiting up to {args.timeout:g} s (--timeout)",
        file=sys.stderr,
        flush=True,
    )
    try:
        return admin.list_topics(timeout=args.timeout - quiet)
    except KafkaException as error:
        raise unreachable(args, error) from error


def is_unreachable(error: KafkaException) -> bool:
    """Whether the client failed for want of a broker (rather than being answered with an error)."""
    code = error.args[0].code() if error.args and isinstance(error.args[0], KafkaError) else None
    return code in (
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
    )


def unreachable(args: argparse.Namespace, error: KafkaException) -> CommandError:
    if is_unreachable(error):
        return CommandError(
            f"cannot reach a broker at {args.bootstrap} within {args.timeout:g} s; "
            "is it running? (set the address with --bootstrap)"
        )
    return CommandError(f"cluster request failed: {describe(error)}")


def describe(error: BaseException) -> str:
    """The client error's own text (`Broker: Unknown topic or partition`), without librdkafka's wrapping."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return str(error.args[0].str())
    return str(error)


def require_topic(metadata: ClusterMetadata, topic: str, hint: bool = True) -> None:
    if topic not in metadata.topics:
        advice = f" (create it with `strom topics create {topic}`)" if hint else ""
        raise CommandError(f"topic {topic!r} does not exist{advice}")
