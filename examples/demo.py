"""`make demo`: a strom.streams application on strom's own broker, live in the terminal for about 25 seconds.

It starts an EmbeddedBroker (a Kafka-protocol broker in this process, data in a temporary directory), feeds it
a users table (compacted topic, one record per user, some users move country mid-way) and a stream of page
views, and runs one strom.streams application with two pipelines:

  * views per page in 10-second tumbling windows: the views are keyed by user, so `group_by(page)` goes
  through
    an internal repartition topic; the counts live in a window store with a compact,delete changelog;
  * page views joined with the users table (KStream-KTable join): each view is enriched with the user's
  country
    as it is at the moment the view is processed.

Both results are read back from their output topics with a plain Kafka consumer and shown as they arrive. At
the end the demo checks that the final window counts add up to the number of views sent, and exits 0.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections import deque

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from strom.broker import EmbeddedBroker
from strom.streams import StreamsBuilder, TimeWindows, serdes
from strom.streams.app import Streams, StreamsState

RUN_SECONDS = 25.0
VIEWS_PER_SECOND = 300
WINDOW_MS = 10_000
PAGES = ["/", "/pricing", "/docs", "/blog", "/signup", "/docs/streams", "/careers"]
USERS = {
    "alice": "NO",
    "bob": "DE",
    "carol": "FR",
    "dave": "US",
    "erin": "JP",
    "frank": "BR",
    "grace": "IN",
    "heidi": "SE",
}
MOVES = {
    "bob": "PT",
    "erin": "NZ",
}  # sent half-way: later views of these users are joined with the new country


def build_topology() -> object:
    builder = StreamsBuilder()
    views = builder.stream("page-views", key_serde=serdes.string(), value_serde=serdes.string())
    (
        views.group_by(lambda user, page: page, key_serde=serdes.string(), value_serde=serdes.string())
        .windowed_by(TimeWindows.of_size_and_grace(WINDOW_MS, 1_000))
        .count("views-per-page")
        .to_stream()
        .map(lambda wk, n: (f"{wk.key}@{wk.window.start}", n))
        .to("page-counts", key_serde=serdes.string(), value_serde=serdes.long())
    )
    users = builder.table(
        "users", key_serde=serdes.string(), value_serde=serdes.string(), materialized="users"
    )
    views.join(users, lambda page, country: f"{page} from {country}").to(
        "enriched-views", key_serde=serdes.string(), value_serde=serdes.string()
    )
    return builder.build()


class Feeder(threading.Thread):
    """Sends the users table, then page views at a steady rate until stopped; counts what was acknowledged."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(name="feeder", daemon=True)
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
        )
        self.stop = threading.Event()
        self.sent = 0
        self.failed = 0
        self.random = random.Random(7)

    def _acked(self, err: object, _msg: object) -> None:
        if err is not None:
            self.failed += 1

    def run(self) -> None:
        for user, country in USERS.items():
            self.producer.produce("users", country.encode(), user.encode(), on_delivery=self._acked)
        self.producer.flush(10)
        began = time.monotonic()
        moved = False
        while not self.stop.is_set():
            if not moved and time.monotonic() - began > RUN_SECONDS / 2:
                for user, country in MOVES.items():
                    self.producer.produce("users", country.encode(), user.encode(), on_delivery=self._acked)
                moved = True
            for _ in range(VIEWS_PER_SECOND // 10):
                user = self.random.choice(list(USERS))
                page = self.random.choices(PAGES, weights=[9, 5, 6, 3, 2, 4, 1])[0]
                self.producer.produce("page-views", page.encode(), user.encode(), on_delivery=self._acked)
                self.sent += 1
            self.producer.poll(0)
            self.stop.wait(0.1)
        self.producer.flush(30)
        self.producer.close()


class Display(threading.Thread):
    """Reads both output topics and keeps the latest count per (page, window) and the last enriched views."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(name="display", daemon=True)
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "demo-display", "auto.offset.reset": "earliest"}
        )
        self.consumer.subscribe(["page-counts", "enriched-views"])
        self.counts: dict[tuple[str, int], int] = {}
        self.enriched: deque[str] = deque(maxlen=6)
        self.enriched_total = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stop.is_set():
            for m in self.consumer.consume(1000, timeout=0.2):
                if m.error() is not None or m.key() is None or m.value() is None:
                    continue
                with self.lock:
                    if m.topic() == "page-counts":
                        page, start = m.key().decode().rsplit("@", 1)
                        self.counts[(page, int(start))] = int.from_bytes(m.value(), "big")
                    else:
                        self.enriched.append(f"{m.key().decode():>6} viewed {m.value().decode()}")
                        self.enriched_total += 1
        self.consumer.close()

    def render(self, elapsed: float, sent: int, state: str, tasks: tuple[str, ...]) -> str:
        with self.lock:
            windows = sorted({start for _, start in self.counts})
            lines = [
                f"strom.streams demo  t={elapsed:4.1f}s  state={state}  tasks={','.join(tasks)}",
                f"views sent={sent}  enriched={self.enriched_total}",
                "",
                "views per page, 10-second tumbling windows (latest two):",
            ]
            for start in windows[-2:]:
                label = time.strftime("%H:%M:%S", time.localtime(start / 1000))
                row = sorted(((n, p) for (p, s), n in self.counts.items() if s == start), reverse=True)
                lines.append(f"  [{label} +10s] " + "  ".join(f"{p} {n}" for n, p in row))
            lines += ["", "page views joined with the users table (country as of the view):"]
            lines += [f"  {line}" for line in self.enriched]
            return "\n".join(lines)

    def total_counted(self) -> int:
        with self.lock:
            return sum(self.counts.values())


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    tty = sys.stdout.isatty()
    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap_servers
        print(f"strom broker on {bootstrap}")
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topics = [NewTopic(t, 3, 1) for t in ("page-views", "page-counts", "enriched-views")]
        topics.append(NewTopic("users", 3, 1, config={"cleanup.policy": "compact"}))
        for future in admin.create_topics(topics).values():
            future.result(30)
        del admin  # its connections must not outlive the broker
        config = {
            "application.id": "demo-page-stats",
            "bootstrap.servers": bootstrap,
            "state.dir": str(broker.data_dir / "streams-state"),
            "commit.interval.ms": 500,
        }
        feeder, display = Feeder(bootstrap), Display(bootstrap)
        with Streams(build_topology(), config) as app:
            app.wait_for_state(StreamsState.RUNNING, timeout=60)
            feeder.start()
            display.start()
            began = time.monotonic()
            while (elapsed := time.monotonic() - began) < RUN_SECONDS and app.error is None:
                frame = display.render(elapsed, feeder.sent, app.state.name, app.active_tasks())
                print(("\033[2J\033[H" + frame) if tty else frame + "\n", flush=True)
                time.sleep(1.0 if tty else 5.0)  # refresh rate of the screen, not synchronisation
            feeder.stop.set()
            feeder.join(60)
            # Wait (bounded) until every view sent is in the window counts: the app commits every 500 ms.
            deadline = time.monotonic() + 30
            while display.total_counted() < feeder.sent and time.monotonic() < deadline and app.error is None:
                time.sleep(0.2)
            print(
                ("\033[2J\033[H" if tty else "")
                + display.render(time.monotonic() - began, feeder.sent, app.state.name, app.active_tasks())
            )
        display.stop.set()
        display.join(10)
    if app.error is not None:
        print(f"\nthe streams app failed: {app.error}")
        return 1
    counted = display.total_counted()
    print(f"\n{feeder.sent} views sent, {counted} counted in the windows, {display.enriched_total} enriched")
    if feeder.failed or counted != feeder.sent:
        print("MISMATCH: every view sent should be counted exactly once")
        return 1
    print("OK: the window counts add up to the views sent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
