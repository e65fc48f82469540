"""The one way a test waits for something: until a condition holds, or fail saying what never happened.

A wait is woken by the event that changes the state where one exists (`changed`: a threading.Condition the
state's writer notifies; for asyncio code an asyncio.Event, see wait_until_async). Where the test's own
thread makes progress happen (a client that only works inside its poll()), `step` is that progress and runs
between checks. Only where nothing announces the change (a background cleaner pass, a stream thread's
assignment) does the wait poll the condition on a short interval. Every wait has a deadline; on expiry it
raises AssertionError naming what was awaited, so a failure reads as the missing behaviour, not as a hang.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

# The longest a condition goes unchecked: the polling interval without an event, and the bound on a wait for
# `changed`, whose writer may notify it for only part of the state the condition reads.
_POLL_S = 0.05
_RECHECK_S = 0.5

Description = str | Callable[[], str]


def _timed_out(what: Description, timeout: float) -> AssertionError:
    description = what() if callable(what) else what
    return AssertionError(f"{description}: not within {timeout} s")


def wait_until(
    condition: Callable[[], bool],
    what: Description,
    *,
    timeout: float = 30.0,
    changed: threading.Condition | None = None,
    step: Callable[[], object] | None = None,
) -> None:
    """Return once `condition()` is true; raise AssertionError naming `what` after `timeout` seconds.

    `what` may be a callable, evaluated only on failure, to report the state reached so far.
    """
    deadline = time.monotonic() + timeout
    while True:
        if changed is not None:
            with changed:
                if condition():
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _timed_out(what, timeout)
                changed.wait(min(remaining, _RECHECK_S))
            continue
        if condition():
            return
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout)
        if step is not None:
            step()
        else:
            time.sleep(_POLL_S)


async def wait_until_async(
    condition: Callable[[], bool], what: Description, changed: asyncio.Event, *, timeout: float = 30.0
) -> None:
    """wait_until for a coroutine: sleeps on `changed`, which whoever alters the state sets."""
    deadline = time.monotonic() + timeout
    while not condition():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timed_out(what, timeout)
        try:
            await asyncio.wait_for(changed.wait(), remaining)
        except TimeoutError:
            continue
        changed.clear()
