"""The state store API: what a processor (``ProcessorContext.key_value_store`` and friends) and a test or
query (``TopologyTestDriver``) see of a store, as Protocols, so user code is typed against the interface and
not against the cache and backend layers behind it.

Each kind of store has a read-only view (Kafka's ``ReadOnlyKeyValueStore``, ``ReadOnlyWindowStore``,
``ReadOnlySessionStore``) and a read/write view for the processors connected to it. ``K`` and ``V`` are the
types the store's serdes produce; values are never None in a store (writing None deletes), so reads return
``V | None`` for "absent".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar

from strom.streams.state.kv_store import ValueAndTimestamp
from strom.streams.windows import Windowed

K = TypeVar("K")
V = TypeVar("V")
K_contra = TypeVar("K_contra", contravariant=True)
V_co = TypeVar("V_co", covariant=True)


class StateStore(Protocol):
    """Every store: its name, kind (``key_value``, ``window`` or ``session``) and lifecycle."""

    name: str
    kind: str

    @property
    def persistent(self) -> bool:
        """True when the store keeps its data on disk across restarts (else it is rebuilt from the changelog).
        """
        ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class ReadOnlyKeyValueStore(StateStore, Protocol[K, V_co]):
    def get(self, key: K) -> V_co | None: ...

    def get_with_timestamp(self, key: K) -> ValueAndTimestamp | None: ...

    def range(self, key_from: K | None = None, key_to: K | None = None) -> Iterator[tuple[K, V_co]]:
        """``(key, value)`` pairs with ``key_from <= key <= key_to`` in serialised-key order."""
        ...

    def all(self) -> Iterator[tuple[K, V_co]]: ...

    def approximate_num_entries(self) -> int: ...


class ReadWriteKeyValueStore(ReadOnlyKeyValueStore[K, V], Protocol[K, V]):
    def put(self, key: K, value: V | None, timestamp: int | None = None) -> None:
        """Insert or replace ``key`` (None deletes); the timestamp defaults to the current record's."""
        ...

    def put_if_absent(self, key: K, value: V, timestamp: int | None = None) -> V | None: ...

    def put_all(self, entries: Iterable[tuple[K, V]]) -> None: ...

    def delete(self, key: K) -> V | None: ...


class ReadOnlyWindowStore(StateStore, Protocol[K_contra, V_co]):
    window_size_ms: int
    retention_ms: int

    def get(self, key: K_contra, window_start: int) -> V_co | None: ...

    def get_with_timestamp(self, key: K_contra, window_start: int) -> ValueAndTimestamp | None: ...

    def fetch(self, key: K_contra, time_from: int, time_to: int) -> Iterator[tuple[int, V_co]]:
        """``(window start, value)`` for ``key`` with ``time_from <= start <= time_to``, ascending."""
        ...

    def fetch_all(self, time_from: int, time_to: int) -> Iterator[tuple[Windowed, V_co]]: ...

    def all(self) -> Iterator[tuple[Windowed, V_co]]: ...


class ReadWriteWindowStore(ReadOnlyWindowStore[K_contra, V], Protocol[K_contra, V]):
    def put(
        self, key: K_contra, value: V | None, window_start: int, timestamp: int | None = None
    ) -> None: ...


class ReadOnlySessionStore(StateStore, Protocol[K_contra, V_co]):
    """Sessions keyed by ``Windowed(key, Window(start, end))``."""

    def find_sessions(
        self, key: K_contra, earliest_end: int, latest_start: int
    ) -> Iterator[tuple[Windowed, V_co]]: ...

    def fetch(self, key: K_contra) -> Iterator[tuple[Windowed, V_co]]: ...

    def get(self, session: Windowed) -> V_co | None: ...


class ReadWriteSessionStore(ReadOnlySessionStore[K_contra, V], Protocol[K_contra, V]):
    def put(self, session: Windowed, value: V | None, timestamp: int | None = None) -> None: ...

    def delete(self, session: Windowed) -> V | None: ...
