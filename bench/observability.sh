#!/usr/bin/env bash
# bench/observability.sh [BUILD_DIR]: issue 8's benchmark, one run, the figure
# as a ratio against a baseline measured in the same run.
#
# Servers on a copy of examples/models whose add_sub ships a drift
# baseline (scripts/make_drift_baseline.py), measured in turn
# (BENCH_ROUNDS interleaved rounds, the best of each kept):
#   off  --allow-metrics false --drift false, no tracing: what is left is the
#        statistics the server always keeps (Triton's statistics extension)
#   on   metrics scraped once a second for the whole run (as Prometheus
#        would), --trace-rate 0.01 exporting OTLP/HTTP JSON to a collector
#        (nginx answering 200, on the client CPUs), and --drift-sample-rate
#        0.01 against the baseline
#   off2 a second `off`, the control: off2 / off is what this machine's noise
#        makes of two identical servers, measured the same way as on / off
# Case: wrk over HTTP with binary tensors on the add model at concurrency 32.
# Headline: on req/s / off req/s (target >= 0.97), as the median of each
# round's ratio (the two measured back to back, so that the machine's
# neighbours weigh on both alike), beside the best rounds' ratio. Then the server's CPU
# per request (median over the rounds) and, under callgrind at concurrency 1
# (BENCH_CALLGRIND=1, the default, when valgrind is there), user-space
# instructions per request, as ratios.
#
# With BENCH_BEFORE=PATH (an mmserve built before the statistics existed), a
# third server `before` runs that binary on examples/models, and the report
# adds off / before: what the always-on statistics cost.
#
# Pinning (BENCH_PIN, default 1): servers on CPU 0, wrk, scrapes and the
# collector on CPU 1. Env: BENCH_SECONDS (8), BENCH_ROUNDS (5), BENCH_OUT,
# BENCH_KEEP=1.
set -euo pipefail
PIN=${BENCH_PIN:-1}
source "$(dirname "$0")/lib.sh"
SECS=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-5}
bench_init "${1:-build/release}" mmserve
[[ -x $MMSERVE ]] || die "no mmserve in $BUILD_DIR"
PY=$ROOT/.venv/bin/python
[[ -x $PY ]] || die "no .venv: run scripts/install-deps.sh"

# The repository: examples/models, add_sub with a baseline of its inputs.
REPO=$WORK/models
cp -r examples/models "$REPO"
"$PY" - "$WORK/samples.npy" <<'PY'
import sys, numpy as np
np.save(sys.argv[1], np.random.default_rng(1).normal(10, 10, size=(10000, 4)).astype(np.float32))
PY
for input in INPUT0 INPUT1; do
  "$PY" scripts/make_drift_baseline.py --input "$input=$WORK/samples.npy" --out "$WORK/$input.json" >/dev/null
done
"$PY" - "$WORK/INPUT0.json" "$WORK/INPUT1.json" "$REPO/add_sub/drift_baseline.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
a["inputs"].update(b["inputs"])
json.dump(a, open(sys.argv[3], "w"))
PY

# The collector: nginx answering every OTLP POST with 200 (its body read and
# dropped), with a log line per POST. It stands in for a collector on another
# machine, so it must take little of the load generator's CPU: a Python
# collector (parsing, or even just reading, 1.9 MB batches) took enough of it
# that the 'on' server ran 4% slower than with nginx, itself within the
# control's noise (issue 27).
COLLECTOR=$WORK/collector
mkdir -p "$COLLECTOR/temp"
COLLECTOR_PORT=$(free_port)
{
  echo "worker_processes 1;"
  echo "daemon off;"
  echo "pid $COLLECTOR/nginx.pid;"
  echo "error_log $COLLECTOR/error.log warn;"
  echo "events { worker_connections 64; }"
  echo "http {"
  echo "  log_format otlp '\$status \$content_length';"
  echo "  access_log $COLLECTOR/posts.log otlp;"
  echo "  keepalive_timeout 300s;"
  echo "  keepalive_requests 100000000;"
  echo "  client_max_body_size 64m;"
  for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $COLLECTOR/temp/$t;"; done
  echo "  server {"
  echo "    listen 127.0.0.1:$COLLECTOR_PORT;"
  echo "    location = /v1/traces { default_type application/json; return 200 '{}'; }"
  echo "  }"
  echo "}"
} >"$COLLECTOR/nginx.conf"
"${ON_CLIENT_CPUS[@]}" "$NGINX" -p "$COLLECTOR" -c "$COLLECTOR/nginx.conf" -e "$COLLECTOR/error.log" \
  >"$WORK/collector.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  [[ $(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{}' \
    "http://127.0.0.1:$COLLECTOR_PORT/v1/traces") == 200 ]] && break
  sleep 0.1
