"""The README a newcomer reads first: two quickstart commands, then what comes next, a map of docs/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match is not None, f"README has no section {title!r}"
    return match.group(1)


def test_the_quickstart_is_exactly_make_demo_and_make_test() -> None:
    commands = [line.split("#")[0].strip() for line in section("Quickstart").splitlines()]
    assert [c for c in commands if c and c != "```"] == ["make demo", "make test"]


def test_it_says_where_the_commands_live_and_how_to_start_the_broker() -> None:
    after = section("After the quickstart")
    assert ".venv/bin/strom broker" in after and "strom broker ready on" in after
    for tool in ("openjdk", "maven", "kcat", "chromium", "Go 1.26"):
        assert tool in after, tool


def test_every_doc_is_on_the_map_and_every_link_resolves() -> None:
    mapped = set(re.findall(r"\]\((docs/[^)]+\.md)\)", section("Documentation")))
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")}
    assert mapped == on_disk
