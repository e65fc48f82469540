"""RecordBatch v2: builder -> view round trips, header patching, and the specific errors for bad bytes."""

from __future__ import annotations

import struct

import pytest
from crc32c import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from strom.protocol.error_codes import ErrorCode
from strom.protocol.errors import (
    CorruptRecordError,
    CrcMismatchError,
    InvalidBatchLengthError,
    InvalidRecordError,
    TruncatedBatchError,
    UnsupportedCompressionError,
    UnsupportedMagicError,
)
from strom.protocol.records import (
    HEADER_SIZE,
    BatchBuilder,
    Compression,
    ControlRecordType,
    RecordBatch,
    TimestampType,
    assign_offsets,
    build_control_batch,
    iter_batches,
    read_control_record,
    rebuild_batch,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
    walk_batches,
)

optional_bytes = st.one_of(st.none(), st.binary(max_size=300))
headers_st = st.lists(st.tuples(st.text(max_size=10), optional_bytes), max_size=3)
record_st = st.tuples(optional_bytes, optional_bytes, st.integers(0, 2**41), headers_st)


def _build(records: list, codec: Compression = Compression.NONE, **kwargs: object) -> bytes:
    builder = BatchBuilder(compression=codec, **kwargs)  # type: ignore[arg-type]
    for key, value, timestamp, headers in records:
        builder.append(key, value, timestamp, headers)
    return builder.build()


def _recrc(buf: bytearray) -> None:
    struct.pack_into(">I", buf, 17, crc32c(bytes(buf[21:])))


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(record_st, min_size=1, max_size=20),
    codec=st.sampled_from(list(Compression)),
    base_offset=st.integers(0, 2**62),
    producer=st.tuples(st.integers(-1, 2**40), st.integers(-1, 30000), st.integers(-1, 2**31 - 1)),
    transactional=st.booleans(),
)
def test_builder_round_trips_through_the_view(
    records: list, codec: Compression, base_offset: int, producer: tuple, transactional: bool
) -> None:
    pid, epoch, seq = producer
    raw = _build(
        records,
        codec,
        base_offset=base_offset,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
        is_transactional=transactional,
    )
    batch = RecordBatch(raw)
    batch.validate()
    assert batch.magic == 2
    assert batch.size_in_bytes == len(raw) == batch.batch_length + 12
    assert batch.compression is codec
    assert batch.base_offset == base_offset
    assert batch.record_count == len(records)
    assert batch.last_offset == base_offset + len(records) - 1
    assert batch.next_offset == batch.last_offset + 1
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == producer
    assert batch.is_transactional is transactional
    assert not batch.is_control
    assert batch.base_timestamp == records[0][2]
    assert batch.max_timestamp == max(r[2] for r in records)
    decoded = list(batch.records())
    assert [(r.key, r.value, r.timestamp, list(r.headers)) for r in decoded] == [
        (k, v, t, list(h)) for k, v, t, h in records
    ]
    assert [r.offset for r in decoded] == list(range(base_offset, base_offset + len(records)))
    assert walk_batches(raw).checked()[0].base_offset == base_offset


def test_header_fields_sit_where_kafka_puts_them() -> None:
    raw = _build(
        [(b"k", b"v", 1234, [])],
        Compression.NONE,
        base_offset=42,
        producer_id=9,
        producer_epoch=3,
        base_sequence=17,
        partition_leader_epoch=5,
    )
    fields = struct.unpack_from(">qiibIhiqqqhii", raw)
    assert fields == (42, len(raw) - 12, 5, 2, crc32c(raw[21:]), 0, 0, 1234, 1234, 9, 3, 17, 1)
    assert len(raw) > HEADER_SIZE


def test_patching_offset_and_epoch_keeps_the_crc_valid() -> None:
    raw = bytearray(_build([(b"a", b"1", 1, []), (b"b", b"2", 2, [])], Compression.GZIP))
    crc_before = RecordBatch(raw).crc
    set_base_offset(raw, 1000)
    set_partition_leader_epoch(raw, 7)
    batch = RecordBatch(raw)
    batch.validate()
    assert (batch.base_offset, batch.partition_leader_epoch, batch.crc) == (1000, 7, crc_before)
    assert [r.offset for r in batch.records()] == [1000, 1001]


