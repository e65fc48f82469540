"""KStream-KTable and KStream-GlobalKTable joins (inner and left), as Kafka's ``KStreamKTableJoinProcessor``.

Only stream records trigger output; table updates change the table and emit nothing. Rules:

- a stream record with a null value never joins and is dropped (counted);
- the join key is the record key (KTable) or ``key_selector(key, value)`` (GlobalKTable); a null join key
  drops the record, except that a left join passes a null-keyed record through with a null table value
  (KIP-962);
- inner: no table row, no output; left: ``joiner(value, None)``;
- the output keeps the stream record's key and timestamp.

Stream-stream and table-table joins will live here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strom.streams.processor.node import Node

ValueGetter = Callable[[Any], Any]  # key -> ValueAndTimestamp | None
Joiner = Callable[[Any, Any], Any]  # (stream value, table value) -> joined value


class StreamTableJoinNode(Node):
    __slots__ = ("getter", "getter_factory", "joiner", "key_selector", "left")

    def __init__(
        self,
        name: str,
        getter_factory: Callable[[Any], ValueGetter],
        joiner: Joiner,
        left: bool,
        key_selector: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        super().__init__(name)
        self.getter_factory = getter_factory
        self.joiner = joiner
        self.left = left
        self.key_selector = key_selector

    def init(self, ctx: Any) -> None:
        super().init(ctx)
        self.getter = self.getter_factory(ctx)

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        if value is None:
            self.ctx.record_dropped("join input with a null value", key)
            return
        join_key = key if self.key_selector is None else self.key_selector(key, value)
        if join_key is None:
            if self.left and key is None:
                self.forward(key, self.joiner(value, None), timestamp)
            else:
                self.ctx.record_dropped("join input with a null join key", key)
            return
        found = self.getter(join_key)
        if found is None:
            if self.left:
                self.forward(key, self.joiner(value, None), timestamp)
            return
        self.forward(key, self.joiner(value, found.value), timestamp)
