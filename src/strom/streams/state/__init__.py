"""State stores for strom.streams: typed key-value and window stores over lsm, in-memory or rocksdict
backends, with a record cache and change-logging. See ``stores.py`` for how a topology declares them and
``api.py`` for the Protocols user code is typed against."""

from strom.streams.state.api import (
    ReadOnlyKeyValueStore,
    ReadOnlySessionStore,
    ReadOnlyWindowStore,
    ReadWriteKeyValueStore,
    ReadWriteSessionStore,
    ReadWriteWindowStore,
    StateStore,
)
from strom.streams.state.cache import RecordCacheBudget
from strom.streams.state.kv_store import KeyValueStore, ValueAndTimestamp
from strom.streams.state.session_store import SessionStore
from strom.streams.state.stores import Stores, StoreSpec
from strom.streams.state.window_store import WindowStore

__all__ = [
    "KeyValueStore",
    "ReadOnlyKeyValueStore",
    "ReadOnlySessionStore",
    "ReadOnlyWindowStore",
    "ReadWriteKeyValueStore",
    "ReadWriteSessionStore",
    "ReadWriteWindowStore",
    "RecordCacheBudget",
    "SessionStore",
    "StateStore",
    "StoreSpec",
    "Stores",
    "ValueAndTimestamp",
    "WindowStore",
]
