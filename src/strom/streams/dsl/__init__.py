"""The Kafka-Streams-style DSL: ``StreamsBuilder`` -> ``KStream`` / ``KTable`` / ``GlobalKTable`` ->
``Topology``."""

from strom.streams.dsl.builder import StreamsBuilder
from strom.streams.dsl.grouped import (
    KGroupedStream,
    KGroupedTable,
    SessionWindowedKStream,
    TimeWindowedKStream,
)
from strom.streams.dsl.kstream import BranchedKStream, KStream
from strom.streams.dsl.ktable import GlobalKTable, KTable
from strom.streams.dsl.materialized import Materialized

__all__ = [
    "BranchedKStream",
    "GlobalKTable",
    "KGroupedStream",
    "KGroupedTable",
    "KStream",
    "KTable",
    "Materialized",
    "SessionWindowedKStream",
    "StreamsBuilder",
    "TimeWindowedKStream",
]
