#!/usr/bin/env bash
# Fetches and caches the real peers the test suite runs against (under ~/.cache/strom).
set -euo pipefail
