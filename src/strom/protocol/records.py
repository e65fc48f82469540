"""Kafka RecordBatch v2: a zero-copy view, validation, in-place offset assignment, and a builder.

The byte layout is specified in docs/formats.md ("RecordBatch") and mirrors Apache Kafka's
`DefaultRecordBatch` / `DefaultRecord`. A segment file and a Fetch payload are both plain concatenations of
batches, so everything here works on `bytes`, `bytearray` or `memoryview` without copying.

The hot paths (produce validation, offset assignment, recovery) touch only the 61-byte header and one CRC-32C
pass over each batch; they never decode records. Record iteration and the builder are for consumers, the
cleaner, tests and control markers.

Magic 0 and 1 (the pre-0.11 message formats) are refused with `UnsupportedMagicError`.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from crc32c import crc32c

from strom.protocol.compression import Compression, compress, decompress
from strom.protocol.errors import (
    CorruptRecordError,
    CrcMismatchError,
    InvalidBatchLengthError,
    InvalidRecordError,
    TruncatedBatchError,
    UnsupportedMagicError,
    VarintError,
)
from strom.protocol.varint import read_varint, write_varint

__all__ = [
    "ATTRIBUTES_OFFSET",
    "BASE_SEQUENCE_OFFSET",
    "BASE_TIMESTAMP_OFFSET",
    "COMPRESSION_CODEC_MASK",
    "CONTROL_FLAG",
    "CRC_OFFSET",
    "CURRENT_MAGIC",
    "DELETE_HORIZON_FLAG",
    "HEADER_SIZE",
    "LAST_OFFSET_DELTA_OFFSET",
    "LENGTH_OFFSET",
    "LOG_OVERHEAD",
    "MAGIC_OFFSET",
    "MAX_TIMESTAMP_OFFSET",
    "PARTITION_LEADER_EPOCH_OFFSET",
    "PRODUCER_EPOCH_OFFSET",
    "PRODUCER_ID_OFFSET",
    "RECORDS_COUNT_OFFSET",
    "TIMESTAMP_TYPE_MASK",
    "TRANSACTIONAL_FLAG",
    "BatchBuilder",
    "BatchWalk",
    "Compression",
    "ControlRecord",
    "ControlRecordType",
    "Record",
    "RecordBatch",
    "RecordSpan",
    "RecordsCheck",
    "TimestampType",
    "assign_offsets",
    "build_control_batch",
    "check_records",
    "iter_batches",
    "read_control_record",
    "rebuild_batch",
    "scan_spans",
    "set_base_offset",
    "set_log_append_time",
    "set_partition_leader_epoch",
    "walk_batches",
]

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta, baseTimestamp,
# maxTimestamp, producerId, producerEpoch, baseSequence, recordsCount
_HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = _HEADER.size  # 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: bytes not counted by batchLength
_MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD  # 49
CURRENT_MAGIC = 2

# Where each header field starts (Kafka's DefaultRecordBatch offsets): the one home of the batch layout.
LENGTH_OFFSET = 8
PARTITION_LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21  # the CRC covers from here to the end of the batch
LAST_OFFSET_DELTA_OFFSET = 23
BASE_TIMESTAMP_OFFSET = 27
MAX_TIMESTAMP_OFFSET = 35
PRODUCER_ID_OFFSET = 43
PRODUCER_EPOCH_OFFSET = 51
BASE_SEQUENCE_OFFSET = 53
RECORDS_COUNT_OFFSET = 57

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")
_U32 = struct.Struct(">I")
_LENGTH_PREFIX = struct.Struct(">qi")

# Attribute bits.
COMPRESSION_CODEC_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_FLAG = 0x10
CONTROL_FLAG = 0x20
DELETE_HORIZON_FLAG = 0x40

NO_TIMESTAMP = -1


class TimestampType(enum.IntEnum):
    """Attribute bit 3: who set the record timestamps."""

    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


class ControlRecordType(enum.IntEnum):
    """Key `type` of a control record (types 2-6 belong to KRaft's metadata log)."""

    ABORT = 0
    COMMIT = 1


class Record(NamedTuple):
    """One record of a batch, with absolute offset and timestamp. A None value is a tombstone."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


class RecordSpan(NamedTuple):
    """Where one record sits in a batch's (decompressed) records block; the cleaner's unit of work.

    `start:end` is the whole encoded record, `body` is the position just after its timestampDelta, so a
    record can be copied verbatim or re-stamped with a new timestamp delta without re-encoding the rest.
    """

    start: int
    body: int
    end: int
    offset_delta: int
    timestamp_delta: int
    key: bytes | None
    is_tombstone: bool


class ControlRecord(NamedTuple):
    """A decoded control record: the marker type and, for ABORT/COMMIT, the coordinator epoch."""

    type: int
    coordinator_epoch: int


class RecordBatch:
    """A read-only view of one RecordBatch v2 over a buffer; no bytes are copied.

    Invariants: the view spans exactly `size_in_bytes` bytes, and the magic byte is 2 (both checked on
    construction, with TruncatedBatchError / InvalidBatchLengthError / UnsupportedMagicError). The CRC is
    checked only by `validate()`, since readers of already-validated segment bytes should not pay for it.
    Header fields are decoded on access, so patches made through `set_base_offset` on the same underlying
    buffer are seen.
    """

    __slots__ = ("_view",)

    def __init__(self, buf: bytes | bytearray | memoryview) -> None:
        view = memoryview(buf)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        available = len(view)
        if available < MAGIC_OFFSET + 1:
            raise TruncatedBatchError(
                f"record batch truncated: {available} bytes available, the header needs {HEADER_SIZE}"
            )
        magic = view[MAGIC_OFFSET]
        if magic != CURRENT_MAGIC:
            raise UnsupportedMagicError(
                f"record batch has magic {magic}; strom accepts only magic 2 (Kafka 0.11+ RecordBatch v2), "
                "upgrade the client or set its message format to v2"
            )
        (batch_length,) = _I32.unpack_from(view, LENGTH_OFFSET)
        if batch_length < _MIN_BATCH_LENGTH:
            raise InvalidBatchLengthError(
                f"record batch length {batch_length} is below the v2 minimum of {_MIN_BATCH_LENGTH}"
            )
        size = batch_length + LOG_OVERHEAD
        if available < size:
            raise TruncatedBatchError(
                f"record batch truncated: batch length {batch_length} needs {size} bytes, "
                f"only {available} available"
            )
        self._view = view[:size] if available != size else view

    @classmethod
    def _checked(cls, view: memoryview) -> RecordBatch:
        """A view over bytes `walk_batches` has already checked (skips the constructor's checks)."""
        batch = cls.__new__(cls)
        batch._view = view
        return batch

    # -- header fields -------------------------------------------------------------------------------

    @property
    def buffer(self) -> memoryview:
        """The batch's bytes, exactly `size_in_bytes` long."""
        return self._view

    @property
    def base_offset(self) -> int:
        return int(_I64.unpack_from(self._view, 0)[0])

    @property
    def batch_length(self) -> int:
        return int(_I32.unpack_from(self._view, LENGTH_OFFSET)[0])

    @property
    def size_in_bytes(self) -> int:
        return len(self._view)

    @property
    def partition_leader_epoch(self) -> int:
        return int(_I32.unpack_from(self._view, PARTITION_LEADER_EPOCH_OFFSET)[0])

    @property
    def magic(self) -> int:
        return int(self._view[MAGIC_OFFSET])

    @property
    def crc(self) -> int:
        return int(_U32.unpack_from(self._view, CRC_OFFSET)[0])

    @property
    def attributes(self) -> int:
        return int(_I16.unpack_from(self._view, ATTRIBUTES_OFFSET)[0])

    @property
    def compression(self) -> Compression:
        return Compression.from_attributes(self.attributes)

    @property
    def timestamp_type(self) -> TimestampType:
        return TimestampType((self.attributes & TIMESTAMP_TYPE_MASK) >> 3)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_FLAG)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_FLAG)

    @property
    def has_delete_horizon(self) -> bool:
        return bool(self.attributes & DELETE_HORIZON_FLAG)

    @property
    def last_offset_delta(self) -> int:
        return int(_I32.unpack_from(self._view, LAST_OFFSET_DELTA_OFFSET)[0])

    @property
    def base_timestamp(self) -> int:
        return int(_I64.unpack_from(self._view, BASE_TIMESTAMP_OFFSET)[0])

    @property
    def max_timestamp(self) -> int:
        return int(_I64.unpack_from(self._view, MAX_TIMESTAMP_OFFSET)[0])

    @property
    def producer_id(self) -> int:
        return int(_I64.unpack_from(self._view, PRODUCER_ID_OFFSET)[0])

    @property
    def producer_epoch(self) -> int:
        return int(_I16.unpack_from(self._view, PRODUCER_EPOCH_OFFSET)[0])

    @property
    def base_sequence(self) -> int:
        return int(_I32.unpack_from(self._view, BASE_SEQUENCE_OFFSET)[0])

    @property
    def last_sequence(self) -> int:
        """Sequence of the last record (wrapping at 2**31 as Kafka does), or -1 without a producer id."""
        base = self.base_sequence
        if base < 0:
            return -1
        return (base + self.last_offset_delta) % (1 << 31)

    @property
    def record_count(self) -> int:
        return int(_I32.unpack_from(self._view, RECORDS_COUNT_OFFSET)[0])

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def delete_horizon_ms(self) -> int | None:
        """The delete horizon stamped by the cleaner (KIP-534), or None when the bit is not set."""
        return self.base_timestamp if self.has_delete_horizon else None

    def __repr__(self) -> str:
        return (
            f"RecordBatch(base_offset={self.base_offset}, last_offset={self.last_offset}, "
            f"records={self.record_count}, size={self.size_in_bytes}, "
            f"compression={self.compression.name.lower()})"
        )

    # -- validation ----------------------------------------------------------------------------------

    def validate(self) -> None:
        """Check CRC-32C, codec and header consistency; raise a specific CorruptRecordError if bad.

        Magic and length were checked on construction. Records are not decoded.
        """
        _check_header(self._view, 0, _HEADER.unpack_from(self._view, 0), from_producer=False)

    # -- records -------------------------------------------------------------------------------------

    def records_data(self, limit: int | None = None) -> bytes:
        """The records block, decompressed if the batch is compressed; with a `limit`, a block that would
        decompress to more bytes raises DecompressedTooLargeError before it is decompressed in full."""
        block = self._view[HEADER_SIZE:]
        codec = self.compression
        if codec is Compression.NONE:
            return bytes(block)
        return decompress(codec, block, limit)

    def records(self, limit: int | None = None) -> Iterator[Record]:
        """Decode every record (decompressing first if needed, into at most `limit` bytes when given);
        raises InvalidRecordError if malformed."""
        base_offset = self.base_offset
        base_timestamp = self.base_timestamp
        append_time = self.max_timestamp if self.timestamp_type is TimestampType.LOG_APPEND_TIME else None
        data = self.records_data(limit)
        count = self.record_count
        for span, value, headers in _parse_records(data, count):
            timestamp = append_time if append_time is not None else base_timestamp + span.timestamp_delta
            yield Record(base_offset + span.offset_delta, timestamp, span.key, value, headers)

    def record_spans(self) -> tuple[bytes, list[RecordSpan]]:
        """The records block and the span of every record in it, skipping values and headers.

        Used by the cleaner: it needs each record's key, offset and tombstone flag, and the byte range to
        copy when the record survives.
        """
        data = self.records_data()
        return data, scan_spans(data, self.record_count)


