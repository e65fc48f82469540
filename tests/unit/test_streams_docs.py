"""Every Python example in docs/streams.md runs and its assertions hold (except blocks marked as needing a
broker)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "streams.md"
BLOCK = re.compile(r"(<!-- not run[^>]*-->\n)?```python\n(.*?)```", re.S)


def _examples() -> list[str]:
    return [code for marker, code in BLOCK.findall(DOC.read_text()) if not marker]


def test_the_guide_has_runnable_examples() -> None:
    assert len(_examples()) >= 8


@pytest.mark.parametrize("index", range(len(_examples())))
def test_guide_example_runs(index: int) -> None:
    code = _examples()[index]
    exec(compile(code, f"docs/streams.md example {index + 1}", "exec"), {"__name__": f"example_{index}"})
