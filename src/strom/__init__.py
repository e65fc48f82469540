"""strom: event streaming in Python: a Kafka-protocol broker, an LSM-tree store and a stream processor."""

__version__ = "0.1.0"