# -- parsing ----------------------------------------------------------------------------------------


def _parse_records(
    data: bytes, count: int
) -> Iterator[tuple[RecordSpan, bytes | None, tuple[tuple[str, bytes | None], ...]]]:
    """Walk `count` records in `data`, decoding values and headers too."""
    if count < 0:
        raise InvalidRecordError(f"record batch has a negative record count {count}")
    size = len(data)
    pos = 0
    read = read_varint
    index = 0
    try:
        for index in range(count):
            start = pos
            length, pos = read(data, pos)
            end = pos + length
            if length < 6 or end > size:
                raise InvalidRecordError(
                    f"record {index} at byte {start} has length {length}; "
                    f"{size - pos} bytes remain in the records block"
                )
            pos += 1  # attributes, unused
            timestamp_delta, pos = read(data, pos)
            body = pos
            offset_delta, pos = read(data, pos)
            key_length, pos = read(data, pos)
            if key_length < -1 or pos + key_length > end:
                raise InvalidRecordError(f"record {index} at byte {start} has key length {key_length}")
            key = None if key_length < 0 else data[pos : pos + key_length]
            pos += max(key_length, 0)
            value_length, pos = read(data, pos)
            if value_length < -1 or pos + value_length > end:
                raise InvalidRecordError(f"record {index} at byte {start} has value length {value_length}")
            span = RecordSpan(start, body, end, offset_delta, timestamp_delta, key, value_length < 0)
            value = None if value_length < 0 else data[pos : pos + value_length]
            pos += max(value_length, 0)
            header_count, pos = read(data, pos)
            if header_count < 0:
                raise InvalidRecordError(f"record {index} at byte {start} has header count {header_count}")
            headers = []
            for _ in range(header_count):
                byte = data[pos]
                if byte < 0x80:
                    hkey_length = (byte >> 1) ^ -(byte & 1)
                    pos += 1
                else:
                    hkey_length, pos = read(data, pos)
                if hkey_length < 0 or pos + hkey_length > end:
                    raise InvalidRecordError(
                        f"record {index} at byte {start} has header key length {hkey_length}"
                    )
                hkey = data[pos : pos + hkey_length].decode("utf-8")
                pos += hkey_length
                hvalue_length, pos = read(data, pos)
                if hvalue_length < -1 or pos + hvalue_length > end:
                    raise InvalidRecordError(
                        f"record {index} at byte {start} has header value length {hvalue_length}"
                    )
                hvalue = None if hvalue_length < 0 else data[pos : pos + hvalue_length]
                pos += max(hvalue_length, 0)
                headers.append((hkey, hvalue))
            if pos != end:
                raise InvalidRecordError(
                    f"record {index} at byte {start} declares length {length} but its fields end "
                    f"{pos - end:+d} bytes from there"
                )
            yield span, value, tuple(headers)
    except IndexError:
        raise InvalidRecordError(
            f"record {index} runs past the end of the {size}-byte records block"
        ) from None
    except VarintError as exc:
        raise InvalidRecordError(f"record {index}: {exc}") from None
    except UnicodeDecodeError:
        raise InvalidRecordError(f"record {index} has a header key that is not UTF-8") from None
    if pos != size:
        raise InvalidRecordError(
            f"record batch declares {count} records but {size - pos} bytes follow the last of them"
        )


