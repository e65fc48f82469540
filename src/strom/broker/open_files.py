"""File descriptors: the broker's open-file limit, and what it does when they run out.

Why: every partition keeps its active segment's log and index files open and every client connection is
a socket, so a broker at the common default soft limit (1024) runs out with one large topic. At start the
broker raises its soft `RLIMIT_NOFILE` as far as the hard limit allows (as `ulimit -n $(ulimit -Hn)` would)
and warns when even that is low for the partitions on disk.

When descriptors do run out, asyncio's listener stops accepting for a second and retries, but reports
every failed `accept()` (up to a hundred per retry): `AcceptFailureLog` turns those into one log line per
`REPORT_INTERVAL_S` that says what happened and how many connections were refused since.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

logger = logging.getLogger(__name__)

# Linux refuses a soft limit above /proc/sys/fs/nr_open (usually 1048576) even when the hard one is unlimited.
_NR_OPEN_DEFAULT = 1 << 20
# Descriptors per partition's active segment (log, offset index, time index), and a margin for connections.
FILES_PER_PARTITION = 3
CONNECTION_HEADROOM = 1000
REPORT_INTERVAL_S = 60.0
ACCEPT_FAILURE = "socket.accept() out of system resource"


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard limit (capped at nr_open); return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _nr_open() if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
            return soft
        logger.info("raised the open-file limit from %d to %d", soft, target)
        return target
    return soft


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
            return int(f.read())
    except (OSError, ValueError):
        return _NR_OPEN_DEFAULT


def warn_if_low(limit: int, partitions: int) -> bool:
    """Warn (and return True) when `limit` leaves too few descriptors for `partitions` plus connections."""
    needed = partitions * FILES_PER_PARTITION + CONNECTION_HEADROOM
    if limit == resource.RLIM_INFINITY or limit >= needed:
        return False
    logger.warning(
        "the open-file limit is %d (the hard limit allows no more); the %d partitions on disk keep about %d "
        "files open, which leaves room for few connections: raise the hard limit (ulimit -Hn, systemd "
        "LimitNOFILE) to at least %d",
        limit,
        partitions,
        partitions * FILES_PER_PARTITION,
        needed,
    )
    return True


class AcceptFailureLog:
    """An event loop exception handler: failed accepts for lack of descriptors become one line per interval;
    everything else goes to the handler that was there before.

    Invariant: at most one report per `interval_s`, each counting the failures since the previous one."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval_s: float = REPORT_INTERVAL_S) -> None:
        self._loop = loop
        self._interval_s = interval_s
        self._previous = loop.get_exception_handler()
        self._last_report = -interval_s
        self._unreported = 0

    def install(self) -> None:
        self._loop.set_exception_handler(self)

    def uninstall(self) -> None:
        if self._loop.get_exception_handler() is self:
            self._loop.set_exception_handler(self._previous)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != ACCEPT_FAILURE:
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self._unreported += 1
        now = time.monotonic()
        if now - self._last_report < self._interval_s:
            return
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        logger.error(
            "cannot accept connections: %s (open-file limit %d); accepting pauses and is retried every "
            "second (%d failed accepts since the last report; the next report %d s later at the earliest)",
            context.get("exception"),
            soft,
            self._unreported,
            int(self._interval_s),
        )
        self._last_report = now
        self._unreported = 0
