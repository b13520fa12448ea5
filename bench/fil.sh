#!/usr/bin/env bash
# bench/fil.sh BUILD_DIR: issue 21's benchmark, tree models on mmserve's FIL
# backend, in one run (docs/benchmarks.md, "Tree models (issue 21)").
#
# 1. Engine. One XGBoost model (bench/fil_models.py engine): a binary
#    classifier (binary:logistic), 500 trees of depth 8, 30 features, UBJ,
#    served as Triton's FIL config (backend "fil", model_type xgboost_ubj,
#    is_classifier + predict_proba: output FP32 [2] = (1 - p, p)).
#    baseline  bench_fil_raw: the same file through XGBoost's C API in
#              process (XGBoosterPredictFromDense, nthread=1), dlopened from
#              the library the backend opens (build/fil.env).
#    mmserve   --execution-slots 1 --http-threads 1: one execution slot, so
#              one thread predicts at a time, as raw; wrk over HTTP with
#              Triton's binary tensor extension both ways (bench/fil_binary.lua).
#    Triton    (BENCH_TRITON=1) PyPI's nvidia-pytriton tritonserver has no FIL
#              backend (only python under tritonserver/backends); its Python
#              backend runs the same file with xgboost 3.2.0, nthread=1, one
#              instance (scripts/install-peers.sh installs it).
#    Figures (targets, issue 21):
#      throughput at 1,000 rows per request (wrk -c4: the slot never idles)
#        against raw at batch 1,000: >= 0.9x;
#      p50 of one row (wrk -c1) against raw's one-row p50: <= raw + 40 us.
#    Every server's answers are first checked against xgboost's Python
#    predict_proba of the same rows; raw checks its own (max_abs_diff).
#    Points are interleaved: each round measures raw, mmserve and Triton in
#    turn (the order alternates); the report gives medians over the rounds,
#    with each process's CPU time per request beside the wall-clock figures.
# 2. Many models: bench/fil_many.py (5,000 models, on-demand loading under a
#    budget of 10% of them, a Zipf(1.0) trace at concurrency 16 for 60 s).
#    Not run on Triton: it has no on-demand loading (explicit mode loads a
#    model through the repository API only, and a request for an unloaded
#    model fails), no memory budget or eviction, and its Python backend runs
#    one stub process per model instance (5,000 processes).
#
# Environment:
#   BENCH_SECONDS=5     seconds per measured point (part 1)
#   BENCH_ROUNDS=3      rounds (part 1)
#   BENCH_PIN=0         1: servers and raw on CPU 0, wrk on the others
#   BENCH_RAW_NICE=5    raw's niceness: that of mmserve's execution threads
#   BENCH_TRITON=1      0: no Triton row
#   BENCH_MANY=1        0: part 1 only (fil_many.py's own env for part 2)
#   BENCH_PYTHON        a Python with xgboost (default .venv/bin/python;
#                       scripts/install-deps.sh --test installs it there)
#   FIL_XGBOOST_LIBRARY libxgboost.so (default: build/fil.env's)
#   BENCH_OUT=FILE      also write the markdown report to FILE
#   BENCH_KEEP=0        1: keep the work folder
# Not part of `make test`; about 4 minutes with the defaults on 2 cores (the
# first run also generates the 5,000 models, ~1 minute, cached).
set -euo pipefail
PIN=${BENCH_PIN:-0}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
POINT_SECONDS=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD -- src 2>/dev/null || echo +dirty)"
START=$(date +%s)
bench_init "${1:-build/release}" mmserve bench_fil_raw bench_fil_zipf
RAW=$BUILD_DIR/bench/bench_fil_raw
# raw runs at the niceness of the server's execution threads (mmserve's
# --execution-nice, 5 by default): on a machine shared with other work, a
# nice-5 thread gets a third of a nice-0 one's share, and raw at nice 0 would
# be measured on a CPU the server's executions are not given.
RAW_NICE=${BENCH_RAW_NICE:-5}
PYTHON=${BENCH_PYTHON:-$ROOT/.venv/bin/python}
"$PYTHON" -c 'import xgboost' 2>/dev/null ||
  die "$PYTHON cannot import xgboost (scripts/install-deps.sh --test; or set BENCH_PYTHON)"
if [[ -z ${FIL_XGBOOST_LIBRARY:-} && -f build/fil.env ]]; then
  FIL_XGBOOST_LIBRARY=$(sed -n 's/^FIL_XGBOOST_LIBRARY=//p' build/fil.env)
