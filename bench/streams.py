"""Benchmark: strom.streams vs Java Kafka Streams 4.4, Quix Streams 3.28.1 and faust-streaming 0.15.3 on the
same broker, in one run.

Two pipelines over the same pre-loaded input (default 1,000,000 page views over 10,000 users, 4 partitions):
  count - page views per user in 1-minute tumbling event-time windows;
  join  - page views joined with the users table (stream-table join; faust has none, so a table lookup).
For each framework and pipeline:
  throughput - every app runs in its own process; the driver watches the consumer group's committed offsets
  and
               reports records/s between 5 % and 100 % of the input (so process start and group join are
               excluded);
  output     - then the output topic is read back and checked: join, one result per page view carrying its
               user's row; count, the last update of every (user, window) equal to the true count. A run
               whose output is wrong gets no throughput figure, only what was wrong;
  restore    - the app is restarted once with its state directory kept and once with it deleted, and each time
               the driver waits until one probe record per partition has produced output. Restore time is the
               difference (state deleted minus state kept); restore rate is changelog records / restore time.
Quix Streams pins confluent-kafka 2.12, which conflicts with strom's 2.16.1, so the peers live in their own
venv under ~/.cache/strom/streams-bench-peers, created here on first use. The Java pipelines
(streams_peers/JavaStreamsPipelines.java) are compiled on first use into ~/.cache/strom/streams-bench-java
against the classpath Maven resolves for streams_peers/pom.xml (java, javac and mvn must be installed).

    .venv/bin/python bench/streams.py [--records N] [--keys K] [--broker kafka|strom | --bootstrap HOST:PORT]
                                      [--frameworks strom,java,quix,faust] [--pipelines count,join] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(__file__).resolve().parent / "streams_peers"
CACHE = Path(os.environ.get("STROM_CACHE", Path.home() / ".cache" / "strom"))
PEER_VENV = CACHE / "streams-bench-peers"
PEER_PINS = ("quixstreams==3.28.1", "faust-streaming==0.15.3")
JAVA_DIR = CACHE / "streams-bench-java"
JAVA_MAIN = "JavaStreamsPipelines"
FRAMEWORKS = ("strom", "java", "quix", "faust")
PIPELINES = ("count", "join")
PARTITIONS = 4
WINDOW_SPAN_MS = 10 * 60_000  # input timestamps span 10 minutes: 10 windows of 1 minute
# Timestamps end 5 minutes before the run: windowed changelogs keep retention.ms (size + grace + 1 day) from
# the record timestamps, so older event times would let the broker delete the state being benchmarked.
BASE_TS = (int(time.time() * 1000) - WINDOW_SPAN_MS - 5 * 60_000) // 60_000 * 60_000
PROBE_PAGE = "/probe"
PROBE_TS = BASE_TS + WINDOW_SPAN_MS
THROUGHPUT_LIMIT_S = {"strom": 300.0, "java": 300.0, "quix": 300.0, "faust": 120.0}
RESTART_LIMIT_S = 180.0


def peer_python() -> Path:
    """The peer venv's python, creating the venv with the pinned peers if it is missing or outdated."""
    python = PEER_VENV / "bin" / "python"
    marker = PEER_VENV / ".pins"
    if python.exists() and marker.exists() and marker.read_text() == "\n".join(PEER_PINS):
        return python
    print(f"creating the peer venv {PEER_VENV} ({', '.join(PEER_PINS)})", flush=True)
    shutil.rmtree(PEER_VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_PINS], check=True)
    marker.write_text("\n".join(PEER_PINS))
    return python


def java_classpath() -> str:
    """The classpath of the compiled Java pipelines, resolving dependencies and compiling when the sources
    changed since the last build."""
    source = PEERS_DIR / f"{JAVA_MAIN}.java"
    pom = PEERS_DIR / "pom.xml"
    stamp = source.read_text() + pom.read_text()
    marker = JAVA_DIR / ".built-from"
    deps = JAVA_DIR / "classpath.txt"
    classes = JAVA_DIR / "classes"
    if not (marker.exists() and marker.read_text() == stamp):
        print(f"building the Java Kafka Streams pipelines in {JAVA_DIR}", flush=True)
        shutil.rmtree(JAVA_DIR, ignore_errors=True)
        JAVA_DIR.mkdir(parents=True)
        resolve = ["mvn", "-q", "-f", str(pom), "dependency:build-classpath", f"-Dmdep.outputFile={deps}"]
        subprocess.run(resolve, check=True)
        subprocess.run(["javac", "-d", str(classes), "-cp", deps.read_text(), str(source)], check=True)
        marker.write_text(stamp)
    return f"{classes}{os.pathsep}{deps.read_text()}"


