"""The two benchmark pipelines in strom.streams (run by bench/streams.py with the project's own venv).

count: page views counted per user in 1-minute tumbling event-time windows (`TimeWindows`, grace 0), updates
       forwarded on commit through the record cache (Kafka Streams' default behaviour).
join:  page views joined with the users KTable (inner stream-table join). Runs until SIGTERM; prints one JSON
line per finished store restore so the benchmark can report the pure restore rate next to the
restart-to-caught-up time it measures from outside.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time

from strom.streams import StreamsBuilder, serdes
from strom.streams.app import Streams
from strom.streams.runtime.restore import StateRestoreListener
from strom.streams.windows import TimeWindows


class PrintingRestoreListener(StateRestoreListener):
    """Prints each finished store restore as one JSON line: records, and wall-clock start and end."""

    def __init__(self) -> None:
        self._began: dict[tuple[str, int], float] = {}

    def on_restore_start(
        self, topic: str, partition: int, store_name: str, start_offset: int, end_offset: int
    ) -> None:
        self._began[(topic, partition)] = time.time()

    def on_restore_end(self, topic: str, partition: int, store_name: str, total_restored: int) -> None:
        began = self._began.pop((topic, partition), time.time())
        line = {"restored": total_restored, "start": began, "end": time.time(), "topic": topic}
        print(json.dumps(line), flush=True)


def build(pipeline: str, views: str, users: str, output: str) -> object:
    builder = StreamsBuilder()
    stream = builder.stream(views, key_serde=serdes.string(), value_serde=serdes.string())
    if pipeline == "count":
        counts = stream.group_by_key().windowed_by(TimeWindows.of_size_and_grace(60_000, 0)).count()
        counts.to_stream().map(lambda wk, n: (wk.key, f"{wk.window.start}:{n}")).to(
            output, key_serde=serdes.string(), value_serde=serdes.string()
        )
    else:
        table = builder.table(users, key_serde=serdes.string(), value_serde=serdes.string())
        stream.join(table, lambda view, user: f"{view}|{user}").to(
            output, key_serde=serdes.string(), value_serde=serdes.string()
        )
    return builder.build()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--pipeline", choices=["count", "join"], required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--views", required=True)
    ap.add_argument("--users", required=True)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()
    config = {
        "application.id": args.group,
        "bootstrap.servers": args.bootstrap,
        "state.dir": args.state_dir,
        "commit.interval.ms": 1000,
    }
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    streams = Streams(build(args.pipeline, args.views, args.users, args.output), config)
    streams.set_global_state_restore_listener(PrintingRestoreListener())
    with streams:
        while not stop.wait(0.5):
            if streams.error is not None:
                raise SystemExit(f"strom.streams failed: {streams.error}")


if __name__ == "__main__":
    main()
