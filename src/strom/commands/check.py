"""`strom check DATA_DIR`: walk a stopped (or running) broker's data directory and report damage, offline.

Every segment, index, time index, transaction index, producer snapshot and checkpoint is read and checked
against docs/formats.md (strom.log.check); each problem is printed with its file, its place (byte position
and offset, index entry, line) and what is wrong. Nothing is modified: run it before starting a broker whose
disk you doubt, or after a log line reported damage. Exit status 0 when clean, 1 when damage was found
(notes, such as a crash's leftover temporary files, do not count), 2 for a usage error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from strom.log.check import check_data_dir


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check", help="report damage in a data directory without changing it", description=__doc__
    )
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR", help="the broker's data directory")
    parser.add_argument("--quiet", action="store_true", help="print damage only, no notes or summary")
    parser.set_defaults(func=check)


def check(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    report = check_data_dir(data_dir)
    for finding in report.findings:
        if finding.damage or not args.quiet:
            print(finding.describe(data_dir))
    damage = sum(f.damage for f in report.findings)
    if not args.quiet:
        print(
            f"checked {report.partitions} partition(s), {report.segments} segment(s), "
            f"{report.batches} batch(es): {'no damage' if not damage else f'{damage} problem(s)'}"
        )
    return 1 if report.damaged else 0
