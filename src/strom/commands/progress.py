"""The progress line of long-running commands (`strom produce` of a file, `strom consume -c N`), on stderr.

On a terminal the line is redrawn in place with the count, the rate and, when known, how much of the input
is done, and the final summary replaces it, with the overall rate. Anywhere else (a file, a pipe, CI logs)
there are no carriage returns: a plain line every `PLAIN_INTERVAL_S` as a heartbeat, and the summary exactly
as before, so logs and scripts that read it stay the same.
"""

from __future__ import annotations

import io
import os
import stat
import time
from collections.abc import Callable
from typing import TextIO

REDRAW_INTERVAL_S = 0.25
PLAIN_INTERVAL_S = 10.0
_CLEAR_TO_END = "\x1b[K"


class Progress:
    """Counts the records a command has handled and reports them on `stream`.

    `update` is cheap when nothing is due (one clock read), so callers may call it per record or per batch.
    `total` (records expected) or `fraction` (a callable telling the share of the input read, 0..1, or None)
    add a percentage to the line.
    """

    def __init__(
        self,
        verb: str,
        stream: TextIO,
        *,
        interactive: bool,
        total: int | None = None,
        fraction: Callable[[], float | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verb = verb
        self._stream = stream
        self._interactive = interactive
        self._total = total
        self._fraction = fraction
        self._clock = clock
        self._interval = REDRAW_INTERVAL_S if interactive else PLAIN_INTERVAL_S
        self._started = clock()
        self._last_time = self._started
        self._last_done = 0
        self._due = self._started + self._interval
        self._drawn = False

    def update(self, done: int) -> None:
        now = self._clock()
        if now < self._due:
            return
        rate = (done - self._last_done) / (now - self._last_time)
        self._last_time, self._last_done, self._due = now, done, now + self._interval
        line = f"strom: {self._verb} {self._count(done)} records, {rate:,.0f} records/s{self._percent(done)}"
        if self._interactive:
            self._stream.write(f"\r{line}{_CLEAR_TO_END}")
            self._drawn = True
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def note(self, text: str) -> None:
        """Write a line of its own (e.g. "waiting for records"), above the progress line on a terminal."""
        self._stream.write(f"\r{_CLEAR_TO_END}{text}\n" if self._drawn else f"{text}\n")
        self._drawn = False
        self._stream.flush()

    def clear(self) -> None:
        """Erase a drawn progress line, so an error message that follows starts on a clean line."""
        if self._drawn:
            self._stream.write(f"\r{_CLEAR_TO_END}")
            self._drawn = False
            self._stream.flush()

    def finish(self, summary: str, done: int) -> None:
        """Replace the progress line with `summary`, followed on a terminal by the overall rate."""
        if self._interactive:
            elapsed = max(self._clock() - self._started, 1e-9)
            self._stream.write(
                f"\r{summary} in {elapsed:.1f} s, {done / elapsed:,.0f} records/s{_CLEAR_TO_END}\n"
            )
        else:
            self._stream.write(summary + "\n")
        self._drawn = False
        self._stream.flush()

    def _count(self, done: int) -> str:
        return f"{done:,}" if self._total is None else f"{done:,}/{self._total:,}"

    def _percent(self, done: int) -> str:
        if self._total:
            return f" ({100 * done / self._total:.0f}%)"
        share = self._fraction() if self._fraction is not None else None
        return "" if share is None else f" ({100 * share:.0f}% of input)"


def file_fraction(stream: TextIO) -> Callable[[], float | None] | None:
    """How much of `stream` was read, when it is a regular file (`strom produce t < events.txt`); None for a
    pipe or a terminal, whose size is unknown. The position includes read-ahead, close enough for progress."""
    try:
        fd = stream.fileno()
        size = os.fstat(fd).st_size
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    if not regular or size == 0:
        return None
    return lambda: min(1.0, os.lseek(fd, 0, os.SEEK_CUR) / size)