class RecordsCheck(NamedTuple):
    """What `check_records` learnt while checking a records block: the smallest and largest timestamp
    delta (0, 0 for an empty block) and the offset delta of the first keyless record (-1 if none)."""

    min_timestamp_delta: int
    max_timestamp_delta: int
    first_keyless: int


def check_records(data: bytes | memoryview, count: int) -> RecordsCheck:
    """Check the structure of `count` records in a (decompressed) records block, as Kafka's DefaultRecord
    reader does before its LogValidator accepts a batch; raise InvalidRecordError at the first fault.

    Every record: a length that fits the block and matches its fields exactly, varints no longer than
    their type, key and value lengths of at least -1, a header count of at least 0, header keys non-null
    and header values of at least -1, and the offset delta equal to its index (a producer's deltas are
    contiguous from 0). Exactly `count` records fill the block. Nothing is allocated per record: this runs
    on every produced batch, so one-byte varints (deltas, short lengths) are decoded inline.
    """
    if count < 0:
        raise InvalidRecordError(f"record batch has a negative record count {count}")
    if not isinstance(data, bytes):
        data = bytes(data)  # indexing bytes is faster than a memoryview; one copy per batch
    size = len(data)
    read = read_varint
    pos = index = 0
    min_ts = max_ts = 0
    first_keyless = -1
    try:
        for index in range(count):
            start = pos
            byte = data[pos]
            if byte < 0x80:
                length = (byte >> 1) ^ -(byte & 1)
                pos += 1
            else:
                length, pos = read(data, pos)
            end = pos + length
            if length < 6 or end > size:
                raise InvalidRecordError(
                    f"record {index} at byte {start} has length {length}; "
                    f"{size - pos} bytes remain in the records block"
                )
            pos += 1  # attributes, unused
            byte = data[pos]
            if byte < 0x80:
                timestamp_delta = (byte >> 1) ^ -(byte & 1)
                pos += 1
            else:
                timestamp_delta, pos = read(data, pos)
            if index == 0:
                min_ts = max_ts = timestamp_delta
            elif timestamp_delta < min_ts:
                min_ts = timestamp_delta
            elif timestamp_delta > max_ts:
                max_ts = timestamp_delta
            byte = data[pos]
            if byte < 0x80:
                offset_delta = (byte >> 1) ^ -(byte & 1)
                pos += 1
            else:
                offset_delta, pos = read(data, pos)
            if offset_delta != index:
                raise InvalidRecordError(
                    f"record {index} at byte {start} has offset delta {offset_delta}; "
                    f"a produced batch numbers its records 0, 1, 2, ..."
                )
            byte = data[pos]
            if byte < 0x80:
                key_length = (byte >> 1) ^ -(byte & 1)
                pos += 1
            else:
                key_length, pos = read(data, pos)
            if key_length > 0:
                pos += key_length
            elif key_length < 0:
                if key_length < -1:
                    raise InvalidRecordError(f"record {index} at byte {start} has key length {key_length}")
                if first_keyless < 0:
                    first_keyless = index
            byte = data[pos]
            if byte < 0x80:
                value_length = (byte >> 1) ^ -(byte & 1)
                pos += 1
            else:
                value_length, pos = read(data, pos)
            if value_length > 0:
                pos += value_length
            elif value_length < -1:
                raise InvalidRecordError(f"record {index} at byte {start} has value length {value_length}")
            if pos >= end:  # the header count must still follow: a key or value ran past the record
                raise InvalidRecordError(
                    f"record {index} at byte {start}: its key and value run past its length {length}"
                )
            byte = data[pos]
            if byte < 0x80:
                header_count = (byte >> 1) ^ -(byte & 1)
                pos += 1
            else:
                header_count, pos = read(data, pos)
            if header_count < 0 or header_count > end - pos:
                raise InvalidRecordError(f"record {index} at byte {start} has header count {header_count}")
            for _ in range(header_count):
                byte = data[pos]
                if byte < 0x80:
                    hkey_length = (byte >> 1) ^ -(byte & 1)
                    pos += 1
                else:
                    hkey_length, pos = read(data, pos)
                if hkey_length < 0 or pos + hkey_length > end:
                    raise InvalidRecordError(
                        f"record {index} at byte {start} has header key length {hkey_length}"
                    )
                pos += hkey_length
                byte = data[pos]
                if byte < 0x80:
                    hvalue_length = (byte >> 1) ^ -(byte & 1)
                    pos += 1
                else:
                    hvalue_length, pos = read(data, pos)
                if hvalue_length > 0:
                    pos += hvalue_length
                elif hvalue_length < -1:
                    raise InvalidRecordError(
                        f"record {index} at byte {start} has header value length {hvalue_length}"
                    )
            if pos != end:
                raise InvalidRecordError(
                    f"record {index} at byte {start} declares length {length} but its fields end "
                    f"{pos - end:+d} bytes from there"
                )
    except IndexError:
        raise InvalidRecordError(
            f"record {index} runs past the end of the {size}-byte records block"
        ) from None
    except VarintError as exc:
        raise InvalidRecordError(f"record {index}: {exc}") from None
    if pos != size:
        raise InvalidRecordError(
            f"record batch declares {count} records but {size - pos} bytes follow the last of them"
        )
    return RecordsCheck(min_ts, max_ts, first_keyless)


