"""strom's broker next to Apache Kafka, measured with Kafka's own perf tools on the same machine.

For each broker, started fresh and alone (the other is stopped), and for each row of 1 and 6 partitions
with acks=1 and acks=all:
- kafka-producer-perf-test: N records of 100 bytes, unthrottled, into a new topic (records/s);
- kafka-consumer-perf-test: the same N records read back by a fresh group (records/s over the whole run,
  and records/s of the fetch phase alone, which leaves out the group join).
Each broker first gets one unmeasured warm-up round (200,000 records) so the JIT has compiled the hot paths.
Then each broker's peak RSS (VmHWM) over the runs and its time from process start to the first accepted
connection. Both brokers run with `group.initial.rebalance.delay.ms=0` so the consumer rows do not include
a 3 s wait for more members. The tools run in a JVM with the normal JIT, outside the brokers' processes.

Targets (issue 3): throughput >= 1.0x Kafka (at least 0.5x on every row), RSS <= 0.25x, ready <= 0.5 s.
Usage: python bench/broker.py [--records N]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.kafka import ApacheKafka, require_kafka, run_kafka_tool  # noqa: E402

PERF_JVM_OPTS = ("-Xmx512m", "-XX:+UseG1GC")
RECORD_SIZE = 100
ROWS = [(1, "1"), (1, "all"), (6, "1"), (6, "all")]
_PRODUCED = re.compile(r"(\d+) records sent, ([\d.]+) records/sec")


@dataclass
class Result:
    ready_s: float = 0.0
    peak_rss: int = 0
    rates: dict[str, float] = field(default_factory=dict)


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@contextmanager
def strom_broker(workdir: Path) -> Iterator[tuple[str, int, float]]:
    """`strom broker` as its own process: (bootstrap, pid, seconds from spawn to an accepted connection)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "strom.cli", "broker", "--data-dir", str(workdir / "strom-data"),
         "--listen", "127.0.0.1:0", "--set", "group.initial.rebalance.delay.ms=0"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("strom broker ready on "):
            raise RuntimeError(f"strom broker did not start: {line!r}")
        port = int(line.rsplit(":", 1)[1])
        while not _accepts(port):
            if time.monotonic() - started > 60:
                raise RuntimeError("strom broker does not accept connections")
        ready = time.monotonic() - started
        yield f"127.0.0.1:{port}", proc.pid, ready
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def kafka_broker(workdir: Path) -> Iterator[tuple[str, int, float]]:
    kafka = ApacheKafka(workdir / "kafka")
    kafka.start()
    try:
        assert kafka.pid is not None and kafka.last_ready_seconds is not None
        yield kafka.bootstrap_servers, kafka.pid, kafka.last_ready_seconds
    finally:
        kafka.stop()


def produce(bootstrap: str, topic: str, records: int, acks: str) -> float:
    out = run_kafka_tool(
        "kafka-producer-perf-test", "--topic", topic, "--num-records", str(records),
        "--record-size", str(RECORD_SIZE), "--throughput", "-1",
        "--command-property", f"bootstrap.servers={bootstrap}", f"acks={acks}",
        timeout=1800, jvm_opts=PERF_JVM_OPTS,
    ).stdout  # fmt: skip
    sent, rate = _PRODUCED.findall(out)[-1]
    if int(sent) != records:
        raise RuntimeError(f"producer sent {sent} of {records} records:\n{out[-2000:]}")
    return float(rate)


def consume(bootstrap: str, topic: str, records: int) -> tuple[float, float]:
    """(records/s over the whole run, records/s of the fetch phase)."""
    out = run_kafka_tool(
        "kafka-consumer-perf-test", "--topic", topic, "--num-records", str(records),
        "--bootstrap-server", bootstrap, "--timeout", "60000", "--group", f"bench-{topic}",
        timeout=1800, jvm_opts=PERF_JVM_OPTS,
    ).stdout  # fmt: skip
    fields = out.strip().splitlines()[-1].split(", ")
    consumed = int(fields[4])
    if consumed < records:
        raise RuntimeError(f"consumer read {consumed} of {records} records:\n{out[-2000:]}")
    return float(fields[5]), float(fields[9])


def run(broker: str, workdir: Path, records: int) -> Result:
    result = Result()
    starter = strom_broker if broker == "strom" else kafka_broker
    with starter(workdir) as (bootstrap, pid, ready):
        result.ready_s = ready
        # One unmeasured round first, so the JVMs (broker and tools) are past their JIT warm-up when the first
        # measured row starts; strom gets the same round.
        warmup = min(records, 200_000)
        run_kafka_tool("kafka-topics", "--bootstrap-server", bootstrap, "--create", "--topic", "bench-warmup",
                       "--partitions", "6", "--replication-factor", "1")  # fmt: skip
        produce(bootstrap, "bench-warmup", warmup, "1")
        consume(bootstrap, "bench-warmup", warmup)
        for partitions, acks in ROWS:
            topic = f"bench-p{partitions}-acks{acks}"
            run_kafka_tool(
                "kafka-topics", "--bootstrap-server", bootstrap, "--create", "--topic", topic,
                "--partitions", str(partitions), "--replication-factor", "1",
            )  # fmt: skip
            row = f"p={partitions} acks={acks}"
            result.rates[f"produce {row}"] = produce(bootstrap, topic, records, acks)
            whole, fetch = consume(bootstrap, topic, records)
            result.rates[f"consume {row}"] = whole
            result.rates[f"consume {row} (fetch phase)"] = fetch
            print(f"  {broker:6} {row:16} produce {result.rates[f'produce {row}']:>10,.0f} rec/s  "
                  f"consume {whole:>10,.0f} rec/s (fetch {fetch:,.0f})", flush=True)  # fmt: skip
        result.peak_rss = _peak_rss(pid)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    require_kafka()
    print(f"{args.records:,} records of {RECORD_SIZE} bytes per row; {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="strom-bench-broker-") as tmp:
        strom = run("strom", Path(tmp), args.records)
        kafka = run("kafka", Path(tmp), args.records)
    print()
    print(f"{'measure':40} {'strom':>14} {'kafka':>14} {'strom/kafka':>12}")
    for name, value in strom.rates.items():
        other = kafka.rates[name]
        print(f"{name + ' (rec/s)':40} {value:>14,.0f} {other:>14,.0f} {value / other:>11.2f}x")
    mib = 1 << 20
    print(f"{'peak RSS (MiB)':40} {strom.peak_rss / mib:>14.1f} {kafka.peak_rss / mib:>14.1f} "
          f"{strom.peak_rss / kafka.peak_rss:>11.2f}x")  # fmt: skip
    print(f"{'start to first accepted connection (s)':40} {strom.ready_s:>14.3f} {kafka.ready_s:>14.3f} "
          f"{strom.ready_s / kafka.ready_s:>11.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
