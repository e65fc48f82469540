"""Where the real peers live (Apache Kafka jars, kcat, the franz-go program), and what if one is missing.

Locally a missing peer skips its tests, so a contributor without Java can still run the suite. In CI
(`CI=true`) the same absence fails the test: the compatibility suite must never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CACHE_DIR = Path(os.environ.get("STROM_CACHE", Path.home() / ".cache" / "strom"))
BIN_DIR = CACHE_DIR / "bin"
FRANZGO_BINARY = BIN_DIR / "strom-franzgo"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_peer(name: str, present: bool, how_to_get_it: str = "run `bash tools/setup.sh`") -> None:
    """Skip (locally) or fail (CI=true) the calling test when the peer `name` is not installed."""
    if present:
        return
    message = f"{name} is not available; {how_to_get_it}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: compatibility tests must not skip)", pytrace=False)
    pytest.skip(message)


def kcat_path() -> str:
    """The kcat binary (Debian's package), skipping or failing the test when it is missing."""
    path = shutil.which("kcat")
    require_peer("kcat", path is not None, "install the Debian package: apt-get install -y kcat")
    assert path is not None
    return path


def franzgo_path() -> Path:
    """The franz-go client program built by tools/setup.sh; skips or fails the test when it is missing."""
    require_peer("the franz-go program", FRANZGO_BINARY.exists())
    return FRANZGO_BINARY