_new_span = tuple.__new__


def scan_spans(data: bytes, count: int) -> list[RecordSpan]:
    """The cleaner's hot loop: locate `count` records and read their keys, skipping values and headers.

    Varints of one byte (deltas, short keys) are decoded inline; longer ones go through `read_varint`.
    """
    if count < 0:
        raise InvalidRecordError(f"record batch has a negative record count {count}")
    size = len(data)
    read = read_varint
    spans: list[RecordSpan] = []
    append = spans.append
    pos = 0
    index = 0
    try:
        for index in range(count):
            start = pos
            length, pos = read(data, pos)
            end = pos + length
            if length < 6 or end > size:
                raise InvalidRecordError(
                    f"record {index} at byte {start} has length {length}; "
                    f"{size - pos} bytes remain in the records block"
                )
            pos += 1  # attributes
            byte = data[pos]
            if byte < 0x80:
                timestamp_delta = (byte >> 1) ^ -(byte & 1)
                pos += 1
            else:
                timestamp_delta, pos = read(data, pos)
            body = pos
            byte = data[pos]
            if byte < 0x80:
                offset_delta = (byte >> 1) ^ -(byte & 1)
                pos += 1
            else:
                offset_delta, pos = read(data, pos)
            byte = data[pos]
            if byte < 0x80:
                key_length = (byte >> 1) ^ -(byte & 1)
                pos += 1
            else:
                key_length, pos = read(data, pos)
            if key_length >= 0:
                key: bytes | None = data[pos : pos + key_length]
                pos += key_length
            elif key_length == -1:
                key = None
            else:
                pos = size + 1
            if pos >= end:  # the value length must still follow the key
                raise InvalidRecordError(f"record {index} at byte {start} has key length {key_length}")
            append(
                _new_span(RecordSpan, (start, body, end, offset_delta, timestamp_delta, key, data[pos] == 1))
            )
            pos = end
    except IndexError:
        raise InvalidRecordError(
            f"record {index} runs past the end of the {size}-byte records block"
        ) from None
    except VarintError as exc:
        raise InvalidRecordError(f"record {index}: {exc}") from None
    if pos != size:
        raise InvalidRecordError(
            f"record batch declares {count} records but {size - pos} bytes follow the last of them"
        )
    return spans


