"""Processor layer: nodes (stateless, aggregations, tables, joins, suppression), the task context, punctuation
and the low-level Processor API."""

from strom.streams.processor.api import Processor, ProcessorContext, Record, RecordMetadata
from strom.streams.processor.punctuation import Cancellable, PunctuationType

__all__ = ["Cancellable", "Processor", "ProcessorContext", "PunctuationType", "Record", "RecordMetadata"]
