"""strom: an event-streaming platform in Python (a Kafka-protocol broker, an LSM-tree store, a stream processor)."""

__version__ = "0.1.0"