# -- batch walking and validation --------------------------------------------------------------------

_ZSTD = int(Compression.ZSTD)
_COUNTED_HEADER_SIZE = ATTRIBUTES_OFFSET + 2  # a header present through its attributes counts as a batch


def _check_header(view: memoryview, pos: int, header: tuple[int, ...], *, from_producer: bool) -> int:
    """Validate the batch at `pos` whose unpacked header is `header`; return its size in bytes."""
    (base_offset, batch_length, _, magic, crc, attributes, last_offset_delta, _, _, _, _, _, count) = header
    if magic != CURRENT_MAGIC:
        raise UnsupportedMagicError(
            f"record batch at offset {base_offset} has magic {magic}; strom accepts only magic 2 "
            "(Kafka 0.11+ RecordBatch v2)"
        )
    if batch_length < _MIN_BATCH_LENGTH:
        raise InvalidBatchLengthError(
            f"record batch length {batch_length} is below the v2 minimum of {_MIN_BATCH_LENGTH}"
        )
    size = batch_length + LOG_OVERHEAD
    if pos + size > len(view):
        raise TruncatedBatchError(
            f"record batch truncated: batch length {batch_length} needs {size} bytes, "
            f"only {len(view) - pos} available"
        )
    actual = crc32c(view[pos + ATTRIBUTES_OFFSET : pos + size])
    if actual != crc:
        raise CrcMismatchError(
            f"record batch at offset {base_offset} has CRC-32C 0x{crc:08x} in its header but its "
            f"bytes compute to 0x{actual:08x}"
        )
    if attributes & COMPRESSION_CODEC_MASK > 4:
        Compression.from_attributes(attributes)  # raises UnsupportedCompressionError naming the codec
    if count < 0 or last_offset_delta < 0:
        raise InvalidRecordError(
            f"record batch has record count {count} and last offset delta {last_offset_delta}; "
            "neither may be negative"
        )
    if from_producer and (count == 0 or last_offset_delta != count - 1):
        raise InvalidRecordError(
            f"produced record batch has {count} records but last offset delta {last_offset_delta}; "
            "a producer's batch must hold at least one record with contiguous offset deltas"
        )
    return size


@dataclasses.dataclass(slots=True)
class BatchWalk:
    """What one pass over the batch headers of a concatenation of batches (a Produce payload) found.

    `batches` are the batches that passed every header check, in order, up to the first failure, which is
    kept in `error` rather than raised: Kafka's request-level rules (one batch per partition, magic 2, zstd
    from Produce v7) answer before any CRC or length error, so the caller decides the order. The header facts
    those rules need are collected for every batch whose header is present through its attributes, whether or
    not it is valid: `batch_count`, `legacy_magic`, `zstd`, `transactional`. (Not frozen: a frozen
    dataclass costs four times as much to build, and one is built per produced partition.)
    """

    batches: list[RecordBatch]
    error: CorruptRecordError | None
    batch_count: int
    legacy_magic: bool
    zstd: bool
    transactional: bool

    def checked(self) -> list[RecordBatch]:
        """The batches, or the first failure raised: the strict reading of the payload."""
        if self.error is not None:
            raise self.error
        return self.batches