@contextlib.contextmanager
def broker(kind: str, bootstrap: str | None, workdir: Path) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    if kind == "strom":
        from strom.broker import EmbeddedBroker

        with EmbeddedBroker(data_dir=workdir / "strom-broker") as embedded:
            yield embedded.bootstrap_servers
        return
    sys.path.insert(0, str(ROOT))
    from tools.kafka import kafka_available, start_apache_kafka

    if not kafka_available():
        raise SystemExit("Apache Kafka is not installed: run `bash tools/setup.sh` (or pass --broker strom)")
    kafka = start_apache_kafka(workdir / "apache-kafka")
    try:
        yield kafka.bootstrap_servers
    finally:
        kafka.stop()


@dataclass
class Inputs:
    views: str
    users: str
    records: int
    keys: int
    probe_keys: dict[int, str]  # views partition -> a user key on the same partition
    probes: list[str] = field(default_factory=list)  # users of the probe page views sent so far, in order

    @property
    def total(self) -> int:
        """Page views in the topic: the input, then the probes of earlier restart measurements."""
        return self.records + len(self.probes)

    def page_views(self) -> list[tuple[str, str, int]]:
        """Every page view in the topic as (user key, page, timestamp)."""
        probes = [(user, PROBE_PAGE, PROBE_TS) for user in self.probes]
        return [page_view(i, self.records, self.keys) for i in range(self.records)] + probes


def page_view(i: int, records: int, keys: int) -> tuple[str, str, int]:
    """Page view ``i`` of the input: (user key, page, timestamp)."""
    return f"user-{(i * 7919) % keys:05d}", f"/page/{i % 500}", BASE_TS + int(i * WINDOW_SPAN_MS / records)


def user_row(k: int) -> tuple[str, str]:
    return f"user-{k:05d}", f"name-{k}|region-{k % 20}"


def create_topics(admin: AdminClient, topics: list[NewTopic]) -> None:
    for future in admin.create_topics(topics).values():
        future.result(30)


def load_inputs(bootstrap: str, records: int, keys: int) -> Inputs:
    """Create and fill the users table topic and the page-views topic; return where probes must go."""
    tag = uuid.uuid4().hex[:8]
    views, users = f"page-views-{tag}", f"users-{tag}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    create_topics(
        admin,
        [
            NewTopic(views, PARTITIONS, 1),
            NewTopic(users, PARTITIONS, 1, config={"cleanup.policy": "compact"}),
        ],
    )
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 50,
            "batch.num.messages": 100000,
            "queue.buffering.max.messages": 2000000,
        }
    )
    probe_keys: dict[int, str] = {}

    def remember(err: object, msg: object) -> None:
        if err is None:
            probe_keys.setdefault(msg.partition(), msg.key().decode())  # type: ignore[attr-defined]

    for k in range(keys):
        user, row = user_row(k)
        producer.produce(users, row.encode(), user.encode(), timestamp=BASE_TS - 60_000, on_delivery=remember)
    producer.flush(60)
    began = time.perf_counter()
    for i in range(records):
        user, page, timestamp = page_view(i, records, keys)
        while True:
            try:
                producer.produce(views, page.encode(), user.encode(), timestamp=timestamp)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)
    print(
        f"loaded {records:,} page views over {keys:,} users in {time.perf_counter() - began:.1f} s",
        flush=True,
    )
    return Inputs(views, users, records, keys, probe_keys)


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks"})
    try:
        metadata = consumer.list_topics(topic, timeout=30)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)[1]
            for p in metadata.topics[topic].partitions
        }
    finally:
        consumer.close()


