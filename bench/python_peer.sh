#!/usr/bin/env bash
# bench/python_peer.sh BUILD_DIR: Python models on mmserve against Triton's own
# server (tritonserver and its Python backend, from PyPI's nvidia-pytriton:
# scripts/install-peers.sh), same model files, same run, ratios.
#
# Models: examples/models/add_sub_python (Triton's add_sub example model.py)
# and sklearn_iris (a scikit-learn pipeline behind a model.py). Both servers
# import the same scikit-learn version: mmserve through --python-env .venv,
# Triton from its own venv (scripts/install-peers.sh says why numpy 1 there).
# First bench/python_peer_check.py checks that both answer as the models
# compute. Then, per model and protocol, against each server in turn
# (interleaved, BENCH_ROUNDS times; the servers pinned to CPU 0, the load
# generators to the others):
#   p50 at concurrency 1, throughput at concurrency 32;
#   HTTP: wrk with JSON bodies (bench/add_sub_json.lua, sklearn_iris_json.lua);
#   gRPC: bench_grpc_load (a light C++ client; perf_analyzer would bound the
#   servers by its own CPU, bench/grpc_vs_http.sh).
# Targets (issue 19): mmserve p50 <= 0.8x Triton's, throughput >= 1.25x.
# Env: BENCH_SECONDS (10), BENCH_ROUNDS (1), BENCH_PIN (1), BENCH_OUT (a file
# for the markdown report), MMSERVE_PYTHON_ENV (.venv).
set -euo pipefail
PIN=${BENCH_PIN:-1}
source "$(dirname "$0")/lib.sh"
SECONDS_PER_POINT=${BENCH_SECONDS:-10}
ROUNDS=${BENCH_ROUNDS:-1}
bench_init "${1:-build/release}" mmserve bench_grpc_load
eval "$(bash scripts/install-peers.sh | tail -1 | tr ' ' '\n' | sed 's/^/export /')"

REPO=$WORK/repo
mkdir -p "$REPO"
cp -r examples/models/add_sub_python examples/models/sklearn_iris "$REPO/"
MODELS=(add_sub_python sklearn_iris)

BENCH_REPO=$REPO start_mmserve mmserve --python-env "${MMSERVE_PYTHON_ENV:-.venv}"

# Triton, pinned alike, run from its venv's site-packages (install-peers.sh).
TRITON_HTTP=$(free_port) TRITON_GRPC=$(free_port) TRITON_METRICS=$(free_port)
(cd "$TRITON_SITE" && LD_LIBRARY_PATH=$TRITON_LIBS exec "${ON_SERVER_CPUS[@]}" "$TRITON_BIN" \
  --model-repository "$REPO" --backend-directory "$TRITON_BACKENDS" \
  --http-port "$TRITON_HTTP" --grpc-port "$TRITON_GRPC" --metrics-port "$TRITON_METRICS" \
  >"$WORK/triton.log" 2>&1) &
TRITON_PID=$!
PIDS+=("$TRITON_PID")
SERVER_PIDS[triton]=$TRITON_PID
URL[triton]=http://127.0.0.1:$TRITON_HTTP
GRPC_ADDR[triton]=127.0.0.1:$TRITON_GRPC
wait_ready triton "${URL[triton]}" "$TRITON_PID" 120
SERVERS=(mmserve triton)

echo "== do both answer as the models compute?"
for s in "${SERVERS[@]}"; do
  "$ROOT/.venv/bin/python" bench/python_peer_check.py "${URL[$s]#http://}" "${GRPC_ADDR[$s]}" "$s"
done

# The gRPC requests, serialized once.
"$ROOT/.venv/bin/python" - "$WORK" <<'PY'
import sys
import numpy as np
from tritonclient.grpc import service_pb2 as pb
r = pb.ModelInferRequest(model_name="add_sub_python")
for name in ("INPUT0", "INPUT1"):
    r.inputs.add(name=name, datatype="FP32", shape=[4])
r.raw_input_contents.extend([np.array([1, 2, 3, 4], np.float32).tobytes(),
                             np.array([10, 20, 30, 40], np.float32).tobytes()])
open(f"{sys.argv[1]}/add_sub_python.bin", "wb").write(r.SerializeToString())
r = pb.ModelInferRequest(model_name="sklearn_iris")
r.inputs.add(name="INPUT", datatype="FP32", shape=[1, 4])
r.raw_input_contents.append(np.array([[5.9, 3.0, 4.2, 1.5]], np.float32).tobytes())
open(f"{sys.argv[1]}/sklearn_iris.bin", "wb").write(r.SerializeToString())
PY

lua_of() { [[ $1 == add_sub_python ]] && echo add_sub_json || echo sklearn_iris_json; }