def walk_batches(buf: bytes | bytearray | memoryview, *, from_producer: bool = True) -> BatchWalk:
    """Walk a concatenation of batches once, checking each header and its CRC-32C (one pass per batch).

    Checks per batch: magic 2, length, no truncation, CRC-32C, codec id, and (for producer input) at least
    one record with contiguous offset deltas. No record is decoded and nothing is decompressed. An empty
    buffer is an InvalidRecordError: a produce request must carry at least one batch. After the first
    failure the walk only steps over the remaining headers by their length fields, to count them.
    """
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    total = len(view)
    error: CorruptRecordError | None = None
    if total == 0:
        error = InvalidRecordError("no record batch in a 0-byte records buffer")
    batches = []
    batch_count, legacy_magic, zstd, transactional = 0, False, False, False
    pos = 0
    unpack = _HEADER.unpack_from
    while pos < total:
        left = total - pos
        if left < _COUNTED_HEADER_SIZE:
            if error is None:
                error = _short_batch_error(view, pos)
            break
        header = unpack(view, pos) if left >= HEADER_SIZE else None
        if header is not None:
            batch_length, magic, attributes = header[1], header[3], header[5]
        else:
            (batch_length,) = _I32.unpack_from(view, pos + LENGTH_OFFSET)
            magic = view[pos + MAGIC_OFFSET]
            (attributes,) = _I16.unpack_from(view, pos + ATTRIBUTES_OFFSET)
        batch_count += 1
        if magic != CURRENT_MAGIC:
            legacy_magic = True
        if attributes & COMPRESSION_CODEC_MASK == _ZSTD:
            zstd = True
        if attributes & TRANSACTIONAL_FLAG:
            transactional = True
        if error is None:
            if header is None:
                error = _short_batch_error(view, pos)
            else:
                try:
                    size = _check_header(view, pos, header, from_producer=from_producer)
                except CorruptRecordError as exc:
                    error = exc
                else:
                    batches.append(RecordBatch._checked(view[pos : pos + size]))
                    pos += size
                    continue
        if batch_length <= 0:
            break
        pos += LOG_OVERHEAD + batch_length
    return BatchWalk(batches, error, batch_count, legacy_magic, zstd, transactional)


def _short_batch_error(view: memoryview, pos: int) -> CorruptRecordError:
    """The failure of a batch whose header does not fit in what is left of the buffer."""
    left = len(view) - pos
    if left > MAGIC_OFFSET and view[pos + MAGIC_OFFSET] != CURRENT_MAGIC:
        return UnsupportedMagicError(
            f"record batch at byte {pos} has magic {view[pos + MAGIC_OFFSET]}; "
            "strom accepts only magic 2 (Kafka 0.11+ RecordBatch v2)"
        )
    return TruncatedBatchError(
        f"record batch at byte {pos} truncated: {left} bytes left, the header needs {HEADER_SIZE}"
    )


def iter_batches(
    buf: bytes | bytearray | memoryview, *, allow_truncated_tail: bool = False
) -> Iterator[RecordBatch]:
    """Walk a concatenation of batches, yielding a view of each; CRCs are not checked (call validate()).

    A buffer that ends inside a batch raises TruncatedBatchError, unless `allow_truncated_tail` is set:
    then iteration simply stops there, which is what a Fetch reader wants (brokers may cut the last batch).
    Other header damage (bad magic or length) always raises.
    """
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    total = len(view)
    pos = 0
    while pos < total:
        try:
            batch = RecordBatch(view[pos:])
        except TruncatedBatchError:
            if allow_truncated_tail:
                return
            raise
        yield batch
        pos += batch.size_in_bytes


def set_base_offset(buf: bytearray | memoryview, offset: int, position: int = 0) -> None:
    """Patch the baseOffset of the batch at `position` in place. The CRC does not cover it."""
    _I64.pack_into(buf, position, offset)


def set_partition_leader_epoch(buf: bytearray | memoryview, epoch: int, position: int = 0) -> None:
    """Patch the partitionLeaderEpoch of the batch at `position` in place. The CRC does not cover it."""
    _I32.pack_into(buf, position + PARTITION_LEADER_EPOCH_OFFSET, epoch)


def set_log_append_time(buf: bytearray | memoryview, timestamp: int, position: int = 0) -> None:
    """Stamp the batch at `position` for message.timestamp.type=LogAppendTime, as Kafka's broker does.

    Sets attribute bit 3 and maxTimestamp (readers then give every record this timestamp); baseTimestamp
    and the record deltas are left alone. Both fields are under the CRC, so it is recomputed: one pass
    over the batch.
    """
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    (batch_length,) = _I32.unpack_from(view, position + LENGTH_OFFSET)
    (attributes,) = _I16.unpack_from(view, position + ATTRIBUTES_OFFSET)
    _I16.pack_into(view, position + ATTRIBUTES_OFFSET, attributes | TIMESTAMP_TYPE_MASK)
    _I64.pack_into(view, position + MAX_TIMESTAMP_OFFSET, timestamp)
    end = position + batch_length + LOG_OVERHEAD
    _U32.pack_into(view, position + CRC_OFFSET, crc32c(view[position + ATTRIBUTES_OFFSET : end]))


def assign_offsets(buf: bytearray | memoryview, first_offset: int, partition_leader_epoch: int) -> int:
    """Assign consecutive offsets and the leader epoch to every batch in `buf`; return the next offset.

    The batches must have been validated already. Only the 12 header bytes not covered by the CRC are
    written, so the CRC stays valid.
    """
    view = memoryview(buf)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    total = len(view)
    pos = 0
    offset = first_offset
    while pos < total:
        (batch_length,) = _I32.unpack_from(view, pos + LENGTH_OFFSET)
        (last_offset_delta,) = _I32.unpack_from(view, pos + LAST_OFFSET_DELTA_OFFSET)
        _I64.pack_into(view, pos, offset)
        _I32.pack_into(view, pos + PARTITION_LEADER_EPOCH_OFFSET, partition_leader_epoch)
        offset += last_offset_delta + 1
        pos += batch_length + LOG_OVERHEAD
    return offset


# -- building ---------------------------------------------------------------------------------------


