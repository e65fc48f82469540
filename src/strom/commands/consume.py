"""`strom consume TOPIC`: print records, like kafka-console-consumer and `kcat -C`.

Without `--group` it reads every partition on its own (nothing is committed). With `--group` it joins that
consumer group, shares the partitions with the other members, and commits exactly the records it printed,
so the next run of the group starts after them. `--from-beginning` starts where the log starts when there
is no committed offset; otherwise only new records are printed. `--value-format avro` (or `json-schema`)
decodes values written in Confluent's schema-registry wire format with the registry at `--registry`, and
prints each as one line of JSON.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, Message, TopicPartition

from strom.commands.connection import (
    QUIET_WAIT_S,
    CommandError,
    add_connection_arguments,
    admin_client,
    client_config,
    cluster_metadata,
    reporting_errors,
    require_topic,
)
from strom.commands.progress import Progress
from strom.commands.schemas import add_registry_argument

FIELDS = "topic, partition, offset, timestamp, key, value"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("consume", help="print records of a topic", description=__doc__)
    parser.add_argument("topic")
    parser.add_argument(
        "-g", "--group", help="consume as a member of this consumer group, committing offsets"
    )
    parser.add_argument("--from-beginning", action="store_true", help="start at the earliest offset")
    parser.add_argument("-c", "--max-messages", type=int, metavar="N", help="exit after N records")
    parser.add_argument(
        "--idle-timeout", type=float, metavar="SECONDS", help="exit after this long without records"
    )
    parser.add_argument("--print-key", action="store_true", help="print KEY<sep>VALUE")
    parser.add_argument("-K", "--key-separator", default="\t", metavar="SEP", help="default: a tab")
    parser.add_argument(
        "-f",
        "--format",
        metavar="TEMPLATE",
        help=f"a Python format string over {{{FIELDS}}}, e.g. '{{offset}}: {{value}}'",
    )
    parser.add_argument(
        "--value-format",
        choices=VALUE_FORMATS,
        default="text",
        help="text (default: UTF-8 as is), or avro / json-schema decoded with the --registry",
    )
    add_registry_argument(parser)
    add_connection_arguments(parser)
    parser.set_defaults(func=reporting_errors(consume))


def _decode(data: bytes | None) -> str:
    return "null" if data is None else data.decode("utf-8", errors="replace")


VALUE_FORMATS = ("text", "avro", "json-schema")


def value_decoder(args: argparse.Namespace) -> Callable[[Message], str]:
    """How a record's value is printed: as text, or decoded with the registry into one line of JSON."""
    if args.value_format == "text":
        return lambda message: _decode(message.value())
    # Imported here: the serdes pull in strom.streams and fastavro, which every other `strom` command
    # (the parser imports all command modules) would otherwise pay for at start.
    from strom.registry.serdes import AvroSerde, JsonSchemaSerde
    from strom.streams.errors import SerializationError

    serde = (AvroSerde if args.value_format == "avro" else JsonSchemaSerde)(args.registry)

    def decode(message: Message) -> str:
        try:
            value = serde.deserialize(args.topic, message.value())
        except SerializationError as error:
            raise CommandError(
                f"cannot decode the value at partition {message.partition()} offset {message.offset()} "
                f"as {args.value_format}: {error}"
            ) from None
        return json.dumps(value, ensure_ascii=False, default=_json_default)

    return decode


def _json_default(value: object) -> object:
    # Avro bytes and fixed print as base64; logical types (decimal, date, uuid, ...) as their text.
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def template_of(args: argparse.Namespace) -> str:
    if args.format is not None:
        # `\t` and `\n` typed in a shell mean a tab and a newline, as in kcat's -f.
        template: str = args.format.replace("\\t", "\t").replace("\\n", "\n")
    elif args.print_key:
        template = "{key}" + args.key_separator.replace("{", "{{").replace("}", "}}") + "{value}"
    else:
        template = "{value}"
    try:
        template.format(topic="", partition=0, offset=0, timestamp=0, key="", value="")
    except (KeyError, IndexError, ValueError) as error:
        raise CommandError(f"--format {args.format!r} is not valid: use the fields {{{FIELDS}}}") from error
    return template


