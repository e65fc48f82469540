"""A strom.streams count app in its own process, for tests that kill an instance with SIGKILL.

    python -m tests.integration.streams_runtime_worker BOOTSTRAP APP_ID VIEWS OUT STATE_DIR

Prints `RUNNING <task ids>` each time the instance (re)enters RUNNING, then runs until killed.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from strom.streams import Materialized, StreamsBuilder, serdes
from strom.streams.app import Streams, StreamsState
from tests.support.streams import streams_config


def count_topology(views: str, out: str) -> object:
    builder = StreamsBuilder()
    (
        builder.stream(views, key_serde=serdes.string(), value_serde=serdes.string())
        .group_by_key()
        .count(Materialized.as_("counts"))
        .to_stream()
        .to(out, key_serde=serdes.string(), value_serde=serdes.long())
    )
    return builder.build()


def main(bootstrap: str, app_id: str, views: str, out: str, state_dir: str) -> None:
    config = streams_config(bootstrap, app_id, Path(state_dir), **{"statestore.cache.max.bytes": 0})
    app = Streams(count_topology(views, out), config)
    running = threading.Event()
    app.set_state_listener(lambda new, old: running.set() if new == StreamsState.RUNNING else None)
    app.start()
    while True:
        running.wait()
        running.clear()
        print("RUNNING", ",".join(app.active_tasks()), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:6])
