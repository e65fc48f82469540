"""strom.broker's exception root: every broker failure that a client hears about carries its Kafka error code.

Handlers catch `BrokerError` (or a subclass) and answer with `exc.error_code`; they never map exception types
to numbers themselves. The default, UNKNOWN_SERVER_ERROR, is for failures with no closer Kafka code.
"""

from __future__ import annotations

from strom.protocol.error_codes import ErrorCode


class BrokerError(Exception):
    """Root of strom.broker's exceptions; `error_code` is what a client is answered with."""

    error_code: ErrorCode = ErrorCode.UNKNOWN_SERVER_ERROR


class StorageError(BrokerError):
    """The data directory could not take a write (typically a full disk); nothing was changed."""

    error_code = ErrorCode.KAFKA_STORAGE_ERROR
