"""State stores for strom.streams: typed key-value and window stores over lsm, in-memory or rocksdict
backends, with a record cache and change-logging. See ``stores.py`` for how a topology declares them."""

from strom.streams.state.cache import RecordCacheBudget
from strom.streams.state.kv_store import KeyValueStore, ValueAndTimestamp
from strom.streams.state.session_store import SessionStore
from strom.streams.state.stores import Stores, StoreSpec
from strom.streams.state.window_store import WindowStore

__all__ = [
    "KeyValueStore",
    "RecordCacheBudget",
    "SessionStore",
    "StoreSpec",
    "Stores",
    "ValueAndTimestamp",
    "WindowStore",
]
