"""Several instances of one application share its partitions; when one stops or is killed, the others take
over its tasks and restore their state from the changelogs, so results continue where they were."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from strom.streams.app import Streams, StreamsState
from tests.integration.streams_runtime_worker import count_topology
from tests.support.streams import (
    BASE_TS,
    CountingRestoreListener,
    TopicReader,
    committed_offsets,
    create_topics,
    produce,
    streams_config,
    unique,
)
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def counts(reader: TopicReader) -> dict[bytes, int]:
    return {k: int.from_bytes(v, "big") for k, v in reader.latest_by_key().items() if k and v}


def instance(
    bootstrap: str, app_id: str, views: str, out: str, state_dir: Path
) -> tuple[Streams, CountingRestoreListener]:
    app = Streams(
        count_topology(views, out),
        streams_config(bootstrap, app_id, state_dir, **{"statestore.cache.max.bytes": 0}),
    )
    listener = CountingRestoreListener()
    app.set_global_state_restore_listener(listener)
    return app, listener


def test_two_instances_share_tasks_and_a_stopped_ones_move_with_their_state(
    any_broker: str, tmp_path: Path
) -> None:
    views, out, app_id = unique("views"), unique("counts"), unique("share")
    create_topics(any_broker, {views: 4, out: 1})
    keys = [f"user-{i}".encode() for i in range(40)]
    reader = TopicReader(any_broker, out)
    a, _ = instance(any_broker, app_id, views, out, tmp_path / "a")
    b, b_restores = instance(any_broker, app_id, views, out, tmp_path / "b")
    try:
        a.start()
        wait_until(
            lambda: a.state == StreamsState.RUNNING and len(a.active_tasks()) == 4,
            "A runs all 4 tasks",
            timeout=60,
        )
        b.start()
        wait_until(
            lambda: (
                a.state == b.state == StreamsState.RUNNING
                and len(a.active_tasks()) == len(b.active_tasks()) == 2
            ),
            "A and B run 2 tasks each",
            timeout=60,
        )
        assert set(a.active_tasks()) | set(b.active_tasks()) == {"0_0", "0_1", "0_2", "0_3"}
        produce(any_broker, views, [(k, b"/", BASE_TS + 1000 + i) for i, k in enumerate(keys * 2)])
        reader.wait_until(lambda _: counts(reader) == dict.fromkeys(keys, 2))
        moved = set(a.active_tasks())
        restored_before = b_restores.total

        assert a.close(timeout=60)
        wait_until(
            lambda: b.state == StreamsState.RUNNING and len(b.active_tasks()) == 4,
            "B takes over A's tasks",
            timeout=60,
        )
        assert b_restores.ended.wait(60)
        taken_over = {f"0_{p}" for _, p, _, _, _ in b_restores.started[-len(moved) :]}
        assert taken_over == moved  # only A's tasks were restored; B kept its own
        assert b_restores.total - restored_before > 0

        produce(any_broker, views, [(k, b"/", BASE_TS + 3000 + i) for i, k in enumerate(keys)])
        reader.wait_until(lambda _: counts(reader) == dict.fromkeys(keys, 3))  # continued from A's state
    finally:
        a.close()
        b.close()
        reader.close()


def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    return sum(max(offset, 0) for offset in committed_offsets(bootstrap, group, topic, partitions))


def test_a_killed_instance_tasks_are_taken_over_after_its_session_expires(
    any_broker: str, tmp_path: Path
) -> None:
    views, out, app_id = unique("views"), unique("counts"), unique("killed")
    create_topics(any_broker, {views: 2, out: 1})
    keys = [f"user-{i}".encode() for i in range(20)]
    reader = TopicReader(any_broker, out)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.streams_runtime_worker",
            any_broker,
            app_id,
            views,
            out,
            str(tmp_path / "killed"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"},
    )
    survivor, restores = instance(any_broker, app_id, views, out, tmp_path / "survivor")
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().startswith(b"RUNNING")  # blocks until the worker's first assignment
        survivor.start()
        wait_until(
            lambda: survivor.state == StreamsState.RUNNING and len(survivor.active_tasks()) == 1,
            "the survivor runs one of the two tasks",
            timeout=60,
        )
        produce(any_broker, views, [(k, b"/", BASE_TS + 1000 + i) for i, k in enumerate(keys * 2)])
        reader.wait_until(lambda _: counts(reader) == dict.fromkeys(keys, 2))
        # All consumed offsets are committed before the kill: nothing is replayed, counts stay exact.
        wait_until(
            lambda: committed_total(any_broker, app_id, views, 2) == 2 * len(keys),
            "all offsets committed",
            timeout=60,
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        wait_until(
            lambda: len(survivor.active_tasks()) == 2 and survivor.state == StreamsState.RUNNING,
            "the survivor takes over the killed instance's task",
            timeout=90,
        )
        assert restores.ended.wait(60)
        assert restores.total > 0
        produce(any_broker, views, [(k, b"/", BASE_TS + 3000 + i) for i, k in enumerate(keys)])
        reader.wait_until(lambda _: counts(reader) == dict.fromkeys(keys, 3))
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        survivor.close()
        reader.close()