def consume(args: argparse.Namespace) -> int:
    template = template_of(args)
    decode_value = value_decoder(args)
    metadata = cluster_metadata(admin_client(args), args)
    require_topic(metadata, args.topic)
    settings: dict[str, Any] = {"enable.partition.eof": False}
    if args.group is not None:
        settings |= {
            "group.id": args.group,
            "auto.offset.reset": "earliest" if args.from_beginning else "latest",
            # Offsets are stored only once a record is printed, so the commit covers exactly what was shown.
            "enable.auto.offset.store": False,
        }
    else:
        settings |= {"group.id": "strom-consume-unused", "enable.auto.commit": False}
    consumer = Consumer(client_config(args, **settings))
    if args.group is not None:
        consumer.subscribe([args.topic])
    else:
        start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
        consumer.assign(
            [TopicPartition(args.topic, p, start) for p in metadata.topics[args.topic].partitions]
        )
    # A count makes it a long-running batch job worth a progress line; records shown on the terminal are
    # their own progress, and a line redrawn between them would garble them.
    track = args.max_messages is not None and not sys.stdout.isatty()
    progress = Progress(
        "consumed", sys.stderr, interactive=track and sys.stderr.isatty(), total=args.max_messages
    )
    printed = 0
    last_record = time.monotonic()
    said_waiting = False
    try:
        while args.max_messages is None or printed < args.max_messages:
            wanted = 500 if args.max_messages is None else min(500, args.max_messages - printed)
            messages = consumer.consume(num_messages=wanted, timeout=0.2)
            for message in messages:
                _check(message, args.topic)
                print(_format(template, message, decode_value))
                if args.group is not None:
                    consumer.store_offsets(message)
                printed += 1
            if messages:
                sys.stdout.flush()
                last_record = time.monotonic()
                if track:
                    progress.update(printed)
            elif args.idle_timeout is not None and time.monotonic() - last_record > args.idle_timeout:
                break
            elif not said_waiting and time.monotonic() - last_record > QUIET_WAIT_S:
                # Once per run: a consumer that has caught up looks exactly like one that hangs.
                progress.note(f"strom: {waiting_for(args, printed)}; Ctrl-C to stop")
                said_waiting = True
        sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # The reader went away (`strom consume ... | head`): stop quietly. The record whose print failed
        # was not stored, so a group commits only what was delivered. stdout now points at /dev/null so
        # the interpreter's own final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        progress.clear()
        consumer.close()  # commits the stored offsets when in a group
    progress.finish(f"strom: consumed {printed} records", printed)
    return 0


def waiting_for(args: argparse.Namespace, printed: int) -> str:
    """What an idle consumer is waiting for, in terms of the options the user gave (or did not)."""
    where = f"in {args.topic!r}" + (f" for group {args.group!r}" if args.group is not None else "")
    if printed:
        return f"printed {printed} records; waiting for new records {where}"
    if args.from_beginning:
        return f"waiting for records {where}"
    if args.group is not None:
        return (
            f"waiting for records {where} after its committed offsets "
            "(a group without any starts at the end unless --from-beginning is given)"
        )
    return f"waiting for new records {where} (add --from-beginning to print the ones already there)"


def _check(message: Message, topic: str) -> None:
    error = message.error()
    if error is None:
        return
    if error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
        raise CommandError(f"topic {topic!r} does not exist")
    raise CommandError(f"consuming {topic!r} failed: {error.str()}")


def _format(template: str, message: Message, decode_value: Callable[[Message], str]) -> str:
    return template.format(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        timestamp=message.timestamp()[1],
        key=_decode(message.key()),
        value=decode_value(message),
    )