def test_assign_offsets_numbers_every_batch_consecutively() -> None:
    one = _build([(b"a", b"1", 1, [])] * 3)
    two = _build([(b"b", b"2", 2, [])] * 5, Compression.LZ4)
    buf = bytearray(one + two + one)
    assert assign_offsets(buf, 50, 4) == 61
    batches = walk_batches(buf).checked()
    assert [(b.base_offset, b.last_offset, b.partition_leader_epoch) for b in batches] == [
        (50, 52, 4),
        (53, 57, 4),
        (58, 60, 4),
    ]


def test_view_is_zero_copy_and_sees_patches() -> None:
    buf = bytearray(_build([(b"k", b"v", 5, [])]))
    batch = RecordBatch(buf)
    set_base_offset(buf, 77)
    assert batch.base_offset == 77
    assert batch.buffer.obj is buf


def test_iter_batches_walks_a_concatenation_and_reports_a_torn_tail() -> None:
    raws = [_build([(b"k%d" % i, b"v", i, [])], base_offset=i) for i in range(4)]
    whole = b"".join(raws)
    assert [b.base_offset for b in iter_batches(whole)] == [0, 1, 2, 3]
    torn = whole[:-5]
    with pytest.raises(TruncatedBatchError, match="needs"):
        list(iter_batches(torn))
    assert [b.base_offset for b in iter_batches(torn, allow_truncated_tail=True)] == [0, 1, 2]
    assert list(iter_batches(b"")) == []


@settings(max_examples=50, deadline=None)
@given(records=st.lists(record_st, min_size=1, max_size=5), cut=st.integers(1, 10_000))
def test_any_truncation_raises_truncated_batch_error(records: list, cut: int) -> None:
    raw = _build(records)
    truncated = raw[: 1 + cut % (len(raw) - 1)]  # 1 .. len - 1 bytes
    with pytest.raises(TruncatedBatchError):
        walk_batches(truncated).checked()
    with pytest.raises(TruncatedBatchError):
        RecordBatch(truncated)


@settings(max_examples=80, deadline=None)
@given(
    records=st.lists(record_st, min_size=1, max_size=5),
    codec=st.sampled_from(list(Compression)),
    position=st.integers(21, 10_000),
    flip=st.integers(1, 255),
)
def test_any_flipped_byte_under_the_crc_raises_crc_mismatch(
    records: list, codec: Compression, position: int, flip: int
) -> None:
    raw = bytearray(_build(records, codec))
    position = 21 + position % (len(raw) - 21)
    raw[position] ^= flip
    with pytest.raises(CrcMismatchError, match="CRC-32C"):
        walk_batches(raw).checked()
    with pytest.raises(CrcMismatchError):
        RecordBatch(raw).validate()


def test_magic_0_and_1_are_refused_by_name() -> None:
    raw = bytearray(_build([(b"k", b"v", 1, [])]))
    for magic in (0, 1):
        raw[16] = magic
        with pytest.raises(UnsupportedMagicError, match=f"magic {magic}.*only magic 2"):
            walk_batches(raw).checked()
        with pytest.raises(UnsupportedMagicError):
            RecordBatch(raw)
    assert UnsupportedMagicError.error_code == ErrorCode.INVALID_RECORD  # Kafka's answer to magic 0/1


def test_a_legacy_message_set_is_refused_as_unsupported_magic() -> None:
    # A v1 message: offset, size, crc, magic=1, attributes, timestamp, key=-1, value "x".
    body = struct.pack(">bbqi", 1, 0, 0, -1) + struct.pack(">i", 1) + b"x"
    legacy = struct.pack(">qiI", 0, len(body) + 4, 0) + body
    with pytest.raises(UnsupportedMagicError, match="magic 1"):
        walk_batches(legacy).checked()


def test_impossible_batch_length_is_named() -> None:
    raw = bytearray(_build([(b"k", b"v", 1, [])]))
    struct.pack_into(">i", raw, 8, 10)
    with pytest.raises(InvalidBatchLengthError, match="length 10 is below the v2 minimum of 49"):
        walk_batches(raw).checked()
    struct.pack_into(">i", raw, 8, -5)
    with pytest.raises(InvalidBatchLengthError):
        list(iter_batches(raw))


def test_overlong_batch_length_is_a_truncation() -> None:
    raw = bytearray(_build([(b"k", b"v", 1, [])]))
    struct.pack_into(">i", raw, 8, len(raw))
    with pytest.raises(TruncatedBatchError, match=f"only {len(raw)} available"):
        walk_batches(raw).checked()


