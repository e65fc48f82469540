#!/usr/bin/env bash
# Fetches and caches the real peers the test suite runs against (under ~/.cache/strom).
# Idempotent: each step checks its own stamp first, so a second run costs a few milliseconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${STROM_CACHE:-$HOME/.cache/strom}"
mkdir -p "$CACHE/bin"

# --- Apache Kafka: broker and CLI tools as Maven Central jars (tools/apache-kafka/pom.xml pins the version) ---------
KAFKA_VERSION="$(sed -n 's|.*<kafka.version>\(.*\)</kafka.version>.*|\1|p' "$ROOT/tools/apache-kafka/pom.xml")"
KAFKA_HOME="$CACHE/kafka-$KAFKA_VERSION"
POM_SUM="$(sha256sum "$ROOT/tools/apache-kafka/pom.xml" | cut -d' ' -f1)"
if [[ "$(cat "$KAFKA_HOME/.complete" 2>/dev/null)" != "$POM_SUM" ]]; then
    echo "setup: fetching Apache Kafka $KAFKA_VERSION jars into $KAFKA_HOME/libs"
    rm -rf "$KAFKA_HOME/libs.partial"
    mkdir -p "$KAFKA_HOME"
    mvn -q -B -f "$ROOT/tools/apache-kafka/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs.partial"
    rm -rf "$KAFKA_HOME/libs"
    mv "$KAFKA_HOME/libs.partial" "$KAFKA_HOME/libs"
    echo "$POM_SUM" > "$KAFKA_HOME/.complete"
fi

# --- kcat: Debian's package ---------------------------------------------------------------------------------
if ! command -v kcat >/dev/null 2>&1; then
    echo "setup: installing kcat (Debian)"
    SUDO=""; [[ "$(id -u)" != 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kcat >/dev/null
fi

# --- franz-go: the Go client program of the compatibility tests ---------------------------------------------
FRANZGO_SRC="$ROOT/tests/compat/franzgo"
if [[ -f "$FRANZGO_SRC/go.mod" ]]; then
    SRC_SUM="$(cat "$FRANZGO_SRC"/go.mod "$FRANZGO_SRC"/go.sum "$FRANZGO_SRC"/*.go 2>/dev/null | sha256sum | cut -d' ' -f1)"
    if [[ ! -x "$CACHE/bin/strom-franzgo" || "$(cat "$CACHE/bin/strom-franzgo.sum" 2>/dev/null)" != "$SRC_SUM" ]]; then
        echo "setup: building the franz-go client program"
        (cd "$FRANZGO_SRC" && go build -o "$CACHE/bin/strom-franzgo.partial" .)
        mv "$CACHE/bin/strom-franzgo.partial" "$CACHE/bin/strom-franzgo"
        echo "$SRC_SUM" > "$CACHE/bin/strom-franzgo.sum"
    fi
fi