def launch(
    framework: str,
    pipeline: str,
    bootstrap: str,
    group: str,
    state_dir: Path,
    inputs: Inputs,
    output: str,
    log_path: Path,
) -> subprocess.Popen[bytes]:
    if framework == "java":
        command = ["java", "-cp", java_classpath(), JAVA_MAIN]
    else:
        python = Path(sys.executable) if framework == "strom" else peer_python()
        command = [str(python), str(PEERS_DIR / f"{framework}_pipelines.py")]
    args = [
        *command,
        "--bootstrap",
        bootstrap,
        "--pipeline",
        pipeline,
        "--group",
        group,
        "--state-dir",
        str(state_dir),
        "--views",
        inputs.views,
        "--users",
        inputs.users,
        "--output",
        output,
    ]
    if framework == "faust":
        args += ["--partitions", str(PARTITIONS)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")} if framework == "strom" else dict(os.environ)
    log = open(log_path, "wb")  # noqa: SIM115 - closed by the child's exit; kept for the post-mortem
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=state_dir.parent)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def read_topic(bootstrap: str, topic: str) -> list[tuple[str, str]]:
    """Every record of ``topic`` up to its current end, partition by partition (so per key in order)."""
    ends = end_offsets(bootstrap, topic)
    group = f"bench-verify-{uuid.uuid4().hex[:6]}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    records: list[tuple[str, str]] = []
    try:
        for partition, end in sorted(ends.items()):
            if end <= 0:
                continue
            consumer.assign([TopicPartition(topic, partition, 0)])
            position = 0
            deadline = time.monotonic() + 120
            while position < end and time.monotonic() < deadline:
                for message in consumer.consume(10000, timeout=1.0):
                    if message.error() is not None:
                        continue
                    position = message.offset() + 1
                    key, value = message.key(), message.value()
                    records.append((key.decode() if key else "", value.decode() if value else ""))
            if position < end:
                raise RuntimeError(f"could not read {topic}-{partition} to its end offset {end}")
    finally:
        consumer.close()
    return records


def window_count(framework: str, value: str) -> tuple[int, int]:
    """(window start, count) of one count-pipeline output value: ``start:count``, or Quix's JSON window."""
    if framework == "quix":
        window = json.loads(value)
        return int(window["start"]), int(window["value"])
    start, count = value.split(":")
    return int(start), int(count)


def check_output(framework: str, pipeline: str, inputs: Inputs, output: list[tuple[str, str]]) -> str | None:
    """What is wrong with a run's output (None when it is right): join, exactly one result per page view,
    carrying its user's row; count, the last update of each (user, window) equals the true count."""
    views = inputs.page_views()
    if pipeline == "join":
        rows = dict(user_row(k) for k in range(inputs.keys))
        expected = Counter((user, f"{page}|{rows[user]}") for user, page, _ts in views)
        got = Counter(output)
        if got == expected:
            return None
        missing = sum((expected - got).values())
        sample = sorted((got - expected).elements())[:3]
        return (
            f"{missing:,} of {len(views):,} page views without their one right result, "
            f"{sum((got - expected).values()):,} unexpected results, e.g. {sample}"
        )
    counts = Counter((user, ts - ts % 60_000) for user, _page, ts in views)
    last: dict[tuple[str, int], int] = {}
    try:
        for key, value in output:
            start, count = window_count(framework, value)
            last[(key, start)] = count
    except (ValueError, KeyError) as exc:
        return f"unreadable count output ({exc})"
    wrong = sorted(w for w in counts.keys() | last.keys() if counts.get(w) != last.get(w))
    if not wrong:
        return None
    window = wrong[0]
    return (
        f"{len(wrong):,} of {len(counts):,} (user, window) counts wrong, e.g. {window}: "
        f"{last.get(window)} instead of {counts.get(window)}"
    )


@dataclass
class Throughput:
    records_per_s: float
    complete: bool
    processed: int


def measure_throughput(
    bootstrap: str, group: str, inputs: Inputs, process: subprocess.Popen[bytes], limit_s: float
) -> Throughput:
    """Records/s between the first committed sample >= 5 % of the input and the last one.

    An app that commits rarely can jump from below 5 % to 100 % between samples; then the rate is taken over
    the whole run from launch, start-up included (slightly unfavourable to that app).
    """
    # The group's committed offsets are read through a consumer of that group that never joins it
    # (AdminClient.list_consumer_group_offsets crashes librdkafka 2.16 while the group does not exist yet).
    watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    views = [TopicPartition(inputs.views, p) for p in range(PARTITIONS)]
    try:
        return _watch(watcher, views, inputs, process, limit_s)
    finally:
        watcher.close()