def test_unknown_codec_is_unsupported_compression() -> None:
    raw = bytearray(_build([(b"k", b"v", 1, [])]))
    struct.pack_into(">h", raw, 21, 6)
    _recrc(raw)
    with pytest.raises(UnsupportedCompressionError, match="codec 6"):
        walk_batches(raw).checked()


def test_producer_batches_must_have_contiguous_records() -> None:
    builder = BatchBuilder()
    builder.append(b"k", b"v", 1)
    gapped = builder.build(last_offset_delta=3)
    with pytest.raises(InvalidRecordError, match="contiguous"):
        walk_batches(gapped).checked()
    assert walk_batches(gapped, from_producer=False).checked()[0].last_offset_delta == 3
    with pytest.raises(InvalidRecordError, match="0-byte"):
        walk_batches(b"").checked()


def test_malformed_records_raise_invalid_record_error() -> None:
    raw = bytearray(_build([(b"key", b"value", 1, [("h", b"x")])]))
    raw[HEADER_SIZE + 4] = 0x7E  # key length varint -> 63: runs past the record
    _recrc(raw)
    batch = RecordBatch(raw)
    batch.validate()  # the header and CRC are fine; only decoding finds the damage
    with pytest.raises(InvalidRecordError, match="key length"):
        list(batch.records())


def test_record_count_disagreeing_with_contents_is_invalid() -> None:
    raw = bytearray(_build([(b"k", b"v", 1, [])] * 3))
    struct.pack_into(">i", raw, 57, 2)
    _recrc(raw)
    with pytest.raises(InvalidRecordError, match="declares 2 records"):
        list(RecordBatch(raw).records())
    struct.pack_into(">i", raw, 57, 4)
    _recrc(raw)
    with pytest.raises(InvalidRecordError, match="runs past the end"):
        list(RecordBatch(raw).records())


def test_corrupt_compressed_block_is_invalid_record() -> None:
    raw = bytearray(_build([(b"k", b"v" * 100, 1, [])] * 3, Compression.ZSTD))
    raw[HEADER_SIZE : HEADER_SIZE + 4] = b"\x00\x00\x00\x00"
    _recrc(raw)
    with pytest.raises(InvalidRecordError, match="zstd"):
        list(RecordBatch(raw).records())


@settings(max_examples=100, deadline=None)
@given(garbage=st.binary(max_size=200))
def test_random_bytes_never_crash_only_corrupt_record_errors(garbage: bytes) -> None:
    try:
        for batch in walk_batches(garbage, from_producer=False).checked():
            list(batch.records())
    except CorruptRecordError:
        pass


def test_control_batches_carry_transaction_markers() -> None:
    raw = build_control_batch(
        ControlRecordType.COMMIT, producer_id=12, producer_epoch=2, timestamp=99, coordinator_epoch=4
    )
    batch = RecordBatch(raw)
    batch.validate()
    assert batch.is_control and batch.is_transactional
    assert (batch.producer_id, batch.producer_epoch, batch.record_count) == (12, 2, 1)
    (record,) = batch.records()
    assert read_control_record(record) == (ControlRecordType.COMMIT, 4)
    abort = RecordBatch(
        build_control_batch(ControlRecordType.ABORT, producer_id=1, producer_epoch=0, timestamp=1)
    )
    assert read_control_record(next(abort.records())).type == ControlRecordType.ABORT


def test_log_append_time_gives_every_record_the_batch_time() -> None:
    builder = BatchBuilder(timestamp_type=TimestampType.LOG_APPEND_TIME, log_append_time=5000)
    builder.append(b"a", b"1", 10)
    builder.append(b"b", b"2", 20)
    batch = RecordBatch(builder.build())
    assert batch.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert [r.timestamp for r in batch.records()] == [5000, 5000]


def test_set_log_append_time_restamps_every_batch_and_keeps_it_valid() -> None:
    first = _build([(b"a", b"1", 10, []), (b"b", b"2", 20, [])], Compression.SNAPPY)
    buf = bytearray(first + first)
    set_log_append_time(buf, 777, position=len(first))
    one, two = walk_batches(buf).checked()
    assert one.timestamp_type is TimestampType.CREATE_TIME
    assert [r.timestamp for r in one.records()] == [10, 20]
    assert two.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert two.max_timestamp == 777 and two.base_timestamp == 10
    assert [r.timestamp for r in two.records()] == [777, 777]


