"""`strom produce TOPIC`: one record per line of standard input, like kafka-console-producer and `kcat -P`.

With `--key-separator`, each line is `KEY<sep>VALUE`. Keys go to the partition Java clients would pick
(murmur2), so records produced here land where the same keys from any Kafka client land. The producer is
idempotent: a retried batch is never written twice.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from strom.commands.connection import (
    CommandError,
    add_connection_arguments,
    admin_client,
    client_config,
    cluster_metadata,
    describe,
    reporting_errors,
    require_topic,
)
from strom.commands.progress import Progress, file_fraction

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("produce", help="produce lines of stdin as records", description=__doc__)
    parser.add_argument("topic")
    parser.add_argument("-K", "--key-separator", metavar="SEP", help="split each line into KEY<SEP>VALUE")
    parser.add_argument("-p", "--partition", type=int, help="write every record to this partition")
    parser.add_argument("-z", "--compression", choices=CODECS, default="none")
    parser.add_argument("--acks", choices=("0", "1", "all"), default="all", help="default: all")
    add_connection_arguments(parser)
    parser.set_defaults(func=reporting_errors(produce))


def produce(args: argparse.Namespace) -> int:
    metadata = cluster_metadata(admin_client(args), args)
    require_topic(metadata, args.topic)
    partitions = len(metadata.topics[args.topic].partitions)
    if args.partition is not None and not 0 <= args.partition < partitions:
        raise CommandError(f"topic {args.topic!r} has partitions 0..{partitions - 1}, not {args.partition}")
    producer = Producer(
        client_config(
            args,
            **{
                "acks": args.acks,
                # Idempotence needs acks=all; with acks 0 or 1 the user asked for less.
                "enable.idempotence": args.acks == "all",
                "compression.type": args.compression,
                "partitioner": "murmur2_random",
                "linger.ms": 5,
            },
        )
    )
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    extra: dict[str, Any] = {} if args.partition is None else {"partition": args.partition}
    count = 0
    progress = Progress(
        "produced", sys.stderr, interactive=sys.stderr.isatty(), fraction=file_fraction(sys.stdin)
    )
    try:
        for line in sys.stdin:
            text = line.rstrip("\n")
            key: str | None = None
            if args.key_separator is not None:
                key, sep, value = text.partition(args.key_separator)
                if not sep:
                    raise CommandError(
                        f"line {count + 1} has no key separator {args.key_separator!r}: {text!r}"
                    )
            else:
                value = text
            while True:
                try:
                    producer.produce(
                        args.topic, value=value.encode(), key=key, on_delivery=on_delivery, **extra
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain, then retry this record
                    producer.poll(0.1)
                except KafkaException as error:
                    raise CommandError(f"cannot produce to {args.topic!r}: {describe(error)}") from error
            producer.poll(0)
            count += 1
            progress.update(count)
        unsent = producer.flush(args.timeout)
        if unsent:
            raise CommandError(f"{unsent} of {count} records not acknowledged within {args.timeout:g} s")
        if failures:
            raise CommandError(f"{len(failures)} of {count} records failed: {failures[0].str()}")
        progress.finish(f"strom: produced {count} records to {args.topic}", count)
    finally:
        progress.clear()
    return 0
