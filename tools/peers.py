"""Where the real peers live (Apache Kafka jars, kcat, the franz-go program); the error when one is missing.

The peers are fetched by tools/setup.sh into ~/.cache/strom. Benchmarks and scripts that find one missing
stop with `PeerUnavailable`, whose message says how to get it. The test suite turns the same error into a
skip locally (a contributor without Java can still run it) and a failure under CI=true (tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CACHE_DIR = Path(os.environ.get("STROM_CACHE", Path.home() / ".cache" / "strom"))
BIN_DIR = CACHE_DIR / "bin"
FRANZGO_BINARY = BIN_DIR / "strom-franzgo"


class PeerUnavailable(RuntimeError):
    """A peer program or its files are not installed; the message names it and how to install it."""


def require_peer(name: str, present: bool, how_to_get_it: str = "run `bash tools/setup.sh`") -> None:
    """Raise PeerUnavailable when the peer `name` is not installed."""
    if not present:
        raise PeerUnavailable(f"{name} is not available; {how_to_get_it}")


def kcat_path() -> str:
    """The kcat binary (Debian's package); PeerUnavailable when it is missing."""
    path = shutil.which("kcat")
    require_peer("kcat", path is not None, "install the Debian package: apt-get install -y kcat")
    assert path is not None
    return path


def franzgo_path() -> Path:
    """The franz-go client program built by tools/setup.sh; PeerUnavailable when it is missing."""
    require_peer("the franz-go program", FRANZGO_BINARY.exists())
    return FRANZGO_BINARY