# point SERVER MODEL http|grpc CONCURRENCY -> "p50_us rps errors cpu_us_per_request"
point() {
  local server=$1 model=$2 proto=$3 conc=$4 t0 t1 p50 rps errors
  t0=$(cpu_ticks_tree "${SERVER_PIDS[$server]}")
  if [[ $proto == grpc ]]; then
    read -r p50 _ rps errors <<<"$("${ON_CLIENT_CPUS[@]}" "$BUILD_DIR/bench/bench_grpc_load" \
      "${GRPC_ADDR[$server]}" "$WORK/$model.bin" "$conc" "$conc" "$SECONDS_PER_POINT")"
  else
    local threads=1
    ((conc > 1)) && threads=2
    "${ON_CLIENT_CPUS[@]}" wrk -t"$threads" -c"$conc" -d"${SECONDS_PER_POINT}s" --latency \
      -s "bench/$(lua_of "$model").lua" "${URL[$server]}/v2/models/$model/infer" \
      >"$WORK/wrk.txt" 2>&1 || true
    local line; line=$(grep '^BENCH_RESULT' "$WORK/wrk.txt") || die "wrk: $(cat "$WORK/wrk.txt")"
    declare -A W=()
    local kv
    for kv in ${line#BENCH_RESULT }; do W[${kv%%=*}]=${kv#*=}; done
    p50=${W[p50_us]} rps=${W[rps]} errors=$((W[bad_status] + W[bad_size] + W[errors]))
  fi
  t1=$(cpu_ticks_tree "${SERVER_PIDS[$server]}")
  python3 -c "print($p50, $rps, $errors, round(($t1 - $t0) / $TICKS_PER_SECOND * 1e6 / max($rps * $SECONDS_PER_POINT, 1), 1))"
}

# The server's CPU with its children's (Python runs in Triton's stubs and in
# mmserve's workers): every process whose parent chain reaches PID.
cpu_ticks_tree() {
  local pids; pids=$(ps -e -o pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2 } END { for (p in parent) { q = p; while (q != "" && q != 0) {
      if (q == root) { print p; break } q = parent[q] } } }')
  cpu_ticks $pids
}

echo "== warm-up"
for s in "${SERVERS[@]}"; do for m in "${MODELS[@]}"; do
  SECONDS_PER_POINT=1 point "$s" "$m" http 4 >/dev/null
  SECONDS_PER_POINT=1 point "$s" "$m" grpc 4 >/dev/null
done; done

RESULTS=$WORK/results.tsv
: >"$RESULTS"
echo "== measuring ($SECONDS_PER_POINT s per point, $ROUNDS round(s))"
for ((round = 1; round <= ROUNDS; round++)); do
  order=("${SERVERS[@]}")
  ((round % 2 == 0)) && order=(triton mmserve)
  for m in "${MODELS[@]}"; do for proto in http grpc; do for conc in 1 32; do
    for s in "${order[@]}"; do
      read -r p50 rps errors cpu <<<"$(point "$s" "$m" "$proto" "$conc")"
      ((errors == 0)) || die "$s $m $proto c$conc: $errors errors"
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$s" "$m" "$proto" "$conc" "$p50" "$rps" \
        "$cpu" >>"$RESULTS"
      printf '  %-8s %-15s %-5s c%-3s p50 %7s us  %8s req/s  %7s us CPU/req\n' "$s" "$m" "$proto" \
        "$conc" "$p50" "$rps" "$cpu"
    done
  done; done; done
done

python3 - "$RESULTS" "$SECONDS_PER_POINT" "$ROUNDS" "$PIN" "$(git rev-parse --short HEAD)" \
  "${BENCH_OUT:-}" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
seconds, rounds, pin, rev, out = sys.argv[2:7]
fig = {}
for r in rows:
    rnd, server, model, proto, conc, p50, rps, cpu = r
    fig.setdefault((model, proto, int(conc), server), []).append((float(p50), float(rps), float(cpu)))
def med(key, i):
    return statistics.median(v[i] for v in fig[key])
lines = [f"Python models, mmserve vs Triton {''}(tritonserver, nvidia-pytriton 0.7.0), git {rev}, "
         f"{seconds} s per point, {rounds} round(s), pinned={pin}; medians of the rounds.", "",
         "| model | protocol | p50 c1 mmserve / Triton µs | p50 ratio (≤ 0.8) | req/s c32 mmserve / Triton | throughput ratio (≥ 1.25) | CPU µs/req c32 mmserve / Triton |",
         "|---|---|---:|---:|---:|---:|---:|"]
for model in ("add_sub_python", "sklearn_iris"):
    for proto in ("http", "grpc"):
        m1, t1 = med((model, proto, 1, "mmserve"), 0), med((model, proto, 1, "triton"), 0)
        m32, t32 = med((model, proto, 32, "mmserve"), 1), med((model, proto, 32, "triton"), 1)
        c_m, c_t = med((model, proto, 32, "mmserve"), 2), med((model, proto, 32, "triton"), 2)
        lines.append(f"| {model} | {proto.upper()} | {m1:.0f} / {t1:.0f} | {m1 / t1:.2f}x | "
                     f"{m32:.0f} / {t32:.0f} | {m32 / t32:.2f}x | {c_m:.0f} / {c_t:.0f} |")
report = "\n".join(lines) + "\n"
print("\n" + report)
if out:
    open(out, "w").write(report)
PY
