"""The graph a ``StreamsBuilder`` builds: the topology under construction and Kafka Streams' node-name
sequence (``KSTREAM-SOURCE-0000000000``, ...), shared by the builder and every stream and table made from it
(Kafka's ``InternalStreamsBuilder``). Streams and tables hold this, not the builder, so the DSL classes do not
depend on the entry point that creates them.
"""

from __future__ import annotations

from strom.streams.topology import Topology


class StreamGraph:
    """Invariant: every generated name is unique within the topology (one counter per builder)."""

    __slots__ = ("_index", "topology")

    def __init__(self) -> None:
        self.topology = Topology()
        self._index = 0

    def new_name(self, prefix: str) -> str:
        """``prefix`` + a 10-digit sequence number shared by all generated names of this graph."""
        name = f"{prefix}{self._index:010d}"
        self._index += 1
        return name
