#!/usr/bin/env bash
# bench/run.sh BUILD_DIR: mmserve against its baselines, all measured in one run
# on this machine and reported as ratios (method: docs/benchmarks.md).
#
#   baseline 1  bench_ort_raw: ONNX Runtime Session::Run in-process, batch 1
#               (and bench_thread_hop: what one thread hand-off costs here)
#   baseline 2  nginx (Debian), one worker, answering every POST with a static
#               body of the same size as mmserve's answer to the same request
#   measured    mmserve over HTTP, JSON and binary-extension bodies, for
#               add_sub and mlp_classifier at batch 1, in two configurations:
#                 mmserve-1x1      --http-threads 1 --execution-threads 1
#                 mmserve-default  no thread flags (one of each per core)
#
# Each point is one wrk run with the bench/<case>.lua script, against each
# server in turn (interleaved, so drift on a shared machine hits all alike):
# concurrency 1 (wrk -t1 -c1) for p50/p99 latency and concurrency 32 (wrk -t2
# -c32) for throughput. A point with a non-200 answer, a body of the wrong
# size or a socket error is INVALID, and the script then exits 1.
#
# Environment:
#   BENCH_SECONDS=10        seconds per point
#   BENCH_WARMUP_SECONDS=1  warm-up per server and case before measuring
#   BENCH_ORT_SECONDS=3     seconds per in-process ONNX Runtime figure
#   BENCH_CASES="add_sub_json add_sub_binary mlp_json mlp_binary"
#   BENCH_PIN=1             servers on CPU 0, wrk on the others (0: no pinning)
#   BENCH_ROUNDS=1          measure every point this many times, interleaved
#                           (the order of the servers alternates each round)
#   BENCH_BEFORE=PATH       an mmserve binary built from an earlier commit: a
#                           server mmserve-before runs it with no thread flags,
#                           beside mmserve-default, and the report compares
#                           the two (this build / before, median of the rounds'
#                           paired ratios, and of the best rounds)
#   BENCH_NOINLINE=1        also a server mmserve-noinline: this build with
#                           --inline-execution-max-us 0, to show what the
#                           inline fast path still gains
#   BENCH_OUT=FILE          also write the markdown report to FILE
#   BENCH_KEEP=0            1: keep the work folder (wrk logs, nginx config)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

POINT_SECONDS=${BENCH_SECONDS:-10}
WARMUP_SECONDS=${BENCH_WARMUP_SECONDS:-1}
ORT_SECONDS=${BENCH_ORT_SECONDS:-3}
CASES=${BENCH_CASES:-"add_sub_json add_sub_binary mlp_json mlp_binary"}
PIN=${BENCH_PIN:-1}
ROUNDS=${BENCH_ROUNDS:-1}
HIGH_CONCURRENCY=32

# The source state measured: taken before building.
GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD -- src 2>/dev/null || echo +dirty)"
bench_init "${1:-build/release}" mmserve bench_ort_raw bench_thread_hop
ORT_RAW=$BUILD_DIR/bench/bench_ort_raw
RESULTS=$WORK/results.tsv
: >"$RESULTS"
INVALID=0
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
START=$(date +%s)
echo "== machine: $CORES cores, $CPU_MODEL, load $(cut -d' ' -f1-3 /proc/loadavg)," \
  "pinning $([[ ${#ON_SERVER_CPUS[@]} -gt 0 ]] && echo on || echo off)"

# record SERVER CASE CONCURRENCY: appends the last run_wrk's figures.
record() {
  local requests=${R[requests]}
  local cpu ctx
  cpu=$(python3 -c "print(f'{${R[cpu_ticks]} / $TICKS_PER_SECOND * 1e6 / max(1, $requests):.1f}')")
  ctx=$(python3 -c "print(f'{${R[ctx_switches]} / max(1, $requests):.2f}')")
  ((R_VALID)) || INVALID=1
  printf 'http\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${R[rps]}" \
    "${R[p50_us]}" "${R[p99_us]}" "$R_VALID" "${R[body_bytes]}" "$cpu" "$ctx" "${ROUND:-1}" \
    >>"$RESULTS"
  printf '  %-16s %-15s c%-3s %9s req/s  p50 %6s us  p99 %7s us  %6s us CPU/req  %5s cs/req%s\n' \
    "$1" "$2" "$3" "${R[rps]}" "${R[p50_us]}" "${R[p99_us]}" "$cpu" "$ctx" \
    "$( ((R_VALID)) || echo '  INVALID')"
}

