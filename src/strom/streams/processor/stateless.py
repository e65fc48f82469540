"""Stateless KStream nodes: per-record functions that keep the input timestamp (Kafka's output-timestamp rule
for stateless operations)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from strom.streams.processor.node import Node


class PassThroughNode(Node):
    """Forwards unchanged; used where streams merge."""

    __slots__ = ()

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        for child in self.children:
            child.process(key, value, timestamp)


class FilterNode(Node):
    __slots__ = ("keep_when", "predicate")

    def __init__(self, name: str, predicate: Callable[[Any, Any], bool], keep_when: bool) -> None:
        super().__init__(name)
        self.predicate = predicate
        self.keep_when = keep_when

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        if bool(self.predicate(key, value)) is self.keep_when:
            for child in self.children:
                child.process(key, value, timestamp)


class MapNode(Node):
    """``mapper(key, value) -> (new_key, new_value)``."""

    __slots__ = ("mapper",)

    def __init__(self, name: str, mapper: Callable[[Any, Any], tuple[Any, Any]]) -> None:
        super().__init__(name)
        self.mapper = mapper

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        new_key, new_value = self.mapper(key, value)
        for child in self.children:
            child.process(new_key, new_value, timestamp)


class SelectKeyNode(Node):
    __slots__ = ("mapper",)

    def __init__(self, name: str, mapper: Callable[[Any, Any], Any]) -> None:
        super().__init__(name)
        self.mapper = mapper

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        new_key = self.mapper(key, value)
        for child in self.children:
            child.process(new_key, value, timestamp)


class MapValuesNode(Node):
    """``mapper(value)``, or ``mapper(key, value)`` when built with ``with_key``."""

    __slots__ = ("mapper", "with_key")

    def __init__(self, name: str, mapper: Callable[..., Any], with_key: bool) -> None:
        super().__init__(name)
        self.mapper = mapper
        self.with_key = with_key

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        new_value = self.mapper(key, value) if self.with_key else self.mapper(value)
        for child in self.children:
            child.process(key, new_value, timestamp)


class FlatMapNode(Node):
    """``mapper(key, value) -> iterable of (key, value)``; every output keeps the input timestamp."""

    __slots__ = ("mapper",)

    def __init__(self, name: str, mapper: Callable[[Any, Any], Iterable[tuple[Any, Any]]]) -> None:
        super().__init__(name)
        self.mapper = mapper

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        children = self.children
        for new_key, new_value in self.mapper(key, value):
            for child in children:
                child.process(new_key, new_value, timestamp)


class FlatMapValuesNode(Node):
    __slots__ = ("mapper", "with_key")

    def __init__(self, name: str, mapper: Callable[..., Iterable[Any]], with_key: bool) -> None:
        super().__init__(name)
        self.mapper = mapper
        self.with_key = with_key

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        values = self.mapper(key, value) if self.with_key else self.mapper(value)
        children = self.children
        for new_value in values:
            for child in children:
                child.process(key, new_value, timestamp)


class PeekNode(Node):
    """Calls ``action(key, value)`` and forwards unchanged (``foreach`` is a peek without children)."""

    __slots__ = ("action",)

    def __init__(self, name: str, action: Callable[[Any, Any], None]) -> None:
        super().__init__(name)
        self.action = action

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        self.action(key, value)
        for child in self.children:
            child.process(key, value, timestamp)


class BranchNode(Node):
    """Sends each record to the first branch whose predicate holds (a None predicate is the default branch); a
    record matching no branch is dropped, as in Kafka's ``split()``. ``children[i]`` is branch ``i``."""

    __slots__ = ("predicates",)

    def __init__(self, name: str, predicates: list[Callable[[Any, Any], bool] | None]) -> None:
        super().__init__(name)
        self.predicates = predicates

    def process(self, key: Any, value: Any, timestamp: int) -> None:
        for predicate, child in zip(self.predicates, self.children, strict=True):
            if predicate is None or predicate(key, value):
                child.process(key, value, timestamp)
                return
