"""A Fetch over more than 2 GiB of stored records (issue 9): with max_bytes and fetch.max.bytes both at
2^31-1, the answer must still fit the int32 size prefix of a frame. The broker caps the record bytes of one
response below 2 GiB (`strom.broker.api.fetch.MAX_RECORD_BYTES`); this writes 2.4 GiB over three partitions
and asks for all of it in one request.

Marked `slow` and run only by `make soak` (STROM_SOAK=1): it writes 2.4 GiB to disk and holds about three
times the response in memory, which `make test` should not pay for.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
from pathlib import Path

import pytest
from confluent_kafka.admin import NewTopic

from strom.broker.api.fetch import MAX_RECORD_BYTES
from strom.protocol.api_keys import ApiKey
from strom.protocol.error_codes import ErrorCode
from strom.protocol.records import BatchBuilder, iter_batches
from tests.support.brokers import running_strom
from tests.support.wire import decode_response, request_frame

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("STROM_SOAK") != "1", reason="a soak test: run it with `make soak`"),
]

INT32_MAX = 2**31 - 1
PARTITIONS = 3
BATCH_VALUE = (1 << 20) - 256  # one uncompressed record per batch, under message.max.bytes
BATCHES_PER_APPEND = 32
APPENDS_PER_PARTITION = 25  # 3 x 25 x 32 batches of ~1 MiB: ~2.4 GiB
DISK_NEEDED = 3 << 30  # the 2.4 GiB and some room


def _read_frame(sock: socket.socket) -> bytearray:
    """One response frame read into a single preallocated buffer (no per-recv copies of 2 GiB)."""
    header = bytearray(4)
    view = memoryview(header)
    while view:
        view = view[sock.recv_into(view) :]
    frame = bytearray(struct.unpack(">i", header)[0])
    view = memoryview(frame)
    while view:
        got = sock.recv_into(view)
        assert got, "the broker closed the connection instead of answering"
        view = view[got:]
    return frame


def test_a_fetch_asking_for_more_than_2_gib_gets_an_answer_under_2_gib(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    if free < DISK_NEEDED:
        pytest.skip(f"needs {DISK_NEEDED >> 30} GiB free under {tmp_path}, has {free / 2**30:.1f} GiB")
    builder = BatchBuilder()
    builder.append(key=None, value=b"x" * BATCH_VALUE, timestamp=0)
    payload = builder.build() * BATCHES_PER_APPEND
    config = {"fetch.max.bytes": INT32_MAX}
    with running_strom(tmp_path, config, topics=[NewTopic("big", PARTITIONS)]) as broker:
        assert broker.broker is not None
        sizes = []
        for index in range(PARTITIONS):
            # Appended in-process (the partition takes its own lock): the wire would take minutes
            partition = broker.broker.partition("big", index)
            assert partition is not None
            for _ in range(APPENDS_PER_PARTITION):
                partition.append(payload)
            sizes.append(partition.size_in_bytes)
        assert sum(sizes) > 2.2 * 2**30
        body = {
            "max_wait": 0,
            "min_bytes": 0,
            "max_bytes": INT32_MAX,
            "isolation_level": 0,
            "session_id": 0,
            "session_epoch": -1,
            "forgotten_topics_data": [],
            "rack_id": "",
            "topics": [
                {
                    "topic": "big",
                    "partitions": [
                        {
                            "partition": index,
                            "fetch_offset": 0,
                            "log_start_offset": -1,
                            "partition_max_bytes": INT32_MAX,
                        }
                        for index in range(PARTITIONS)
                    ],
                }
            ],
        }
        host, port = broker.bootstrap_servers.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=120) as sock:
            sock.sendall(request_frame(ApiKey.FETCH, 12, 1, body))
            frame = _read_frame(sock)
    response = decode_response(ApiKey.FETCH, 12, bytes(frame), 1)
    del frame
    partitions = response.responses[0].partitions
    assert [p.error_code for p in partitions] == [ErrorCode.NONE] * PARTITIONS
    record_bytes = [len(p.records) for p in partitions]
    # Filled in request order up to the cap, the last partition's slice cut mid-batch as Kafka cuts it
    # (clients drop the partial batch at the end and fetch it again)
    assert sum(record_bytes) == MAX_RECORD_BYTES
    assert record_bytes[:-1] == sizes[:-1]
    for p in partitions:
        batches = list(iter_batches(bytes(p.records), allow_truncated_tail=True))
        assert [b.base_offset for b in batches] == list(range(len(batches)))
        assert all(b.record_count == 1 for b in batches)
        assert len(p.records) - sum(b.size_in_bytes for b in batches) < len(payload) // BATCHES_PER_APPEND