echo "== in-process ONNX Runtime (bench_ort_raw, batch 1)"
ORT_MODELS=(examples/models/add_sub/1/model.onnx examples/models/mlp_classifier/1/model.onnx)
"${ON_SERVER_CPUS[@]}" "$ORT_RAW" --seconds "$ORT_SECONDS" --threads 1 "${ORT_MODELS[@]}" \
  | tee "$WORK/ort.txt"
"$ORT_RAW" --seconds "$ORT_SECONDS" --threads "$CORES" "${ORT_MODELS[@]}" | tee -a "$WORK/ort.txt"
while read -r tag rest; do
  [[ $tag == ORT_RAW ]] || continue
  declare -A o=()
  for kv in $rest; do o[${kv%%=*}]=${kv#*=}; done
  printf 'ort\tort-raw\t%s\t%s\t%s\t%s\t%s\t1\t0\t0\t0\n' "${o[model]}" "${o[threads]}" \
    "${o[rps]}" "${o[p50_us]}" "${o[p99_us]}" >>"$RESULTS"
done <"$WORK/ort.txt"

echo "== thread hand-off (bench_thread_hop)"
HOP=$("$BUILD_DIR/bench/bench_thread_hop")
echo "$HOP"

echo "== starting servers"
MMSERVE_SERVERS=(mmserve-1x1 mmserve-default)
start_mmserve mmserve-1x1 --http-threads 1 --execution-threads 1
start_mmserve mmserve-default
if [[ -n ${BENCH_BEFORE:-} ]]; then
  [[ -x $BENCH_BEFORE ]] || die "BENCH_BEFORE=$BENCH_BEFORE is not an executable"
  THIS=$MMSERVE MMSERVE=$BENCH_BEFORE
  start_mmserve mmserve-before
  MMSERVE=$THIS
  MMSERVE_SERVERS+=(mmserve-before)
fi
if [[ ${BENCH_NOINLINE:-0} == 1 ]]; then
  start_mmserve mmserve-noinline --inline-execution-max-us 0
  MMSERVE_SERVERS+=(mmserve-noinline)
fi
declare -A BYTES=()
NGINX_LOCATIONS=()
for c in $CASES; do
  for s in "${MMSERVE_SERVERS[@]}"; do
    run_wrk "$s" "$c" 1 1 "${BYTES[$c]:-}"  # probe: the answer's size; both must agree
    ((R_VALID)) && [[ ${R[body_bytes]} -gt 0 ]] || die "$s did not answer $c with 200 (log in $WORK)"
    BYTES[$c]=${R[body_bytes]}
  done
  NGINX_LOCATIONS+=("$c=${BYTES[$c]}")
  printf '  %-15s answer body %s bytes\n' "$c" "${BYTES[$c]}"
done
start_nginx "${NGINX_LOCATIONS[@]}"
SERVERS=(nginx "${MMSERVE_SERVERS[@]}")
for s in "${SERVERS[@]}"; do
  for c in $CASES; do run_wrk "$s" "$c" "$HIGH_CONCURRENCY" "$WARMUP_SECONDS" "${BYTES[$c]}"; done
done

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  order=("${SERVERS[@]}")
  ((ROUND % 2 == 0)) && order=($(printf '%s\n' "${SERVERS[@]}" | tac))
  for conc in 1 "$HIGH_CONCURRENCY"; do
    echo "== round $ROUND of $ROUNDS, concurrency $conc, ${POINT_SECONDS}s per point"
    for c in $CASES; do
      for s in "${order[@]}"; do
        run_wrk "$s" "$c" "$conc" "$POINT_SECONDS" "${BYTES[$c]}"
        record "$s" "$c" "$conc"
      done
    done
  done
done
ELAPSED=$(($(date +%s) - START))

REPORT=$WORK/report.md
python3 bench/report.py "$RESULTS" \
  --cores "$CORES" --cpu "$CPU_MODEL" --load "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --git "$GIT_REV" \
  --build "$BUILD_DIR ($BUILD_TYPE)" \
  --nginx "$("$NGINX" -v 2>&1 | sed 's/.*version: //')" \
  --wrk "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)" \
  --seconds "$POINT_SECONDS" --elapsed "$ELAPSED" --hop "${HOP#THREAD_HOP }" \
  --before "${BENCH_BEFORE:-}" \
  --pinned "$([[ ${#ON_SERVER_CPUS[@]} -gt 0 ]] && echo 1 || echo 0)" >"$REPORT"
echo
cat "$REPORT"
if [[ -n ${BENCH_OUT:-} ]]; then cp "$REPORT" "$BENCH_OUT"; fi
if ((INVALID)); then
  echo "bench/run.sh: some points are INVALID (see above): their figures do not count" >&2
  exit 1
fi
