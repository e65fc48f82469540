"""The two benchmark pipelines in faust-streaming 0.15.3 (run by bench/streams.py in its peer venv).

count: page views counted per user in a 1-minute tumbling table relative to the event time
(`relative_to_stream`),
       every update sent to the output topic as ``<window start ms>:<count>``.
join:  faust has no joins (`faust/joins.py` raises NotImplementedError), so the users topic fills a table and
each
       page view looks its user up in it: the hand-written stream-table join faust users write.
Runs until SIGTERM; the benchmark watches the consumer group's committed offsets.
"""

from __future__ import annotations

import argparse
import sys

import faust


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--pipeline", choices=["count", "join"], required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--views", required=True)
    ap.add_argument("--users", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    args = ap.parse_args()
    app = faust.App(
        args.group,
        broker=f"kafka://{args.bootstrap}",
        store="rocksdb://",
        datadir=args.state_dir,
        topic_partitions=args.partitions,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
    )
    views = app.topic(
        args.views, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    output = app.topic(
        args.output, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    if args.pipeline == "count":
        counts = app.Table("counts", default=int, partitions=args.partitions)
        windowed = counts.tumbling(60.0, expires=3600.0).relative_to_stream()

        @app.agent(views)
        async def count(stream: faust.Stream) -> None:
            async for event in stream.events():
                user = event.key.decode()
                windowed[user] += 1
                start = round(event.message.timestamp * 1000) // 60_000 * 60_000
                await output.send(key=event.key, value=f"{start}:{windowed[user].current()}".encode())

    else:
        users_topic = app.topic(
            args.users, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
        users = app.Table("users", default=None, partitions=args.partitions)

        @app.agent(users_topic)
        async def load_users(stream: faust.Stream) -> None:
            async for event in stream.events():
                users[event.key.decode()] = event.value.decode()

        @app.agent(views)
        async def join(stream: faust.Stream) -> None:
            async for event in stream.events():
                user = users.get(event.key.decode())
                if user is not None:
                    await output.send(key=event.key, value=event.value + b"|" + user.encode())

    sys.argv = [sys.argv[0], "worker", "-l", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