def _encode_record(
    offset_delta: int,
    timestamp_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes | None]],
) -> bytes:
    parts = [b"\x00", write_varint(timestamp_delta), write_varint(offset_delta)]
    for field in (key, value):
        if field is None:
            parts.append(write_varint(-1))
        else:
            parts.append(write_varint(len(field)))
            parts.append(bytes(field))
    header_list = list(headers)
    parts.append(write_varint(len(header_list)))
    for hkey, hvalue in header_list:
        encoded = hkey.encode("utf-8")
        parts.append(write_varint(len(encoded)))
        parts.append(encoded)
        if hvalue is None:
            parts.append(write_varint(-1))
        else:
            parts.append(write_varint(len(hvalue)))
            parts.append(bytes(hvalue))
    body = b"".join(parts)
    return write_varint(len(body)) + body


def _attributes(
    compression: Compression,
    timestamp_type: TimestampType,
    is_transactional: bool,
    is_control: bool,
    has_delete_horizon: bool,
) -> int:
    return (
        int(compression)
        | (TIMESTAMP_TYPE_MASK if timestamp_type is TimestampType.LOG_APPEND_TIME else 0)
        | (TRANSACTIONAL_FLAG if is_transactional else 0)
        | (CONTROL_FLAG if is_control else 0)
        | (DELETE_HORIZON_FLAG if has_delete_horizon else 0)
    )


def _assemble(
    *,
    base_offset: int,
    partition_leader_epoch: int,
    attributes: int,
    last_offset_delta: int,
    base_timestamp: int,
    max_timestamp: int,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    record_count: int,
    records_block: bytes,
) -> bytes:
    """Lay out a batch around an (already compressed) records block and compute its CRC."""
    batch = bytearray(HEADER_SIZE + len(records_block))
    _HEADER.pack_into(
        batch,
        0,
        base_offset,
        len(batch) - LOG_OVERHEAD,
        partition_leader_epoch,
        CURRENT_MAGIC,
        0,
        attributes,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        record_count,
    )
    batch[HEADER_SIZE:] = records_block
    _U32.pack_into(batch, CRC_OFFSET, crc32c(memoryview(batch)[ATTRIBUTES_OFFSET:]))
    return bytes(batch)


class BatchBuilder:
    """Accumulates records and encodes them as one RecordBatch v2 (used by tests, the cleaner, markers).

    Offsets default to consecutive deltas from 0; an explicit `offset_delta` lets a caller reproduce the
    gaps of a compacted batch. The base timestamp is the first record's timestamp, or the delete horizon
    when one is given (KIP-534); record timestamps are stored relative to it either way.
    """

    def __init__(
        self,
        *,
        base_offset: int = 0,
        compression: Compression = Compression.NONE,
        timestamp_type: TimestampType = TimestampType.CREATE_TIME,
        producer_id: int = -1,
        producer_epoch: int = -1,
        base_sequence: int = -1,
        is_transactional: bool = False,
        is_control: bool = False,
        partition_leader_epoch: int = -1,
        delete_horizon_ms: int | None = None,
        log_append_time: int | None = None,
    ) -> None:
        self.base_offset = base_offset
        self.compression = compression
        self.timestamp_type = timestamp_type
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.base_sequence = base_sequence
        self.is_transactional = is_transactional
        self.is_control = is_control
        self.partition_leader_epoch = partition_leader_epoch
        self.delete_horizon_ms = delete_horizon_ms
        self.log_append_time = log_append_time
        self._records: list[tuple[int, int, bytes | None, bytes | None, tuple[tuple[str, bytes | None], ...]]]
        self._records = []
        self._next_delta = 0

    def __len__(self) -> int:
        return len(self._records)

    def append(
        self,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Sequence[tuple[str, bytes | None]] = (),
        offset_delta: int | None = None,
    ) -> int:
        """Add a record; return its absolute offset. Offset deltas must increase."""
        delta = self._next_delta if offset_delta is None else offset_delta
        if delta < self._next_delta:
            raise ValueError(
                f"offset delta {delta} does not follow the previous one ({self._next_delta - 1})"
            )
        self._records.append((delta, timestamp, key, value, tuple(headers)))
        self._next_delta = delta + 1
        return self.base_offset + delta

    def build(self, *, last_offset_delta: int | None = None, max_timestamp: int | None = None) -> bytes:
        """Encode the batch. `last_offset_delta` may exceed the last record's (compacted batches)."""
        records = self._records
        if records:
            first_timestamp = records[0][1]
            newest = max(r[1] for r in records)
        else:
            first_timestamp = newest = NO_TIMESTAMP if max_timestamp is None else max_timestamp
        if self.timestamp_type is TimestampType.LOG_APPEND_TIME and self.log_append_time is not None:
            newest = self.log_append_time
        if max_timestamp is not None:
            newest = max_timestamp
        base_timestamp = first_timestamp if self.delete_horizon_ms is None else self.delete_horizon_ms
        last_delta = records[-1][0] if records else 0
        if last_offset_delta is not None:
            if last_offset_delta < last_delta:
                raise ValueError(
                    f"last offset delta {last_offset_delta} is below the last record's {last_delta}"
                )
            last_delta = last_offset_delta
        block = b"".join(
            _encode_record(delta, timestamp - base_timestamp, key, value, headers)
            for delta, timestamp, key, value, headers in records
        )
        codec = self.compression if records else Compression.NONE
        if codec is not Compression.NONE:
            block = compress(codec, block)
        return _assemble(
            base_offset=self.base_offset,
            partition_leader_epoch=self.partition_leader_epoch,
            attributes=_attributes(
                codec,
                self.timestamp_type,
                self.is_transactional,
                self.is_control,
                self.delete_horizon_ms is not None,
            ),
            last_offset_delta=last_delta,
            base_timestamp=base_timestamp,
            max_timestamp=newest,
            producer_id=self.producer_id,
            producer_epoch=self.producer_epoch,
            base_sequence=self.base_sequence,
            record_count=len(records),
            records_block=block,
        )


