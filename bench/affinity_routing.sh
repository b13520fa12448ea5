#!/usr/bin/env bash
# bench/affinity_routing.sh [BUILD_DIR]: issue 24's routing figures, one run.
#
# Runs tests/integration/test_affinity_routing.py at full size against the
# release build: 3 mmserve replicas behind nginx (Debian's) with the Helm
# chart's router config (deploy/helm/mmserve/files/nginx-router.conf,
# `hash $mmserve_model consistent`), each loading on demand under a budget of
# a tenth of the models, Zipf (s = 1.1) traffic. Headline: the fleet's hit
# ratio / that of one server with 3x the budget on the same request sequence
# (target >= 0.9); beside it, that every model lived on one replica, that a
# replica killed under traffic lost no request, and that its models came back
# on the survivors (the test's assertions).
# Env: BENCH_MODELS (300), BENCH_REQUESTS (10000). make test runs the same
# test at 300 models and 3000 requests.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build/release}
export MMSERVE_BINARY=$BUILD/mmserve MMSERVE_RELEASE_BINARY=$BUILD/mmserve
export MMSERVE_ROUTING_MODELS=${BENCH_MODELS:-300} MMSERVE_ROUTING_REQUESTS=${BENCH_REQUESTS:-10000}
cd "$ROOT"
"$ROOT/.venv/bin/python" -m pytest -q -s -p no:cacheprovider \
  tests/integration/test_affinity_routing.py 2>&1 | grep -E "^affinity routing|passed|failed|Error"