done
[[ -s $COLLECTOR/posts.log ]] || die "the OTLP collector (nginx) did not start: $(cat "$COLLECTOR/error.log")"

OFF_FLAGS=(--allow-metrics false --drift false)
ON_FLAGS=(--trace-rate 0.01 --trace-endpoint "http://127.0.0.1:$COLLECTOR_PORT/v1/traces"
  --drift-sample-rate 0.01)
BENCH_REPO=$REPO start_mmserve off "${OFF_FLAGS[@]}"
BENCH_REPO=$REPO start_mmserve on "${ON_FLAGS[@]}"
BENCH_REPO=$REPO start_mmserve off2 "${OFF_FLAGS[@]}"
SERVERS=(off on off2)
if [[ -n ${BENCH_BEFORE:-} ]]; then
  [[ -x $BENCH_BEFORE ]] || die "BENCH_BEFORE=$BENCH_BEFORE is not an executable"
  THIS=$MMSERVE MMSERVE=$BENCH_BEFORE
  start_mmserve before
  MMSERVE=$THIS
  SERVERS+=(before)
fi
METRICS_URL=$(sed -n 's/.*metrics at \(http:[^ ]*\).*/\1/p' "$WORK/on.log" | head -1)
[[ -n $METRICS_URL ]] || die "the 'on' server serves no metrics"
grep -q "drift detection against" "$WORK/on.log" || die "the 'on' server does not watch drift"

# Prometheus' part: a scrape a second while the servers run.
(while true; do "${ON_CLIENT_CPUS[@]}" curl -s -o /dev/null "$METRICS_URL"; sleep 1; done) &
PIDS+=($!)

INVALID=()
declare -A BEST_RPS=() CPU_US=() CPU_MED=() ROUND_RPS=()
PAIRED=""   # on / off req/s of each round (the two measured back to back)
CONTROL=""  # off2 / off req/s of each round
measure() {  # measure SERVER
  run_wrk "$1" add_sub_binary 32 "$SECS"
  ROUND_RPS[$1]=${R[rps]}
  ((R_VALID)) || INVALID+=("$1 c32")
  echo "  $1 c32: p50 ${R[p50_us]} us, p99 ${R[p99_us]} us, ${R[rps]} req/s"
  if [[ -z ${BEST_RPS[$1]:-} ]] || awk "BEGIN{exit !(${R[rps]} > ${BEST_RPS[$1]})}"; then
    BEST_RPS[$1]=${R[rps]}
  fi
  CPU_US[$1]+=" $(awk "BEGIN{printf \"%.2f\", ${R[cpu_ticks]} * 1e6 / $TICKS_PER_SECOND / ${R[requests]}}")"
}
for ((round = 1; round <= ROUNDS; round++)); do
  echo "== round $round"
  order=("${SERVERS[@]}")
  ((round % 2 == 0)) && order=($(printf '%s\n' "${SERVERS[@]}" | tac))
  for server in "${order[@]}"; do measure "$server"; done
  PAIRED+=" $(ratio "${ROUND_RPS[on]}" "${ROUND_RPS[off]}")"
  CONTROL+=" $(ratio "${ROUND_RPS[off2]}" "${ROUND_RPS[off]}")"
done

# The 'on' server did what it was asked: traces reached the collector, its
# metrics count them, and drift was sampled.
SCRAPE=$(curl -s "$METRICS_URL")
sampled=$(awk '/^mmserve_traces_sampled_total /{print $2}' <<<"$SCRAPE")
exported=$(awk '/^mmserve_traces_exported_total /{print $2}' <<<"$SCRAPE")
dropped=$(awk '/^mmserve_traces_dropped_total /{print $2}' <<<"$SCRAPE")
window=$(grep '^mmserve_drift_window_rows{.*input="INPUT0"' <<<"$SCRAPE" | awk '{print $2}')
requests=$(grep '^mmserve_inference_requests_total{.*model="add_sub".*code="OK"' <<<"$SCRAPE" | awk '{print $2}')
awk "BEGIN{exit !($sampled > 0 && $exported > 0)}" || INVALID+=("no traces exported (sampled $sampled, exported $exported)")
awk "BEGIN{r = $sampled / $requests; exit !(r > 0.005 && r < 0.02)}" ||
  INVALID+=("traced $sampled of $requests requests: not about 1%")
