"""RecordCollector on a confluent-kafka Producer: where tasks send sink, repartition, changelog and
dead-letter records.

At-least-once depends on two things this module keeps: a failed delivery is never forgotten (it is raised at
the next `send` or `flush`, before any source offset is committed past it), and `flush` returns only when
every record sent so far is acknowledged by the broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from strom.streams.runtime.errors import ProducerSendError

_BUFFER_FULL_WAIT_S = 0.05
_BUFFER_FULL_MAX_WAITS = 1200  # 60 s of a full local queue means the broker is gone: fail rather than hang


class KafkaRecordCollector:
    """Sends records through one Producer shared by all tasks of a stream thread.

    Invariants: `failure` is set by the first failed delivery report and never cleared; `send` and `flush`
    raise ProducerSendError once it is set, so offsets are never committed past a lost record. A full local
    queue makes `send` serve delivery reports and retry (bounded), never drop.
    """

    def __init__(self, producer_config: dict[str, Any]) -> None:
        conf = dict(producer_config)
        conf["on_delivery"] = self._on_delivery
        self._producer = Producer(conf)
        self._produce = self._producer.produce
        self._poll = self._producer.poll
        self.failure: ProducerSendError | None = None
        self._sends = 0

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None and self.failure is None:
            self.failure = ProducerSendError(
                f"failed to send a record to topic {msg.topic()!r} partition {msg.partition()}: {err.str()}; "
                "the stream thread stops so no offset is committed past it"
            )

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> None:
        """Queue one record; partition None lets murmur2 choose by key (random for null keys)."""
        if self.failure is not None:
            raise self.failure
        try:
            if partition is None and not headers:
                self._produce(topic, value, key, timestamp=timestamp_ms)
            else:
                self._produce(
                    topic,
                    value,
                    key,
                    timestamp=timestamp_ms,
                    partition=-1 if partition is None else partition,
                    headers=list(headers) if headers else None,
                )
        except BufferError:
            kwargs: dict[str, Any] = {
                "timestamp": timestamp_ms,
                "partition": -1 if partition is None else partition,
            }
            if headers:
                kwargs["headers"] = list(headers)
            self._send_when_queue_drains(topic, key, value, kwargs)
        self._sends += 1
        if self._sends & 0x3FFF == 0:
            self._poll(0)

    def _send_when_queue_drains(
        self, topic: str, key: bytes | None, value: bytes | None, kwargs: Any
    ) -> None:
        for _ in range(_BUFFER_FULL_MAX_WAITS):
            self._poll(_BUFFER_FULL_WAIT_S)
            if self.failure is not None:
                raise self.failure
            try:
                self._produce(topic, value, key, **kwargs)
                return
            except BufferError:
                continue
        raise ProducerSendError(
            f"producer queue stayed full for {_BUFFER_FULL_WAIT_S * _BUFFER_FULL_MAX_WAITS:.0f} s "
            f"while sending to "
            f"topic {topic!r}: the broker is not accepting records"
        )

    def flush(self, timeout_s: float) -> None:
        """Wait until every queued record is acknowledged; raise if one failed or the timeout passed."""
        remaining = self._producer.flush(timeout_s)
        if self.failure is not None:
            raise self.failure
        if remaining > 0:
            raise ProducerSendError(
                f"{remaining} records were not acknowledged within {timeout_s:.0f} s of flushing; "
                "the broker is unreachable or too slow"
            )

    def serve(self) -> None:
        """Serve delivery reports without blocking; called once per poll loop iteration."""
        self._poll(0)
        if self.failure is not None:
            raise self.failure

    def close(self, timeout_s: float) -> None:
        """Flush what is queued (up to `timeout_s`), then release the producer's threads and connections."""
        self._producer.flush(timeout_s)
        if timeout_s == 0:
            self._producer.purge()
        self._producer.close()