def test_last_sequence_wraps_like_kafka() -> None:
    builder = BatchBuilder(producer_id=1, producer_epoch=0, base_sequence=2**31 - 2)
    for i in range(4):
        builder.append(b"k", b"%d" % i, i)
    assert RecordBatch(builder.build()).last_sequence == 1
    assert RecordBatch(_build([(b"k", b"v", 1, [])])).last_sequence == -1


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(record_st, min_size=1, max_size=12),
    codec=st.sampled_from(list(Compression)),
    keep_mask=st.lists(st.booleans(), min_size=12, max_size=12),
    horizon=st.one_of(st.none(), st.integers(0, 2**42)),
)
def test_rebuild_keeps_offsets_and_identity_of_surviving_records(
    records: list, codec: Compression, keep_mask: list, horizon: int | None
) -> None:
    raw = _build(records, codec, base_offset=100, producer_id=5, producer_epoch=1, base_sequence=10)
    batch = RecordBatch(raw)
    data, spans = batch.record_spans()
    assert [s.key for s in spans] == [r[0] for r in records]
    assert [s.is_tombstone for s in spans] == [r[1] is None for r in records]
    kept = [s for s, keep in zip(spans, keep_mask, strict=False) if keep]
    rebuilt = RecordBatch(rebuild_batch(batch, data, kept, delete_horizon_ms=horizon))
    rebuilt.validate()
    assert (rebuilt.base_offset, rebuilt.last_offset) == (batch.base_offset, batch.last_offset)
    assert (rebuilt.producer_id, rebuilt.producer_epoch, rebuilt.base_sequence) == (5, 1, 10)
    assert rebuilt.max_timestamp == batch.max_timestamp
    assert rebuilt.delete_horizon_ms == (horizon if kept else None)  # an empty batch has nothing to delete
    originals = {r.offset: r for r in batch.records()}
    survivors = list(rebuilt.records())
    assert [r.offset for r in survivors] == [100 + s.offset_delta for s in kept]
    assert survivors == [originals[r.offset] for r in survivors]
    if not kept:  # Kafka's empty-batch header (writeEmptyHeader)
        assert rebuilt.size_in_bytes == HEADER_SIZE
        assert rebuilt.compression is Compression.NONE
        assert rebuilt.base_timestamp == -1


@settings(max_examples=80, deadline=None)
@given(
    records=st.lists(record_st, min_size=1, max_size=4),
    position=st.integers(0, 60),
    flip=st.integers(1, 255),
)
def test_a_damaged_header_is_detected_unless_outside_the_crc_by_design(
    records: list, position: int, flip: int
) -> None:
    raw = bytearray(_build(records))
    raw[position] ^= flip
    unprotected = position < 8 or 12 <= position < 16  # baseOffset and leader epoch: patched in place
    if unprotected:
        walk_batches(raw).checked()
        return
    kinds: tuple[type[Exception], ...] = (CrcMismatchError,)  # the CRC itself (17-20) and what it covers
    if 8 <= position < 12:
        kinds = (InvalidBatchLengthError, TruncatedBatchError, CrcMismatchError)
    elif position == 16:
        kinds = (UnsupportedMagicError,)
    with pytest.raises(kinds):
        walk_batches(raw).checked()


def test_malformed_control_records_are_named() -> None:
    builder = BatchBuilder(is_control=True, is_transactional=True, producer_id=1, producer_epoch=0)
    builder.append(b"\x00", b"", 1)
    (record,) = RecordBatch(builder.build()).records()
    with pytest.raises(InvalidRecordError, match="1-byte key"):
        read_control_record(record)
    builder = BatchBuilder(is_control=True, is_transactional=True, producer_id=1, producer_epoch=0)
    builder.append(struct.pack(">hh", 0, 1), b"\x00", 1)
    (record,) = RecordBatch(builder.build()).records()
    with pytest.raises(InvalidRecordError, match="transaction marker"):
        read_control_record(record)


def test_builder_refuses_offsets_that_go_backwards() -> None:
    builder = BatchBuilder(base_offset=10)
    assert builder.append(b"a", b"1", 1, offset_delta=3) == 13
    with pytest.raises(ValueError, match="offset delta 2"):
        builder.append(b"b", b"2", 2, offset_delta=2)
    with pytest.raises(ValueError, match="below the last record"):
        builder.build(last_offset_delta=1)
    batch = RecordBatch(builder.build(last_offset_delta=7))
    assert (batch.last_offset, batch.record_count, [r.offset for r in batch.records()]) == (17, 1, [13])