awk "BEGIN{exit !(${window:-0} > 0)}" || INVALID+=("no drift rows sampled")
# Every POST but the start-up probe is an export (its Content-Length) the collector answered 200.
posts=$(awk '$1 == 200 && $2 > 1000 {n++} END{print n + 0}' "$COLLECTOR/posts.log")
other=$(awk '$1 != 200 {n++} END{print n + 0}' "$COLLECTOR/posts.log")
((posts > 0 && other == 0)) || INVALID+=("the collector took $posts exports and refused $other")

# ----------------------------------------------- callgrind: instructions
declare -A INSTR=()
if [[ ${BENCH_CALLGRIND:-1} == 1 ]] && command -v valgrind >/dev/null; then
  for server in "${SERVERS[@]}"; do stop_server "$server"; done
  for server in "${SERVERS[@]}"; do
    flags=() repo=$REPO binary=$MMSERVE
    [[ $server == off2 ]] && continue  # the control is for req/s; callgrind is exact
    [[ $server == off ]] && flags=("${OFF_FLAGS[@]}")
    [[ $server == on ]] && flags=("${ON_FLAGS[@]}")
    [[ $server == before ]] && binary=$BENCH_BEFORE repo=examples/models
    echo "== callgrind: $server"
    THIS=$MMSERVE MMSERVE=$binary
    BENCH_REPO=$repo callgrind_per_request "$server" "${flags[@]}"
    MMSERVE=$THIS
    [[ -z $CG_ERROR ]] || INVALID+=("$CG_ERROR")
    INSTR[$server]=$CG_INSTR
  done
fi

for server in "${SERVERS[@]}"; do CPU_MED[$server]=$(median "${CPU_US[$server]}"); done
{
  echo "## Observability overhead (bench/observability.sh, $(date -u +%F), best of $ROUNDS interleaved rounds, ${SECS} s each)"
  echo
  echo "| case | all off | metrics + 1% tracing + 1% drift | on / off |"
  echo "|---|---|---|---|"
  echo "| add, req/s at c32 (best round) | ${BEST_RPS[off]} | ${BEST_RPS[on]} | $(ratio "${BEST_RPS[on]}" "${BEST_RPS[off]}")x |"
  echo "| add, req/s at c32: median of the rounds' on / off |  |  | $(median "$PAIRED")x (target >= 0.97x; rounds:$PAIRED) |"
  echo "| control: req/s at c32, median of the rounds' off2 / off (two identical servers) |  |  | $(median "$CONTROL")x (rounds:$CONTROL) |"
  echo "| add, server CPU per request at c32 (median) | ${CPU_MED[off]} us | ${CPU_MED[on]} us | $(ratio "${CPU_MED[on]}" "${CPU_MED[off]}")x |"
  if [[ -n ${INSTR[off]:-} ]]; then
    echo "| add, user-space instructions per request (callgrind, c1) | ${INSTR[off]} | ${INSTR[on]} | $(ratio "${INSTR[on]}" "${INSTR[off]}")x |"
  fi
  echo
  echo "The 'on' server traced $sampled of $requests requests ($exported exported in $posts POSTs, $dropped dropped) and held ${window} rows of INPUT0 in its drift window."
  if [[ -n ${BENCH_BEFORE:-} ]]; then
    echo
    echo "All off against \`$BENCH_BEFORE\` (before statistics): req/s at c32 ${BEST_RPS[off]} vs ${BEST_RPS[before]} ($(ratio "${BEST_RPS[off]}" "${BEST_RPS[before]}")x), CPU per request ${CPU_MED[off]} vs ${CPU_MED[before]} us ($(ratio "${CPU_MED[off]}" "${CPU_MED[before]}")x)${INSTR[before]:+, instructions per request ${INSTR[off]} vs ${INSTR[before]} ($(ratio "${INSTR[off]}" "${INSTR[before]}")x)}."
  fi
  if ((${#INVALID[@]})); then
    echo
    echo "INVALID:"
    printf '  %s\n' "${INVALID[@]}"
  fi
} | tee "$WORK/report.md"
[[ -n ${BENCH_OUT:-} ]] && cp "$WORK/report.md" "$BENCH_OUT"
((${#INVALID[@]} == 0))
