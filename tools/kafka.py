"""Apache Kafka as the reference peer: its jars (from tools/setup.sh), its CLI tools, a one-node KRaft broker.

The jars are Maven Central's `kafka_2.13` and `kafka-tools` with their runtime dependencies, copied into
~/.cache/strom/kafka-<version>/libs; that directory is the whole classpath. Nothing here talks to the network.

`ApacheKafka` keeps these invariants: it listens only on 127.0.0.1 on ports free when it started; a restart
reuses the same ports and directories (so committed offsets and data must survive it); every JVM it starts
dies with it (stop(), interpreter exit, or this process being killed: the JVM gets SIGKILL via PDEATHSIG).
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from tools.peers import CACHE_DIR, require_peer

KAFKA_VERSION = "4.4.0"
KAFKA_HOME = CACHE_DIR / f"kafka-{KAFKA_VERSION}"
KAFKA_LIBS = KAFKA_HOME / "libs"
# tools/setup.sh writes this marker only after every jar was copied, so a half-finished download is not used.
KAFKA_COMPLETE_MARKER = KAFKA_HOME / ".complete"

# The shell scripts of a Kafka distribution and the main classes they run (Kafka 4.x, from kafka-run-class).
TOOL_CLASSES: dict[str, str] = {
    "kafka-server-start": "kafka.Kafka",
    "kafka-storage": "kafka.tools.StorageTool",
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
    "kafka-dump-log": "org.apache.kafka.tools.DumpLogSegments",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
}

# Short-lived tools start faster with the C1 compiler only and a serial collector; a 256 MiB heap is plenty.
TOOL_JVM_OPTS: tuple[str, ...] = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto")
# The broker: G1 with MaxGCPauseMillis=20 as Kafka's start script; a small heap for a shared machine.
BROKER_JVM_OPTS: tuple[str, ...] = ("-Xmx512m", "-Xms512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20")

_TOOLS_LOG4J = """status = error
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
"""

_BROKER_LOG4J = """status = error
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka_request.name = kafka.request.logger
logger.kafka_request.level = WARN
"""

# The line kafka.Kafka logs once the broker has registered with its controller and serves clients.
_READY_LINE = "Kafka Server started"


class KafkaToolError(RuntimeError):
    """A Kafka CLI tool exited non-zero; the message carries its command line and output."""


def kafka_available() -> bool:
    return KAFKA_COMPLETE_MARKER.exists() and any(KAFKA_LIBS.glob("kafka_2.13-*.jar"))


def require_kafka() -> None:
    """Raise PeerUnavailable when the Apache Kafka jars are not installed."""
    require_peer(f"Apache Kafka {KAFKA_VERSION}", kafka_available())


def classpath() -> str:
    return str(KAFKA_LIBS / "*")


def _log_config(name: str, text: str) -> Path:
    path = KAFKA_HOME / name
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def java_command(main_class: str, args: Sequence[str], jvm_opts: Sequence[str] = TOOL_JVM_OPTS) -> list[str]:
    """The java command running `main_class` (or a script name in TOOL_CLASSES) on the Kafka classpath."""
    main = TOOL_CLASSES.get(main_class, main_class)
    log_config = _log_config("tools-log4j2.properties", _TOOLS_LOG4J)
    return [
        "java",
        *jvm_opts,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log_config}",
        "-cp",
        classpath(),
        main,
        *args,
    ]


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the process that started it dies (PR_SET_PDEATHSIG)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def run_kafka_tool(
    main_class: str,
    *args: str,
    timeout: float = 120.0,
    input: str | None = None,
    check: bool = True,
    jvm_opts: Sequence[str] = TOOL_JVM_OPTS,
) -> subprocess.CompletedProcess[str]:
    """Run one Kafka tool (a class name or a script name such as "kafka-topics") and return its output."""
    require_kafka()
    command = java_command(main_class, args, jvm_opts)
    result = subprocess.run(
        command,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_die_with_parent,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise KafkaToolError(
            f"{main_class} {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )
    return result


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _random_cluster_id() -> str:
    """A cluster id as Kafka's Uuid.randomUuid makes one: never starting with "-", which kafka-storage's
    argument parser would take for an option (1 in 64 random ids would fail `format -t ID`)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class ApacheKafka:
    """One Apache Kafka process acting as KRaft controller and broker (node 1) on 127.0.0.1.

    Invariants: ports and directories are fixed at construction, so restart() brings back the same cluster
    with its data; at most one JVM runs per instance; stop() always leaves no JVM behind (SIGTERM for a clean
    shutdown, SIGKILL after a bounded wait).
    """

    def __init__(
        self,
        workdir: Path,
        jvm_opts: Sequence[str] = BROKER_JVM_OPTS,
        overrides: dict[str, str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "server.log"
        self.config_path = self.workdir / "server.properties"
        self.port = free_port()
        self.controller_port = free_port()
        self.jvm_opts = tuple(jvm_opts)
        self.overrides = dict(overrides or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.last_ready_seconds: float | None = None
        self._formatted = False

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _properties(self) -> dict[str, str]:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # A lone test group should not wait 3 s for more members before its first assignment.
            "group.initial.rebalance.delay.ms": "0",
        }
        props.update(self.overrides)
        return props

    def _format_storage(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in self._properties().items()))
        cluster_id = _random_cluster_id()
        run_kafka_tool("kafka-storage", "format", "-t", cluster_id, "-c", str(self.config_path))
        self._formatted = True

    def start(self, timeout: float = 120.0) -> None:
        """Start the JVM and return once it serves clients; on failure raise with the end of its log."""
        if self.process is not None:
            raise RuntimeError("Apache Kafka is already running")
        require_kafka()
        if not self._formatted:
            self._format_storage()
        log_config = _log_config("broker-log4j2.properties", _BROKER_LOG4J)
        command = [
            "java",
            *self.jvm_opts,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log_config}",
            f"-Dkafka.logs.dir={self.workdir / 'logs'}",
            "-cp",
            classpath(),
            "kafka.Kafka",
            str(self.config_path),
        ]
        # Keep earlier runs' output: after a restart the whole history helps when something goes wrong.
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        _RUNNING.add(self)
        deadline = started + timeout
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                _RUNNING.discard(self)
                raise RuntimeError(f"Apache Kafka exited with {code} while starting:\n{self.log_tail()}")
            if _READY_LINE in self._log_since(offset) and _accepts(self.port):
                self.last_ready_seconds = time.monotonic() - started
                return
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"Apache Kafka not ready after {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def _log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def log_tail(self, chars: int = 6000) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 60.0) -> None:
        """Clean shutdown (SIGTERM); SIGKILL if it has not exited after `timeout` seconds."""
        process, self.process = self.process, None
        _RUNNING.discard(self)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def __enter__(self) -> ApacheKafka:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def start_apache_kafka(workdir: Path, overrides: dict[str, str] | None = None) -> ApacheKafka:
    """Format a fresh one-node KRaft cluster in `workdir` and start it; the caller must stop() it."""
    kafka = ApacheKafka(workdir, overrides=overrides)
    kafka.start()
    return kafka


_RUNNING: set[ApacheKafka] = set()


@atexit.register
def _stop_all() -> None:
    for kafka in list(_RUNNING):
        kafka.stop(timeout=20)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc), for the benchmark's memory column."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def main(argv: Sequence[str]) -> int:
    """`run WORKDIR`: serve a fresh broker until SIGTERM/SIGINT; `tool NAME ARGS...`: exec one CLI tool."""
    if len(argv) >= 2 and argv[0] == "tool":
        command = java_command(argv[1], argv[2:])
        os.execvp(command[0], command)
    if len(argv) == 2 and argv[0] == "run":
        stop_requested = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop_requested.set())
        with ApacheKafka(Path(argv[1])) as kafka:
            print(f"apache kafka ready on {kafka.bootstrap_servers} (pid {kafka.pid})", flush=True)
            while not stop_requested.wait(1.0):
                if kafka.process is None or kafka.process.poll() is not None:
                    print(f"apache kafka exited:\n{kafka.log_tail()}", flush=True)
                    return 1
        return 0
    print("usage: python -m tools.kafka run WORKDIR | tool NAME [ARGS...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