def _watch(
    watcher: Consumer,
    views: list[TopicPartition],
    inputs: Inputs,
    process: subprocess.Popen[bytes],
    limit_s: float,
) -> Throughput:
    launched = time.monotonic()
    t_low: float | None = None
    low_count = 0
    deadline = launched + limit_s
    done = 0
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with code {process.returncode} during the throughput run")
        done = sum(max(tp.offset, 0) for tp in watcher.committed(views, timeout=30))
        now = time.monotonic()
        if t_low is None and done >= inputs.total * 0.05:
            t_low, low_count = now, done
        complete = done >= inputs.total
        if complete or now >= deadline:
            if t_low is None or now - t_low < 2.0:
                t_low, low_count = launched, 0
            return Throughput((done - low_count) / max(now - t_low, 1e-9), complete, done)
        time.sleep(0.2)  # sampling committed offsets: there is no event for "the group committed"


def changelog_records(bootstrap: str, group: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [t for t in admin.list_topics(timeout=30).topics if group in t and "changelog" in t]
    return sum(sum(end_offsets(bootstrap, t).values()) for t in topics)


def time_to_probe_output(
    framework: str,
    pipeline: str,
    bootstrap: str,
    group: str,
    state_dir: Path,
    inputs: Inputs,
    output: str,
    log_path: Path,
) -> float | None:
    """Restart the app, send one probe per partition, return seconds until every probe key shows up in
    output."""
    outputs_end = end_offsets(bootstrap, output)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"probe-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(output, p, o) for p, o in outputs_end.items()])
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition, key in inputs.probe_keys.items():
        page = PROBE_PAGE.encode()
        producer.produce(inputs.views, page, key.encode(), partition=partition, timestamp=PROBE_TS)
        inputs.probes.append(key)
    producer.flush(30)
    waiting = set(inputs.probe_keys.values())
    began = time.monotonic()
    process = launch(framework, pipeline, bootstrap, group, state_dir, inputs, output, log_path)
    try:
        while waiting and time.monotonic() - began < RESTART_LIMIT_S:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited with code {process.returncode} after restart")
            for message in consumer.consume(1000, timeout=0.2):
                if message.error() is None and message.key() is not None:
                    waiting.discard(message.key().decode())
        return None if waiting else time.monotonic() - began
    finally:
        stop(process)
        consumer.close()


@dataclass
class Result:
    framework: str
    pipeline: str
    throughput: Throughput
    wrong_output: str | None  # what was wrong with the output; None when it was checked and right
    changelog: int
    restart_kept_s: float | None
    restart_empty_s: float | None
    strom_restore_rate: float | None

    @property
    def restore_s(self) -> float | None:
        if self.restart_kept_s is None or self.restart_empty_s is None:
            return None
        return max(self.restart_empty_s - self.restart_kept_s, 1e-3)


def strom_restore_rate(log_path: Path) -> float | None:
    """Records/s of strom's restore listener: all restored records over the wall time from first start to last
    end."""
    restored = 0
    starts: list[float] = []
    ends: list[float] = []
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"restored"' in line:
            entry = json.loads(line)
            if entry["restored"] > 0:
                restored += entry["restored"]
                starts.append(entry["start"])
                ends.append(entry["end"])
    if not restored:
        return None
    return restored / max(max(ends) - min(starts), 1e-6)


def run_one(framework: str, pipeline: str, bootstrap: str, inputs: Inputs, workdir: Path) -> Result:
    group = f"bench-{framework}-{pipeline}-{uuid.uuid4().hex[:6]}"
    output = f"{group}-out"
    create_topics(AdminClient({"bootstrap.servers": bootstrap}), [NewTopic(output, PARTITIONS, 1)])
    state_dir = workdir / group / "state"
    state_dir.mkdir(parents=True)
    process = launch(
        framework, pipeline, bootstrap, group, state_dir, inputs, output, workdir / f"{group}.log"
    )
    try:
        throughput = measure_throughput(bootstrap, group, inputs, process, THROUGHPUT_LIMIT_S[framework])
    finally:
        stop(process)
    if throughput.complete:
        wrong = check_output(framework, pipeline, inputs, read_topic(bootstrap, output))
    else:
        wrong = "not checked: the input was not fully processed within the time limit"
    if wrong is None or not throughput.complete:
        partial = f" (partial: {throughput.processed:,} records in the time limit)"
        print(
            f"  {framework:5} {pipeline:5} throughput {throughput.records_per_s:10,.0f} records/s"
            f"{', output verified' if wrong is None else partial}",
            flush=True,
        )
    else:
        print(f"  {framework:5} {pipeline:5} WRONG OUTPUT, no throughput reported: {wrong}", flush=True)
    changelog = changelog_records(bootstrap, group)
    kept = time_to_probe_output(
        framework, pipeline, bootstrap, group, state_dir, inputs, output, workdir / f"{group}-kept.log"
    )
    shutil.rmtree(state_dir)
    state_dir.mkdir()
    empty_log = workdir / f"{group}-empty.log"
    empty = time_to_probe_output(framework, pipeline, bootstrap, group, state_dir, inputs, output, empty_log)
    rate = strom_restore_rate(empty_log) if framework == "strom" else None
    result = Result(framework, pipeline, throughput, wrong, changelog, kept, empty, rate)
    restore = f"{result.restore_s:.2f} s" if result.restore_s is not None else "did not finish"
    print(f"  {framework:5} {pipeline:5} restore of {changelog:,} changelog records: {restore}", flush=True)
    return result


def verified_rate(result: Result) -> float | None:
    """The records/s of a run whose output was checked and right; None otherwise."""
    if result.wrong_output is not None or not result.throughput.records_per_s:
        return None
    return result.throughput.records_per_s


def median_verified_rate(results: list[Result]) -> float | None:
    """The median records/s over a framework's runs with right output (the reference of the ratio columns)."""
    rates = [rate for r in results if (rate := verified_rate(r)) is not None]
    return statistics.median(rates) if rates else None


def report_row(r: Result, run: int, java: float | None, quix: float | None) -> str:
    """One run's line: its rate and ratios, or what was wrong with its output, then its restore figures."""
    restore_s = r.restore_s if r.restore_s is not None else float("nan")
    restore_rate = r.changelog / restore_s if r.restore_s else float("nan")
    restore = f"{r.changelog:>10,} {restore_s:>9.2f} {restore_rate:>13,.0f}"
    head = f"{r.pipeline:8} {r.framework:9} {run:>3}"
    own = verified_rate(r)
    if r.throughput.complete and own is None:
        return f"{head} {'wrong output':>11} {'':>8} {'':>8} {restore}  ({r.wrong_output})"
    vs_java = own / java if own is not None and java else float("nan")
    vs_quix = own / quix if own is not None and quix else float("nan")
    mark = "" if r.throughput.complete else "*"
    return f"{head} {r.throughput.records_per_s:>10,.0f}{mark:1} {vs_java:>7.2f}x {vs_quix:>7.2f}x {restore}"


def report(results: list[Result]) -> None:
    print()
    print(
        f"{'pipeline':8} {'framework':9} {'run':>3} {'records/s':>11} {'vs java':>8} {'vs quix':>8} "
        f"{'changelog':>10} {'restore s':>9} {'restore rec/s':>13}"
    )
    print(f"{'':24} (ratios to the median of the reference framework's runs with right output)")
    for pipeline in PIPELINES:
        runs = {f: [r for r in results if r.pipeline == pipeline and r.framework == f] for f in FRAMEWORKS}
        java = median_verified_rate(runs["java"])
        quix = median_verified_rate(runs["quix"])
        for framework in FRAMEWORKS:
            for run, r in enumerate(runs[framework], 1):
                print(report_row(r, run, java, quix))
                if r.strom_restore_rate is not None:
                    print(
                        f"{'':24} strom restore listener: {r.strom_restore_rate:,.0f} records/s "
                        "(store write rate, without process start and group join)"
                    )
    if any(not r.throughput.complete for r in results):
        print("* partial: input not fully processed within the time limit; rate over what was processed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--broker", choices=["kafka", "strom"], default="kafka")
    ap.add_argument("--bootstrap", help="use a running broker instead of starting one")
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    ap.add_argument("--pipelines", default=",".join(PIPELINES))
    ap.add_argument("--runs", type=int, default=3, help="runs of each framework and pipeline")
    args = ap.parse_args()
    frameworks = [f for f in args.frameworks.split(",") if f]
    if any(f in ("quix", "faust") for f in frameworks):
        peer_python()
    if "java" in frameworks:
        java_classpath()
    with tempfile.TemporaryDirectory(prefix="strom-bench-streams-") as tmp:
        workdir = Path(tmp)
        with broker(args.broker, args.bootstrap, workdir) as bootstrap:
            print(f"broker: {args.bootstrap or args.broker} at {bootstrap}", flush=True)
            inputs = load_inputs(bootstrap, args.records, args.keys)
            results = []
            for _run in range(args.runs):
                for pipeline in args.pipelines.split(","):
                    for framework in frameworks:
                        results.append(run_one(framework, pipeline, bootstrap, inputs, workdir))
            report(results)


if __name__ == "__main__":
    main()
