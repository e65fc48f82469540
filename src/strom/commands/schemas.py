"""`strom schemas list|get|register|check`: read and change a schema registry (strom's or Confluent's).

`list` prints each subject's latest version; `get` prints a schema (by subject and version, or by id);
`register` adds a schema to a subject (a new version, or the existing one if the same schema is there);
`check` says whether a schema is compatible with a subject under its compatibility level, and exits with
status 1 when it is not, so it can guard a deployment. A schema argument is a file, or `-` for stdin.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from strom.commands.connection import CommandError, reporting_errors
from strom.registry.client import RegistryClientError, RegistryUnreachableError, SchemaRegistryClient

DEFAULT_REGISTRY = "http://127.0.0.1:8081"
SCHEMA_TYPES = ("AVRO", "JSON")


def add_registry_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        default=DEFAULT_REGISTRY,
        metavar="URL",
        help=f"the schema registry's URL (default: {DEFAULT_REGISTRY})",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "schemas", help="list, get, register and check schemas", description=__doc__
    )
    actions = parser.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="each subject with its latest version, id and type")
    listing.add_argument("--prefix", default="", help="only subjects that start with this")
    _finish(listing, list_subjects)

    get = actions.add_parser("get", help="print a schema by subject (and version) or by id")
    get.add_argument("subject", nargs="?", help="the subject (or give --id)")
    get.add_argument("-v", "--version", default="latest", help="a version number or latest (default)")
    get.add_argument("--id", type=int, help="the schema's global id instead of a subject")
    _finish(get, get_schema)

    add = actions.add_parser("register", help="register a schema under a subject")
    _schema_arguments(add)
    _finish(add, register_schema)

    check = actions.add_parser("check", help="is a schema compatible with a subject? (exit 1 if not)")
    _schema_arguments(check)
    check.add_argument(
        "-v", "--version", default="latest", help="check against this version (default: latest)"
    )
    _finish(check, check_schema)


def _schema_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subject")
    parser.add_argument("schema", help="a file holding the schema, or - for stdin")
    parser.add_argument(
        "-t", "--type", default="AVRO", choices=SCHEMA_TYPES, type=str.upper, help="default: AVRO"
    )


def _finish(
    parser: argparse.ArgumentParser, action: Callable[[SchemaRegistryClient, argparse.Namespace], int]
) -> None:
    add_registry_argument(parser)
    parser.set_defaults(func=reporting_errors(lambda args: _calling_registry(action, args)))


def _calling_registry(
    action: Callable[[SchemaRegistryClient, argparse.Namespace], int], args: argparse.Namespace
) -> int:
    """Run `action`, turning the registry's error answers and silence into one `strom: ...` line."""
    try:
        return action(SchemaRegistryClient(args.registry), args)
    except RegistryClientError as error:
        raise CommandError(f"the registry refused: {error.message} (error code {error.error_code})") from None
    except RegistryUnreachableError as error:
        raise CommandError(f"{error}; start one with `strom registry` or pass --registry URL") from None


def list_subjects(registry: SchemaRegistryClient, args: argparse.Namespace) -> int:
    query = "?latestOnly=true" + (f"&subjectPrefix={quote(args.prefix)}" if args.prefix else "")
    latest: list[dict[str, Any]] = registry.request("GET", "/schemas" + query)
    rows = [("SUBJECT", "VERSION", "ID", "TYPE")]
    rows += [
        (s["subject"], str(s["version"]), str(s["id"]), s.get("schemaType", "AVRO"))
        for s in sorted(latest, key=lambda s: s["subject"])
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def get_schema(registry: SchemaRegistryClient, args: argparse.Namespace) -> int:
    if (args.subject is None) == (args.id is None):
        raise CommandError("give a subject or --id, not both and not neither")
    if args.id is not None:
        found = registry.schema_by_id(args.id)
        text, where = found.schema, f"id {found.schema_id}, {found.schema_type}"
    else:
        answer = registry.version(args.subject, args.version)
        text = answer["schema"]
        where = f"{answer['subject']} version {answer['version']}, id {answer['id']}, "
        where += answer.get("schemaType", "AVRO")
    print(f"strom: {where}", file=sys.stderr)
    print(json.dumps(json.loads(text), indent=2, ensure_ascii=False))
    return 0


def register_schema(registry: SchemaRegistryClient, args: argparse.Namespace) -> int:
    schema = read_schema(args.schema)
    schema_id = registry.register(args.subject, schema, args.type)
    version = registry.registered_version(args.subject, schema, args.type)["version"]
    print(f"registered {args.subject} version {version}, id {schema_id}")
    return 0


def check_schema(registry: SchemaRegistryClient, args: argparse.Namespace) -> int:
    schema = read_schema(args.schema)
    answer = registry.compatibility(args.subject, schema, args.type, args.version)
    if answer["is_compatible"]:
        print(f"compatible with {args.subject} version {args.version}")
        return 0
    print(f"NOT compatible with {args.subject} version {args.version}:")
    for message in answer.get("messages", []):
        print(f"  {message}")
    return 1


def read_schema(source: str) -> str:
    """The schema text from a file or stdin, refused early if it is not JSON (Avro and JSON Schema are)."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as error:
        raise CommandError(f"cannot read the schema file {source!r}: {error.strerror}") from None
    try:
        json.loads(text)
    except ValueError as error:
        raise CommandError(f"the schema in {source!r} is not JSON: {error}") from None
    return text