fi
[[ -n ${FIL_XGBOOST_LIBRARY:-} && -f $FIL_XGBOOST_LIBRARY ]] ||
  die "no libxgboost: run scripts/install-deps.sh (build/fil.env) or set FIL_XGBOOST_LIBRARY"
RESULTS=$WORK/results.tsv
: >"$RESULTS"
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== machine: $CORES cores, $CPU_MODEL, load $LOAD_BEFORE," \
  "pinning $([[ ${#ON_SERVER_CPUS[@]} -gt 0 ]] && echo on || echo off)"

echo "== the engine model (bench/fil_models.py engine)"
M=$WORK/engine
"$PYTHON" bench/fil_models.py engine "$M" | tee "$WORK/models.txt"
MODEL_LINE=$(grep '^engine ' "$WORK/models.txt")

record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }  # ROUND SERIES KEY VALUE

echo "== mmserve"
HTTP_PORT=$(free_port)
METRICS_PORT=$(free_port)
"${ON_SERVER_CPUS[@]}" "$MMSERVE" --model-repository "$M/mmserve" --model-control-mode explicit \
  --http-port "$HTTP_PORT" --grpc-port 0 --metrics-port "$METRICS_PORT" \
  --http-threads 1 --execution-slots 1 >"$WORK/mmserve.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
SERVER_PIDS[mmserve]=$SERVER
URL[mmserve]=http://127.0.0.1:$HTTP_PORT
wait_ready mmserve "${URL[mmserve]}" "$SERVER" 60
rss_bytes() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"; }
rss0=$(rss_bytes "$SERVER")
code=$(curl -s -o "$WORK/load.txt" -w '%{http_code}' -X POST "${URL[mmserve]}/v2/repository/models/xgb_engine/load")
[[ $code == 200 ]] || die "loading xgb_engine failed ($code): $(cat "$WORK/load.txt"; tail -5 "$WORK/mmserve.log")"
rss1=$(rss_bytes "$SERVER")
FOOTPRINT=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" |
  awk '/^mmserve_model_memory_bytes\{/ && /model="xgb_engine"/ && !n++ {print $NF}')
LOAD_S=$(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" |
  awk '/^mmserve_model_load_duration_seconds\{/ && /model="xgb_engine"/ && !n++ {print $NF}')
record 0 mem footprint "${FOOTPRINT:-0}"
record 0 mem rss_growth $((rss1 - rss0))
record 0 mem load_s "${LOAD_S:-0}"
echo "  footprint ${FOOTPRINT:-?} B (the server's count), RSS +$((rss1 - rss0)) B across the load" \
  "(with libxgboost's code: the first tree model opens it), load ${LOAD_S:-?} s"

SERVERS=(mmserve)
if [[ ${BENCH_TRITON:-1} == 1 ]]; then
  echo "== Triton (tritonserver from nvidia-pytriton, Python backend + xgboost)"
  eval "$(bash scripts/install-peers.sh | tail -1 | tr ' ' '\n' | sed 's/^/export /')"
  ls "$TRITON_SITE/pytriton/tritonserver/backends" >"$WORK/triton-backends.txt"
  TRITON_HTTP=$(free_port) TRITON_GRPC=$(free_port) TRITON_METRICS=$(free_port)
  (cd "$TRITON_SITE" && LD_LIBRARY_PATH=$TRITON_LIBS exec "${ON_SERVER_CPUS[@]}" "$TRITON_BIN" \
    --model-repository "$M/triton" --backend-directory "$TRITON_BACKENDS" \
    --http-port "$TRITON_HTTP" --grpc-port "$TRITON_GRPC" --metrics-port "$TRITON_METRICS" \
    >"$WORK/triton.log" 2>&1) &
  TRITON_PID=$!
  PIDS+=("$TRITON_PID")
  SERVER_PIDS[triton]=$TRITON_PID
  URL[triton]=http://127.0.0.1:$TRITON_HTTP
  wait_ready triton "${URL[triton]}" "$TRITON_PID" 120
  TRITON_VERSION=$(curl -s "${URL[triton]}/v2" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("version","?"))')
  echo "  Triton $TRITON_VERSION; backends in the wheel: $(tr '\n' ' ' <"$WORK/triton-backends.txt")"
  SERVERS+=(triton)
fi

# The server's CPU with its children's (Triton's Python runs in its stub
# process): every process whose parent chain reaches PID.
cpu_ticks_tree() {
  local pids
  pids=$(ps -e -o pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2 } END { for (p in parent) { q = p; while (q != "" && q != 0) {
      if (q == root) { print p; break } q = parent[q] } } }')
  cpu_ticks $pids
}

echo "== are the answers xgboost's predict_proba?"
for s in "${SERVERS[@]}"; do
  for b in 1 1000; do
    curl -s -o "$WORK/answer-$s-$b.bin" -D "$WORK/answer-$s-$b.head" -X POST \
      -H 'Content-Type: application/octet-stream' \
      -H "Inference-Header-Content-Length: $(cat "$M/body_b$b.len")" \
      --data-binary "@$M/body_b$b.bin" "${URL[$s]}/v2/models/xgb_engine/infer"
    "$PYTHON" - "$WORK/answer-$s-$b.bin" "$WORK/answer-$s-$b.head" "$M/expected_b$b.f32" "$s" "$b" \
      >>"$WORK/checks.txt" <<'PY' || die "$s's answer for $b rows is wrong: $(tail -1 "$WORK/checks.txt")"
import json, re, sys
import numpy as np
body, head, expected, server, b = open(sys.argv[1], "rb").read(), open(sys.argv[2]).read(), \
    np.fromfile(sys.argv[3], np.float32).reshape(-1, 2), sys.argv[4], int(sys.argv[5])
status = int(head.split()[1])
n = int(re.search(r"(?i)inference-header-content-length:\s*(\d+)", head).group(1)) if status == 200 else 0
if status != 200:
    print(f"{server} b{b}: HTTP {status}: {body[:300]!r}"); sys.exit(1)
meta = json.loads(body[:n])["outputs"][0]
y = np.frombuffer(body[n:], np.float32).reshape(expected.shape)
diff = float(np.abs(y.astype(np.float64) - expected).max())
print(f"{server} b{b}: shape {meta['shape']}, max |diff| {diff:.3g}, "
      f"{int((y == expected).all(axis=1).sum())}/{len(y)} rows bit-exact")
sys.exit(0 if diff <= 1e-6 else 1)
PY
    tail -1 "$WORK/checks.txt" | sed 's/^/  /'
  done
done

# http_point ROUND SERVER B CONCURRENCY SECONDS: wrk with B rows per request.
http_point() {
  local round=$1 server=$2 b=$3 conc=$4 seconds=$5 log=$WORK/wrk-$2-b$3.txt t0 t1
  t0=$(cpu_ticks_tree "${SERVER_PIDS[$server]}")
  BENCH_BODY_FILE=$M/body_b$b.bin BENCH_HEADER_LENGTH=$(cat "$M/body_b$b.len") \
    "${ON_CLIENT_CPUS[@]}" wrk -t1 -c"$conc" -d"${seconds}s" --latency --timeout 10s \
    -s bench/fil_binary.lua "${URL[$server]}/v2/models/xgb_engine/infer" \
    -- "$(wc -c <"$WORK/answer-$server-$b.bin")" >"$log" 2>&1 || true
  t1=$(cpu_ticks_tree "${SERVER_PIDS[$server]}")
  local line kv
  line=$(grep '^BENCH_RESULT' "$log" || true)
  [[ -n $line ]] || { cat "$log" >&2; die "wrk gave no result for $server b$b"; }
  declare -gA R=()
  for kv in ${line#BENCH_RESULT }; do R[${kv%%=*}]=${kv#*=}; done
  if ((R[bad_status] + R[bad_size] + R[errors] > 0 || R[responses] == 0)); then
    die "INVALID: $server b$b c$conc: ${R[bad_status]} non-200, ${R[bad_size]} wrong size," \
      "${R[errors]} socket errors; $(grep '^BENCH_FIRST_BAD' "$log" | head -1)"
  fi
  local cpu
  cpu=$(python3 -c "print(f'{($t1 - $t0) / $TICKS_PER_SECOND * 1e6 / max(1, ${R[requests]}):.1f}')")
  [[ $round == 0 ]] && return 0
  record "$round" "$server" "rps_b$b" "${R[rps]}"
  record "$round" "$server" "rows_b$b" "$(python3 -c "print(${R[rps]} * $b)")"
  record "$round" "$server" "p50_b$b" "${R[p50_us]}"
  record "$round" "$server" "p99_b$b" "${R[p99_us]}"
  record "$round" "$server" "cpu_b$b" "$cpu"
  printf '  %-8s b%-5s c%-2s %9s req/s  p50 %9s us  p99 %9s us  CPU %s us/req\n' \
    "$server" "$b" "$conc" "${R[rps]}" "${R[p50_us]}" "${R[p99_us]}" "$cpu"
}

# raw_point ROUND B SECONDS: bench_fil_raw, one thread.
raw_point() {
  local round=$1 b=$2 seconds=$3 line kv
  line=$("${ON_SERVER_CPUS[@]}" nice -n "$RAW_NICE" "$RAW" --library "$FIL_XGBOOST_LIBRARY" --rows "$M/rows.f32" \
    --batch "$b" --seconds "$seconds" --warmup-seconds 1 --expected "$M/expected_b$b.f32" \
    "$M/mmserve/xgb_engine/1/xgboost.ubj" 2>"$WORK/raw.err") ||
    die "bench_fil_raw failed: $(cat "$WORK/raw.err")"
  declare -gA T=()
  for kv in ${line#FIL_RAW }; do T[${kv%%=*}]=${kv#*=}; done
  [[ ${T[max_abs_diff]} == 0 ]] || python3 -c "import sys; sys.exit(0 if float('${T[max_abs_diff]}') <= 1e-6 else 1)" ||
    die "bench_fil_raw's predictions differ from xgboost's Python ones by ${T[max_abs_diff]}"
  [[ $round == 0 ]] && return 0
  record "$round" raw "rps_b$b" "${T[rps]}"
  record "$round" raw "rows_b$b" "${T[rows_per_s]}"
  record "$round" raw "p50_b$b" "${T[p50_us]}"
  record "$round" raw "p99_b$b" "${T[p99_us]}"
  record "$round" raw "cpu_b$b" "${T[cpu_us_per_call]}"
  record "$round" raw xgboost "${T[xgboost]}"
  printf '  %-8s b%-5s     %9s calls/s p50 %9s us  p99 %9s us  CPU %s us/call (max |diff| %s)\n' \
    raw "$b" "${T[rps]}" "${T[p50_us]}" "${T[p99_us]}" "${T[cpu_us_per_call]}" "${T[max_abs_diff]}"
}

echo "== warm-up"
for s in "${SERVERS[@]}"; do
  http_point 0 "$s" 1000 4 2
  http_point 0 "$s" 1 1 2
done
raw_point 0 1 1

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  order=(raw "${SERVERS[@]}")
  if ((ROUND % 2 == 0)); then  # the reverse
    order=()
    for s in raw "${SERVERS[@]}"; do order=("$s" "${order[@]}"); done
  fi
  echo "== round $ROUND of $ROUNDS (${order[*]}), ${POINT_SECONDS}s per point"
  for b in 1000 1; do
    for s in "${order[@]}"; do
      if [[ $s == raw ]]; then
        raw_point "$ROUND" "$b" "$POINT_SECONDS"
      elif ((b == 1)); then
        http_point "$ROUND" "$s" 1 1 "$POINT_SECONDS"
      else
        http_point "$ROUND" "$s" 1000 4 "$POINT_SECONDS"
      fi
    done
  done
done
for s in "${SERVERS[@]}"; do stop_server "$s"; done
grep -o "model 'xgb_engine' version 1 is READY ([^)]*)" "$WORK/mmserve.log" | sed 's/^/  mmserve log: /' || true
ELAPSED=$(($(date +%s) - START))

REPORT=$WORK/report.md
python3 bench/fil_report.py "$RESULTS" \
  --machine "$CORES cores, $CPU_MODEL, load average $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after" \
  --git "$GIT_REV" --build "$BUILD_DIR ($BUILD_TYPE)" --model "$MODEL_LINE" \
  --seconds "$POINT_SECONDS" --rounds "$ROUNDS" --elapsed "$ELAPSED" \
  --triton "${TRITON_VERSION:-}" --checks "$WORK/checks.txt" --raw-nice "$RAW_NICE" \
  --pinned "$([[ ${#ON_SERVER_CPUS[@]} -gt 0 ]] && echo 1 || echo 0)" >"$REPORT"
echo
cat "$REPORT"
if [[ ${BENCH_MANY:-1} == 1 ]]; then
  echo "== part 2: many models (bench/fil_many.py)"
  MANY_OUT=$WORK/many.md
  BENCH_PYTHON=$PYTHON BENCH_OUT=$MANY_OUT "$PYTHON" bench/fil_many.py "$BUILD_DIR" || MANY_RC=$?
  [[ -f $MANY_OUT ]] && { echo; cat "$MANY_OUT"; } >>"$REPORT"
fi
if [[ -n ${BENCH_OUT:-} ]]; then cp "$REPORT" "$BENCH_OUT"; fi
exit "${MANY_RC:-0}"
