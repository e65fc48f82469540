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
if ! command -v mvn >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
    echo "setup: WARNING: mvn or java missing; the Apache Kafka tests will skip (or fail under CI=true)" >&2
elif [[ "$(cat "$KAFKA_HOME/.complete" 2>/dev/null)" != "$POM_SUM" ]]; then
    echo "setup: fetching Apache Kafka $KAFKA_VERSION jars into $KAFKA_HOME/libs"
    rm -rf "$KAFKA_HOME/libs.partial"
    mkdir -p "$KAFKA_HOME"
    if mvn -q -B -f "$ROOT/tools/apache-kafka/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs.partial"; then
        rm -rf "$KAFKA_HOME/libs"
        mv "$KAFKA_HOME/libs.partial" "$KAFKA_HOME/libs"
        echo "$POM_SUM" > "$KAFKA_HOME/.complete"
    else
        echo "setup: WARNING: fetching Apache Kafka failed; its tests will skip (or fail under CI=true)" >&2
    fi
fi

# --- kcat: Debian's package ---------------------------------------------------------------------------------
if ! command -v kcat >/dev/null 2>&1; then
    echo "setup: installing kcat (Debian)"
    SUDO=""; [[ "$(id -u)" != 0 ]] && SUDO="sudo"
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kcat >/dev/null; }; then
        echo "setup: WARNING: installing kcat failed; its tests will skip (or fail under CI=true)" >&2
    fi
fi

# --- Chromium: Debian's headless browser for the console's browser tests (never a downloaded build) ------------
if ! command -v chromium >/dev/null 2>&1; then
    echo "setup: installing chromium (Debian)"
    SUDO=""; [[ "$(id -u)" != 0 ]] && SUDO="sudo"
    if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; }; then
        echo "setup: WARNING: installing chromium failed; the console browser tests will skip (or fail under CI=true)" >&2
    fi
fi

# --- franz-go: the Go client program of the compatibility tests ---------------------------------------------
FRANZGO_SRC="$ROOT/tests/compat/franzgo"
# The Go toolchain's usual home is searched too, for environments whose PATH lacks it.
GO="$(command -v go || true)"; [[ -z "$GO" && -x /usr/local/go/bin/go ]] && GO=/usr/local/go/bin/go
if [[ -z "$GO" ]]; then
    echo "setup: WARNING: go missing; the franz-go tests will skip (or fail under CI=true)" >&2
elif [[ -f "$FRANZGO_SRC/go.mod" ]]; then
    SRC_SUM="$(cat "$FRANZGO_SRC"/go.mod "$FRANZGO_SRC"/go.sum "$FRANZGO_SRC"/*.go 2>/dev/null | sha256sum | cut -d' ' -f1)"
    if [[ ! -x "$CACHE/bin/strom-franzgo" || "$(cat "$CACHE/bin/strom-franzgo.sum" 2>/dev/null)" != "$SRC_SUM" ]]; then
        echo "setup: building the franz-go client program"
        if (cd "$FRANZGO_SRC" && "$GO" build -o "$CACHE/bin/strom-franzgo.partial" .); then
            mv "$CACHE/bin/strom-franzgo.partial" "$CACHE/bin/strom-franzgo"
            echo "$SRC_SUM" > "$CACHE/bin/strom-franzgo.sum"
        else
            echo "setup: WARNING: building the franz-go program failed; its tests will skip (or fail under CI=true)" >&2
        fi
    fi
fi
