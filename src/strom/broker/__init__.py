"""strom.broker: a Kafka-protocol broker. `EmbeddedBroker` runs one in-process; `strom broker` runs one."""

from __future__ import annotations

from typing import Any

__all__ = ["EmbeddedBroker"]


def __getattr__(name: str) -> Any:
    # Imported lazily so that `strom.broker.config` and friends stay cheap to import on their own.
    if name == "EmbeddedBroker":
        from strom.broker.embedded import EmbeddedBroker

        return EmbeddedBroker
    raise AttributeError(name)
