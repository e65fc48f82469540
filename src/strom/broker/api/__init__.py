"""Kafka API handlers, one module per API family; `strom.broker.handlers` lists which answers which API."""
