"""``Materialized``: how a DSL operator's result table is stored (name, serdes, backend, logging, caching)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from strom.streams.serdes import Serde
from strom.streams.state.stores import StoreSpec


@dataclass(frozen=True)
class Materialized:
    """Options of a table's store. A ``name`` makes the store queryable under that name and fixes its
    changelog topic (``<application.id>-<name>-changelog``) and repartition topic names; without one a
    Kafka-style name such as ``KSTREAM-AGGREGATE-STATE-STORE-0000000003`` is generated. DSL stores cache by
    default."""

    name: str | None = None
    key_serde: Serde[Any] | None = None
    value_serde: Serde[Any] | None = None
    backend: str | None = None
    logging: bool = True
    caching: bool = True
    retention_ms: int | None = None
    changelog_configs: dict[str, str] = field(default_factory=dict)

    @classmethod
    def as_(cls, name: str) -> Materialized:
        return cls(name=name)

    def with_key_serde(self, serde: Serde[Any]) -> Materialized:
        return replace(self, key_serde=serde)

    def with_value_serde(self, serde: Serde[Any]) -> Materialized:
        return replace(self, value_serde=serde)

    def with_logging_disabled(self) -> Materialized:
        return replace(self, logging=False)

    def with_caching_disabled(self) -> Materialized:
        return replace(self, caching=False)

    def store_spec(
        self,
        store: str,
        kind: str,
        key_serde: Serde[Any] | None,
        value_serde: Serde[Any] | None,
        *,
        window_size_ms: int = 0,
        retention_ms: int = 0,
    ) -> StoreSpec:
        """The store an operator declares for this materialisation; the operator resolves the store name,
        the serdes (its own defaults apply where these options leave them unset) and the window sizes."""
        return StoreSpec(
            store,
            kind,
            key_serde,
            value_serde,
            self.backend,
            self.logging,
            self.caching,
            window_size_ms,
            retention_ms,
            dict(self.changelog_configs),
        )


def as_materialized(value: Materialized | str | None) -> Materialized:
    if value is None:
        return Materialized()
    if isinstance(value, str):
        return Materialized(name=value)
    if isinstance(value, Materialized):
        return value
    raise TypeError(f"materialized must be a store name or a Materialized, got {type(value).__name__}")