_CONTROL_KEY = struct.Struct(">hh")
_CONTROL_VALUE = struct.Struct(">hi")


def build_control_batch(
    kind: ControlRecordType,
    *,
    producer_id: int,
    producer_epoch: int,
    timestamp: int,
    coordinator_epoch: int = 0,
    base_offset: int = 0,
    partition_leader_epoch: int = -1,
) -> bytes:
    """A transaction marker: a transactional control batch with one COMMIT or ABORT record."""
    builder = BatchBuilder(
        base_offset=base_offset,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        is_transactional=True,
        is_control=True,
        partition_leader_epoch=partition_leader_epoch,
    )
    builder.append(_CONTROL_KEY.pack(0, int(kind)), _CONTROL_VALUE.pack(0, coordinator_epoch), timestamp)
    return builder.build()


def read_control_record(record: Record) -> ControlRecord:
    """Decode a control record's key (and, for ABORT/COMMIT, its value)."""
    key = record.key
    if key is None or len(key) < _CONTROL_KEY.size:
        raise InvalidRecordError(
            f"control record at offset {record.offset} has a {0 if key is None else len(key)}-byte key; "
            f"at least {_CONTROL_KEY.size} are required"
        )
    _, kind = _CONTROL_KEY.unpack_from(key)
    coordinator_epoch = -1
    if kind in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
        value = record.value
        if value is None or len(value) < _CONTROL_VALUE.size:
            raise InvalidRecordError(
                f"transaction marker at offset {record.offset} has a value shorter than "
                f"{_CONTROL_VALUE.size} bytes"
            )
        _, coordinator_epoch = _CONTROL_VALUE.unpack_from(value)
    return ControlRecord(kind, coordinator_epoch)


# -- rewriting (the cleaner) ------------------------------------------------------------------------


def rebuild_batch(
    batch: RecordBatch,
    data: bytes,
    kept: Sequence[RecordSpan],
    *,
    delete_horizon_ms: int | None = None,
    compression: Compression | None = None,
    log_append_time: int | None = None,
) -> bytes:
    """A copy of `batch` holding only the `kept` records, with every header field that identifies the
    batch (base offset, last offset delta, producer id/epoch/sequence, flags, max timestamp) preserved.

    `data` and `kept` come from `batch.record_spans()`. Surviving records are copied byte for byte; only
    when a new delete horizon moves the base timestamp are their timestamp deltas re-encoded. An emptied
    batch is written uncompressed, header only, as Kafka does. The batch is recompressed with its codec, or
    with `compression` when given (a topic's compression.type). `log_append_time` stamps the copy for
    message.timestamp.type=LogAppendTime (as `set_log_append_time`), so its one CRC covers the stamp.
    """
    (base_offset, _, leader_epoch, _, _, attributes, last_delta, base_ts, max_ts, pid, epoch, seq, count) = (
        _HEADER.unpack_from(batch.buffer, 0)
    )
    old_base_ts = base_ts
    if compression is not None:
        attributes = (attributes & ~COMPRESSION_CODEC_MASK) | int(compression)
    if log_append_time is not None:
        attributes |= TIMESTAMP_TYPE_MASK
        max_ts = log_append_time
    if delete_horizon_ms is not None:
        attributes |= DELETE_HORIZON_FLAG
        base_ts = delete_horizon_ms
    if not kept:
        codec = Compression.NONE
        block = b""
        # As Kafka's DefaultRecordBatch.writeEmptyHeader: no base timestamp and no delete horizon (nothing
        # is left to delete); the max timestamp stays.
        attributes &= ~DELETE_HORIZON_FLAG
        base_ts = NO_TIMESTAMP
    else:
        codec = Compression.from_attributes(attributes)
        if base_ts == old_base_ts and len(kept) == count:
            block = data  # every record kept: the spans tile the whole block
        elif base_ts == old_base_ts:
            block = b"".join([data[s.start : s.end] for s in kept])
        else:
            shift = old_base_ts - base_ts
            parts = []
            for s in kept:
                body = write_varint(s.timestamp_delta + shift) + data[s.body : s.end]
                parts.append(write_varint(len(body) + 1))
                parts.append(b"\x00")
                parts.append(body)
            block = b"".join(parts)
        if codec is not Compression.NONE:
            block = compress(codec, block)
    attributes = (attributes & ~COMPRESSION_CODEC_MASK) | int(codec)
    return _assemble(
        base_offset=base_offset,
        partition_leader_epoch=leader_epoch,
        attributes=attributes,
        last_offset_delta=last_delta,
        base_timestamp=base_ts,
        max_timestamp=max_ts,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        record_count=len(kept),
        records_block=block,
    )
