"""Subcommands of the `strom` CLI; each module exposes `register(subparsers)`."""
