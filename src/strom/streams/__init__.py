"""strom.streams: Kafka-Streams-style stream processing in Python.

Build a topology with ``StreamsBuilder`` (KStream, KTable, GlobalKTable, grouping, windows, joins, the
Processor API), test it without a broker with ``strom.streams.testing.TopologyTestDriver``, and run it against
Kafka-protocol brokers with ``Streams``. Serdes live in ``strom.streams.serdes``.
"""

from strom.streams.app import Streams, StreamsState
from strom.streams.dsl import (
    BranchedKStream,
    GlobalKTable,
    KGroupedStream,
    KGroupedTable,
    KStream,
    KTable,
    Materialized,
    SessionWindowedKStream,
    StreamsBuilder,
    TimeWindowedKStream,
)
from strom.streams.errors import (
    DeserializationError,
    InvalidTimestampError,
    ProcessingError,
    SerializationError,
    StoreError,
    StreamsError,
    TopologyError,
)
from strom.streams.processor import (
    Cancellable,
    Processor,
    ProcessorContext,
    PunctuationType,
    Record,
    RecordMetadata,
)
from strom.streams.processor.suppress import BufferConfig, Suppressed
from strom.streams.runtime.restore import StateRestoreListener
from strom.streams.state import (
    KeyValueStore,
    ReadOnlyKeyValueStore,
    ReadOnlySessionStore,
    ReadOnlyWindowStore,
    ReadWriteKeyValueStore,
    ReadWriteSessionStore,
    ReadWriteWindowStore,
    SessionStore,
    StateStore,
    Stores,
    StoreSpec,
    ValueAndTimestamp,
    WindowStore,
)
from strom.streams.topology import Topology
from strom.streams.windows import EmitStrategy, JoinWindows, SessionWindows, TimeWindows, Window, Windowed

__all__ = [
    "BranchedKStream",
    "BufferConfig",
    "Cancellable",
    "DeserializationError",
    "EmitStrategy",
    "GlobalKTable",
    "InvalidTimestampError",
    "JoinWindows",
    "KGroupedStream",
    "KGroupedTable",
    "KStream",
    "KTable",
    "KeyValueStore",
    "Materialized",
    "ProcessingError",
    "Processor",
    "ProcessorContext",
    "PunctuationType",
    "ReadOnlyKeyValueStore",
    "ReadOnlySessionStore",
    "ReadOnlyWindowStore",
    "ReadWriteKeyValueStore",
    "ReadWriteSessionStore",
    "ReadWriteWindowStore",
    "Record",
    "RecordMetadata",
    "SerializationError",
    "SessionStore",
    "SessionWindowedKStream",
    "SessionWindows",
    "StateRestoreListener",
    "StateStore",
    "StoreError",
    "StoreSpec",
    "Stores",
    "Streams",
    "StreamsBuilder",
    "StreamsError",
    "StreamsState",
    "Suppressed",
    "TimeWindowedKStream",
    "TimeWindows",
    "Topology",
    "TopologyError",
    "ValueAndTimestamp",
    "Window",
    "WindowStore",
    "Windowed",
]
