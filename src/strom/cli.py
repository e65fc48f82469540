"""The `strom` command line: one subcommand per module in `strom.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module in strom.commands registers its subcommands and sets `func` on its parser.
COMMAND_MODULES: tuple[str, ...] = (
    "broker",
    "topics",
    "produce",
    "consume",
    "groups",
    "console",
    "registry",
    "schemas",
    "check",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="strom", description="strom: event streaming in Python")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"strom.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
