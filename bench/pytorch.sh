#!/usr/bin/env bash
# bench/pytorch.sh BUILD_DIR: issue 20's benchmark, mmserve's PyTorch backend
# against raw libtorch `forward` in-process, measured in one run and reported
# as ratios (docs/benchmarks.md, "PyTorch models against raw libtorch").
#
#   models      made by bench/torch_models.py with .venv's torch (fixed seed)
#               into a temporary repository: `mlp` (16 -> 64 -> 64 -> 10,
#               softmax; mlp_classifier's interface; BENCH_MLP_HIDDEN widens
#               it) and `resnet18` (ResNet-18's layout and parameter count
#               from torch.nn, one 3xNxN FP32 image, N = BENCH_CNN_SIZE, 64 by
#               default so that a 2-core run stays short), each also as
#               `<name>_batched` with
#               `dynamic_batching { }`; one CPU instance each, the backend's
#               default parameters (intra-op 1, inter-op 1, inference mode,
#               optimized execution).
#   baseline    bench_torch_raw: the same model.pt, torch::jit::load, forward
#               on from_blob inputs with those same settings, one thread (the
#               server runs one instance on one execution slot).
#   server      one mmserve, --http-threads 1 --execution-slots 1, explicit
#               model control; wrk over HTTP with Triton's binary tensor
#               extension both ways (bench/mlp_binary.lua,
#               bench/resnet18_binary.lua).
#
# Figures (issue 20's targets):
#   1. p50 at concurrency 1 (wrk -t1 -c1), batch 1, against raw forward's
#      p50 at batch 1: mlp at most raw + 40 us, resnet18 at most 1.10x raw.
#   2. <name>_batched at concurrency 64 (wrk -t2 -c64, one row per request):
#      rows/s against raw forward's rows/s at the batch the server formed (the
#      mean batch from the statistics API's inference/execution counts over
#      the point; raw runs at its floor and ceiling, rows/s interpolated):
#      at least 0.85x.
#      The small MLP's figure is bounded by HTTP, not by the model: nginx
#      answering the same requests with a static body of the same size (one
#      worker, same wrk) is measured beside it, as the ceiling.
#   3. the footprint the lifecycle counts for resnet18
#      (mmserve_model_memory_bytes in the metrics) against the growth of the
#      server's VmRSS (/proc/PID/status) across its explicit load
#      (POST /v2/repository/models/resnet18/load), within 20%. mlp is loaded
#      first: the first PyTorch model opens the plugin and libtorch (their
#      code and one-time set-up, which no model's footprint counts); that
#      growth is reported too.
# The server's statistics (queue per request; compute input/infer/output per
# execution) and its CPU time per request (utime+stime of all its threads) are
# reported beside each point, to tell forward's own time from the rest; raw's
# CPU time per call too. CPU time does not grow when other processes take the
# CPU away, so on a shared machine "server CPU per request" against "raw CPU
# per row" shows the server's own cost when the wall-clock ratios are blurred
# by the neighbours (the targets stay the wall-clock ratios).
#
# Points are interleaved: each round measures raw and server in turn (the
# order alternates each round); the report gives medians over the rounds.
#
# Environment:
#   BENCH_SECONDS=5       seconds per measured point
#   BENCH_ROUNDS=3        rounds
#   BENCH_CNN_SIZE=64     the CNN's image side
#   BENCH_MLP_HIDDEN=64   the MLP's hidden width
#   BENCH_PIN=0           1: server and raw on CPU 0, wrk on the other CPUs;
#                         0: all left to the kernel (as bench/batching.sh)
#   BENCH_SERVER_FLAGS    more server flags
#   BENCH_OUT=FILE        also write the markdown report to FILE
#   BENCH_KEEP=0          1: keep the work folder (logs, wrk output, models)
# Not part of `make test`; about 4 minutes with the defaults on 2 cores.
set -euo pipefail
PIN=${BENCH_PIN:-0}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
POINT_SECONDS=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CNN_SIZE=${BENCH_CNN_SIZE:-64}
MLP_HIDDEN=${BENCH_MLP_HIDDEN:-64}
# The source state measured: taken before building.
GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD -- src 2>/dev/null || echo +dirty)"
START=$(date +%s)
bench_init "${1:-build/release}" mmserve bench_torch_raw
RAW=$BUILD_DIR/bench/bench_torch_raw
PYTHON=$ROOT/.venv/bin/python
[[ -x $PYTHON ]] || die "$PYTHON is missing (make venv; scripts/install-deps.sh --test for torch)"
REPO=$WORK/repo
RESULTS=$WORK/results.tsv
mkdir -p "$REPO"
: >"$RESULTS"
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== machine: $CORES cores, $CPU_MODEL, load $LOAD_BEFORE," \
  "pinning $([[ ${#ON_SERVER_CPUS[@]} -gt 0 ]] && echo on || echo off)"

echo "== models (bench/torch_models.py, ${CNN_SIZE}x${CNN_SIZE} images)"
"$PYTHON" -W ignore bench/torch_models.py "$REPO" "$WORK" --cnn-size "$CNN_SIZE" \
  --mlp-hidden "$MLP_HIDDEN" >"$WORK/models.txt"
CNN_PARAMS=$(sed -n 's/^resnet18 parameters=//p' "$WORK/models.txt")
TORCH_VERSION=$("$PYTHON" -c 'import torch; print(torch.__version__)')
export BENCH_BODY_FILE=$WORK/resnet18_body.bin
BENCH_HEADER_LENGTH=$(cat "$WORK/resnet18_body.len")
export BENCH_HEADER_LENGTH
declare -A LUA=([mlp]=bench/mlp_binary.lua [resnet18]=bench/resnet18_binary.lua)
declare -A ROW_SHAPE=([mlp]=16 [resnet18]=3,$CNN_SIZE,$CNN_SIZE)
MODELS=(mlp resnet18)

# record ROUND SERIES MODEL KEY VALUE
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

echo "== server"
HTTP_PORT=$(free_port)
METRICS_PORT=$(free_port)
BASE=http://127.0.0.1:$HTTP_PORT
"${ON_SERVER_CPUS[@]}" "$MMSERVE" --model-repository "$REPO" --model-control-mode explicit \
  --http-port "$HTTP_PORT" --grpc-port 0 --metrics-port "$METRICS_PORT" \
  --http-threads 1 --execution-slots 1 ${BENCH_SERVER_FLAGS:-} >"$WORK/server.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
SERVER_PIDS[server]=$SERVER
wait_ready server "$BASE" "$SERVER" 60

rss_bytes() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$SERVER/status"; }
load_model() {  # load_model NAME: the repository API's load (it returns when the load ended)
  local code
  code=$(curl -s -o "$WORK/load-$1.txt" -w '%{http_code}' -X POST "$BASE/v2/repository/models/$1/load")
  [[ $code == 200 ]] || die "loading $1 failed ($code): $(cat "$WORK/load-$1.txt"; tail -5 "$WORK/server.log")"
}
footprint_bytes() {  # footprint_bytes NAME: what the lifecycle counts (metrics)
  curl -s "http://127.0.0.1:$METRICS_PORT/metrics" |
    awk -v m="model=\"$1\"" '/^mmserve_model_memory_bytes\{/ && index($0, m) && !n++ {print $NF}'
}

echo "== memory: RSS growth across explicit loads against the counted footprint"
rss0=$(rss_bytes)
load_model mlp
rss1=$(rss_bytes)
load_model resnet18
rss2=$(rss_bytes)
fp_mlp=$(footprint_bytes mlp)
fp_cnn=$(footprint_bytes resnet18)
[[ -n $fp_mlp && -n $fp_cnn ]] || die "no mmserve_model_memory_bytes for mlp or resnet18 in the metrics"
record 0 mem mlp rss_growth $((rss1 - rss0))
record 0 mem mlp footprint "$fp_mlp"
record 0 mem resnet18 rss_growth $((rss2 - rss1))
record 0 mem resnet18 footprint "$fp_cnn"
record 0 mem resnet18 file_bytes "$(stat -c %s "$REPO/resnet18/1/model.pt")"
printf '  mlp (first PyTorch model): RSS +%s B, footprint %s B\n' $((rss1 - rss0)) "$fp_mlp"
printf '  resnet18: RSS +%s B, footprint %s B\n' $((rss2 - rss1)) "$fp_cnn"
grep -o "model 'resnet18' version 1 is READY ([^;]*" "$WORK/server.log" | sed 's/^/  log: /' || true
load_model mlp_batched
load_model resnet18_batched

# stats NAME: "inferences executions queue_ns input_ns infer_ns output_ns":
# the queue summed over requests, the compute stages summed over executions
# (batch_stats: a batch's time counted once, not once per request in it).
stats() {
  curl -s "$BASE/v2/models/$1/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)["model_stats"][0]; b = s["batch_stats"]
print(s["inference_count"], s["execution_count"], s["inference_stats"]["queue"]["ns"],
      *(sum(x[k]["ns"] for x in b) for k in ("compute_input", "compute_infer", "compute_output")))'
}

# http_point ROUND MODEL CONCURRENCY SECONDS [KEY_SUFFIX]: wrk against
# MODEL (its lua by the name before _batched); records rps, p50, p99 and the
# statistics' per-execution stage times and mean batch over the point.
declare -A BYTES=()
http_point() {
  local round=$1 model=$2 conc=$3 seconds=$4
  local base=${model%_batched} threads=1 log=$WORK/wrk-$model-c$conc.txt
  ((conc > 1)) && threads=2
  local extra=()
  [[ -n ${BYTES[$model]:-} ]] && extra=(-- "${BYTES[$model]}")
  local s0 s1 t0 t1
  s0=$(stats "$model")
  t0=$(cpu_ticks "$SERVER")
  "${ON_CLIENT_CPUS[@]}" wrk -t"$threads" -c"$conc" -d"${seconds}s" --latency --timeout 10s \
    -s "${LUA[$base]}" "$BASE/v2/models/$model/infer" "${extra[@]}" >"$log" 2>&1 || true
  t1=$(cpu_ticks "$SERVER")
  s1=$(stats "$model")
  local line
  line=$(grep '^BENCH_RESULT' "$log" || true)
  [[ -n $line ]] || { cat "$log" >&2; die "wrk gave no result for $model c$conc"; }
  declare -gA R=()
  local kv
  for kv in ${line#BENCH_RESULT }; do R[${kv%%=*}]=${kv#*=}; done
  if ((R[bad_status] + R[bad_size] + R[errors] > 0 || R[responses] == 0)); then
    die "INVALID: $model c$conc: ${R[bad_status]} non-200, ${R[bad_size]} wrong size," \
      "${R[errors]} socket errors; $(grep '^BENCH_FIRST_BAD' "$log" | head -1)"
  fi
  BYTES[$model]=${R[body_bytes]}
  read -r -a S <<<"$(python3 -c '
import sys
a = list(map(int, sys.argv[1].split())); b = list(map(int, sys.argv[2].split()))
d = [y - x for x, y in zip(a, b)]; n = max(1, d[0]); e = max(1, d[1])
print(f"{d[0] / e:.2f}", f"{d[2] / n / 1e3:.1f}", *(f"{v / e / 1e3:.1f}" for v in d[3:]))' "$s0" "$s1")"
  [[ $round == 0 ]] && return 0  # a warm-up
  local c=c$conc
  record "$round" http "$model" "rps_$c" "${R[rps]}"
  record "$round" http "$model" "p50_$c" "${R[p50_us]}"
  record "$round" http "$model" "p99_$c" "${R[p99_us]}"
  record "$round" http "$model" "mean_batch_$c" "${S[0]}"
  record "$round" http "$model" "queue_us_$c" "${S[1]}"
  record "$round" http "$model" "input_us_$c" "${S[2]}"
  record "$round" http "$model" "infer_us_$c" "${S[3]}"
  record "$round" http "$model" "output_us_$c" "${S[4]}"
  local cpu
  cpu=$(python3 -c "print(f'{($t1 - $t0) / $TICKS_PER_SECOND * 1e6 / max(1, ${R[requests]}):.1f}')")
  record "$round" http "$model" "cpu_us_$c" "$cpu"
  printf '  server %-17s c%-3s %9s req/s  p50 %9s us  p99 %9s us  mean batch %6s  queue %s us; per execution: infer %s in %s out %s us; server CPU %s us/req\n' \
    "$model" "$conc" "${R[rps]}" "${R[p50_us]}" "${R[p99_us]}" "${S[0]}" "${S[1]}" "${S[3]}" "${S[2]}" "${S[4]}" "$cpu"
}

# raw_point ROUND MODEL BATCH SECONDS KEY: bench_torch_raw, one thread.
raw_point() {
  local round=$1 model=$2 batch=$3 seconds=$4 key=$5 line kv
  line=$("${ON_SERVER_CPUS[@]}" "$RAW" --seconds "$seconds" --warmup-seconds 1 --batch "$batch" \
    --input-shape "${ROW_SHAPE[$model]}" "$REPO/$model/1/model.pt" 2>"$WORK/raw.err") ||
    die "bench_torch_raw failed: $(cat "$WORK/raw.err")"
  declare -gA T=()
  for kv in ${line#TORCH_RAW }; do T[${kv%%=*}]=${kv#*=}; done
  record "$round" raw "$model" "p50_$key" "${T[p50_us]}"
  record "$round" raw "$model" "rows_$key" "${T[rows_per_s]}"
  record "$round" raw "$model" "cpu_$key" "${T[cpu_us_per_call]}"
  printf '  raw    %-17s b%-3s %9s rows/s p50 %9s us  p99 %9s us  CPU %s us/call\n' \
    "$model" "$batch" "${T[rows_per_s]}" "${T[p50_us]}" "${T[p99_us]}" "${T[cpu_us_per_call]}"
}

echo "== warm-up (and the answers' sizes)"
for m in "${MODELS[@]}"; do
  http_point 0 "$m" 1 2
  http_point 0 "${m}_batched" 64 2
done

# The HTTP ceiling for the small MLP's batching point: nginx answering every
# POST with a static body of mlp_batched's answer size (lib.sh), same wrk.
start_nginx "mlp_binary=${BYTES[mlp_batched]}"
run_wrk nginx mlp_binary 64 2 "${BYTES[mlp_batched]}"

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  echo "== round $ROUND of $ROUNDS: concurrency 1, batch 1, ${POINT_SECONDS}s per point"
  for m in "${MODELS[@]}"; do
    if ((ROUND % 2)); then
      raw_point "$ROUND" "$m" 1 "$POINT_SECONDS" b1
      http_point "$ROUND" "$m" 1 "$POINT_SECONDS"
    else
      http_point "$ROUND" "$m" 1 "$POINT_SECONDS"
      raw_point "$ROUND" "$m" 1 "$POINT_SECONDS" b1
    fi
  done
  echo "== round $ROUND of $ROUNDS: dynamic batching, concurrency 64, then raw at the mean batch"
  for m in "${MODELS[@]}"; do
    http_point "$ROUND" "${m}_batched" 64 "$POINT_SECONDS"
    mean=${S[0]}
    if [[ $m == mlp ]]; then
      run_wrk nginx mlp_binary 64 "$POINT_SECONDS" "${BYTES[mlp_batched]}"
      ((R_VALID)) || die "nginx's answers were not all 200 with the expected size"
      record "$ROUND" nginx mlp rps_c64 "${R[rps]}"
      record "$ROUND" nginx mlp cpu_us_c64 \
        "$(python3 -c "print(f'{${R[cpu_ticks]} / $TICKS_PER_SECOND * 1e6 / max(1, ${R[requests]}):.1f}')")"
      printf '  nginx  %-17s c%-3s %9s req/s  p50 %9s us (a static answer of the same size)\n' \
        mlp_binary 64 "${R[rps]}" "${R[p50_us]}"
    fi
    lo=$(python3 -c "import math; print(max(1, math.floor($mean)))")
    hi=$(python3 -c "import math; print(max(1, math.ceil($mean)))")
    record "$ROUND" raw "$m" batch_lo "$lo"
    record "$ROUND" raw "$m" batch_hi "$hi"
    raw_point "$ROUND" "$m" "$lo" "$POINT_SECONDS" lo
    if ((hi != lo)); then
      raw_point "$ROUND" "$m" "$hi" "$POINT_SECONDS" hi
    else
      record "$ROUND" raw "$m" rows_hi "${T[rows_per_s]}"
      record "$ROUND" raw "$m" cpu_hi "${T[cpu_us_per_call]}"
    fi
  done
done
stop_server server
grep -o "model '[a-z0-9_]*': [0-9]* requests in [0-9]* executions" "$WORK/server.log" |
  sed 's/^/  server log: /' || true
ELAPSED=$(($(date +%s) - START))

REPORT=$WORK/report.md
python3 bench/torch_report.py "$RESULTS" \
  --machine "$CORES cores, $CPU_MODEL, load average $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after" \
  --git "$GIT_REV" --build "$BUILD_DIR ($BUILD_TYPE)" --torch "$TORCH_VERSION" \
  --cnn-size "$CNN_SIZE" --mlp-hidden "$MLP_HIDDEN" --cnn-params "$CNN_PARAMS" \
  --seconds "$POINT_SECONDS" \
  --rounds "$ROUNDS" --elapsed "$ELAPSED" \
  --pinned "$([[ ${#ON_SERVER_CPUS[@]} -gt 0 ]] && echo 1 || echo 0)" >"$REPORT"
echo
cat "$REPORT"
if [[ -n ${BENCH_OUT:-} ]]; then cp "$REPORT" "$BENCH_OUT"; fi
