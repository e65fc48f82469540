"""What a table node offers the nodes below it, as Kafka's ``KTableProcessorSupplier``: a *value getter*
(how a join reads the table's current row for a key, from a store or through its parent's getter) and old
values on demand (whether the node forwards ``Change(new, old)`` with the old value filled in, which only
some downstream operations need).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strom.streams.state.kv_store import ValueAndTimestamp

GetterFactory = Callable[[Any], Callable[[Any], ValueAndTimestamp | None]]


class OldValues:
    """Whether a table node must forward old values; set while the DSL is built, read when tasks are built."""

    __slots__ = ("enabled",)

    def __init__(self) -> None:
        self.enabled = False


def store_getter(store: str) -> GetterFactory:
    def factory(ctx: Any) -> Callable[[Any], ValueAndTimestamp | None]:
        return ctx.get_store(store).get_with_timestamp  # type: ignore[no-any-return]

    return factory


def windowed_store_getter(store: str) -> GetterFactory:
    def factory(ctx: Any) -> Callable[[Any], ValueAndTimestamp | None]:
        window_store = ctx.get_store(store)
        return lambda wk: window_store.get_with_timestamp(wk.key, wk.window.start)

    return factory


def with_old_values(node: Any, flags: OldValues) -> Any:
    node.send_old_values = flags.enabled
    return node
