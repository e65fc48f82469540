"""Kafka API handlers, one module per API family; each registers itself through `install(broker)`."""
