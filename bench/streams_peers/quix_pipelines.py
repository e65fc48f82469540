"""The two benchmark pipelines in Quix Streams 3.28.1 (run by bench/streams.py in its peer venv).

count: page views counted per user in 1-minute tumbling event-time windows, every update emitted (`current()`,
       the closest to Kafka Streams' emit-on-update).
join:  page views joined with the latest users record of the same key (`join_asof`, Quix's stream-table join).
Runs until SIGTERM; the benchmark watches the consumer group's committed offsets.
"""

from __future__ import annotations

import argparse
import json

from quixstreams import Application


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
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=1.0,
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    views = app.topic(args.views, key_deserializer="str", value_deserializer="str")
    output = app.topic(args.output, key_serializer="str", value_serializer="str")
    sdf = app.dataframe(views)
    if args.pipeline == "count":
        sdf = sdf.tumbling_window(60_000).count().current()
        sdf = sdf.apply(lambda w: json.dumps(w))
    else:
        users = app.topic(args.users, key_deserializer="str", value_deserializer="str")
        sdf = sdf.join_asof(app.dataframe(users), how="inner", on_merge=lambda view, user: f"{view}|{user}")
    sdf.to_topic(output)
    app.run()


if __name__ == "__main__":
    main()
