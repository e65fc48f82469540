#!/usr/bin/env bash
# Apache Kafka for humans and benchmarks (jars from tools/setup.sh):
#   tools/kafka.sh start [DIR]        fresh one-node KRaft broker on a free port; prints its bootstrap address
#   tools/kafka.sh stop [DIR]         clean shutdown of the broker started in DIR
#   tools/kafka.sh tool NAME ARGS...  run a Kafka CLI tool, e.g. `tool kafka-topics --bootstrap-server H:P --list`
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
DIR="${2:-${STROM_CACHE:-$HOME/.cache/strom}/kafka-run}"
cd "$ROOT"

case "${1:-}" in
start)
    if [[ -f "$DIR/runner.pid" ]] && kill -0 "$(cat "$DIR/runner.pid")" 2>/dev/null; then
        echo "already running: $(grep -m1 'ready on' "$DIR/runner.log")"; exit 0
    fi
    rm -rf "$DIR"; mkdir -p "$DIR"
    nohup "$PY" -m tools.kafka run "$DIR" >"$DIR/runner.log" 2>&1 &
    echo $! >"$DIR/runner.pid"
    for _ in $(seq 1 1200); do
        if grep -q 'ready on' "$DIR/runner.log"; then grep -m1 'ready on' "$DIR/runner.log"; exit 0; fi
        if ! kill -0 "$(cat "$DIR/runner.pid")" 2>/dev/null; then cat "$DIR/runner.log" >&2; exit 1; fi
        sleep 0.1
    done
    echo "Apache Kafka did not become ready in 120 s; see $DIR/server.log" >&2; exit 1 ;;
stop)
    [[ -f "$DIR/runner.pid" ]] || { echo "not running (no $DIR/runner.pid)"; exit 0; }
    PID="$(cat "$DIR/runner.pid")"
    kill "$PID" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    rm -f "$DIR/runner.pid"; echo "stopped" ;;
tool)
    shift; exec "$PY" -m tools.kafka tool "$@" ;;
*)
    sed -n '2,5p' "$0" | sed 's/^# //'; exit 2 ;;
esac
