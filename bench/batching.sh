#!/usr/bin/env bash
# bench/batching.sh BUILD_DIR: issue 5 benchmark (a), an MLP at concurrency 64
# with and without dynamic batching, beside raw ONNX Runtime running the
# achieved mean batch size in a loop (the limit), same run:
#   - the MLP: mlp_classifier's inputs and outputs, but hidden layers of
#     BENCH_MLP_HIDDEN (2048) and BENCH_MLP_LAYERS (2) more of them, so that
#     execution, not HTTP, is what a request costs (the example's 32-wide MLP
#     runs in ~3 µs; the server's I/O then bounds both variants alike), and
#     so that batching buys the model itself more than 3x: a 1024-wide MLP
#     runs only ~2.7x more rows/s raw at batch 27 than at batch 1 here, which
#     caps "batched / unbatched" below the target whatever the server does;
#   - mlp (no batching) and mlp_batched (the same with `dynamic_batching { }`:
#     whatever queued while the instance ran goes in the next execution), one
#     mmserve, --http-threads 1 --execution-slots 1; wrk -t2 -c64 with
#     bench/mlp_binary.lua (1 row each);
#   - placement, BENCH_PIN (0): 0 leaves the server's two threads and wrk to
#     the kernel on this machine's 2 CPUs, so the execution thread has a CPU
#     much as raw ONNX Runtime does and the HTTP thread shares the other with
#     wrk, as I/O on cores of its own would in a deployment; 1 pins the server
#     to CPU 0 (HTTP and execution share it) and wrk to CPU 1;
#   - the mean batch: the server logs "N requests in E executions" for a
#     batching model when it stops;
#   - bench_ort_raw --batch B (on CPU 0 when pinned) with the server's session
#     options, at the floor and ceiling of the mean batch; rows/s interpolated.
# Targets: batched >= 3x unbatched throughput; batched >= 0.85x raw ORT rows/s
# at the achieved mean batch size. Env: BENCH_SECONDS (10), BENCH_PIN (0),
# BENCH_MLP_HIDDEN, BENCH_MLP_LAYERS, BENCH_SERVER_FLAGS (more server flags).
set -euo pipefail
PIN=${BENCH_PIN:-0}
source "$(dirname "$0")/lib.sh"
SECONDS_PER_POINT=${BENCH_SECONDS:-10}
bench_init "${1:-build/release}" mmserve bench_ort_raw

REPO=$WORK/repo
mkdir -p "$REPO"
HIDDEN=${BENCH_MLP_HIDDEN:-2048}
LAYERS=${BENCH_MLP_LAYERS:-2}
"$ROOT/.venv/bin/python" scripts/make_example_models.py --mlp "$REPO" mlp "$HIDDEN" "$LAYERS"
cp -r "$REPO/mlp" "$REPO/mlp_batched"
sed -i 's/name: "mlp"/name: "mlp_batched"/' "$REPO/mlp_batched/config.pbtxt"
echo 'dynamic_batching { }' >>"$REPO/mlp_batched/config.pbtxt"

port=$(free_port)
"${ON_SERVER_CPUS[@]}" "$MMSERVE" --model-repository "$REPO" --http-port "$port" --grpc-port 0 --metrics-port 0 \
  --http-threads 1 --execution-slots 1 ${BENCH_SERVER_FLAGS:-} >"$WORK/server.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
wait_ready server "http://127.0.0.1:$port" "$SERVER" 60

rps() {  # rps MODEL SECONDS
  "${ON_CLIENT_CPUS[@]}" wrk -t2 -c64 -d"${2}s" -s bench/mlp_binary.lua \
    "http://127.0.0.1:$port/v2/models/$1/infer" >"$WORK/wrk.txt" 2>&1
  grep -q "Non-2xx" "$WORK/wrk.txt" && die "errors: $(cat "$WORK/wrk.txt")"
  sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$WORK/wrk.txt"
}
echo "== warm-up"
rps mlp 1 >/dev/null
rps mlp_batched 1 >/dev/null
echo "== measuring (${SECONDS_PER_POINT} s per point)"
unbatched=$(rps mlp "$SECONDS_PER_POINT")
batched=$(rps mlp_batched "$SECONDS_PER_POINT")
kill -TERM "$SERVER"
wait "$SERVER" || true
line=$(grep -o "model 'mlp_batched': [0-9]* requests in [0-9]* executions" "$WORK/server.log" | tail -1)
[[ -n $line ]] || die "no batch count in the server log"
mean=$(python3 -c 'import re,sys; r,e=map(int,re.findall(r"(\d+) (?:requests|executions)",sys.argv[1])); print(f"{r/e:.2f}")' "$line")
lo=$(python3 -c "import math; print(max(1, math.floor($mean)))")
hi=$(python3 -c "import math; print(max(1, math.ceil($mean)))")
raw_rows() {  # raw_rows BATCH -> rows/s
  "${ON_SERVER_CPUS[@]}" "$BUILD_DIR/bench/bench_ort_raw" --seconds 5 --batch "$1" \
    "$REPO/mlp/1/model.onnx" | sed -n "s/.* rps=\([0-9.]*\).*/\1/p" |
    python3 -c "import sys; print(float(sys.stdin.read()) * $1)"
}
raw_lo=$(raw_rows "$lo")
raw_hi=$(raw_rows "$hi")
raw=$(python3 -c "lo,hi,m=$lo,$hi,$mean; a,b=$raw_lo,$raw_hi; print(a if hi==lo else a+(b-a)*(m-lo)/(hi-lo))")
python3 - "$unbatched" "$batched" "$mean" "$raw" "$lo" "$raw_lo" "$hi" "$raw_hi" "$HIDDEN" "$((LAYERS + 1))" "$PIN" <<'PY'
import subprocess, sys
u, b, mean, raw, lo, raw_lo, hi, raw_hi = map(float, sys.argv[1:9])
hidden, layers = sys.argv[9], sys.argv[10]
placement = "server on CPU 0, wrk on CPU 1" if sys.argv[11] == "1" else "unpinned"
git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
ok = lambda c: "**met**" if c else "**missed**"
print(f"""
MLP 16 -> {hidden} x {layers} -> 10, concurrency 64, 1 row per request, --http-threads 1 --execution-slots 1, {placement}, git {git}

| | value | target | |
|---|---:|---|---|
| unbatched, req/s | {u:,.0f} | | |
| dynamic batching, req/s (= rows/s) | {b:,.0f} | | |
| mean batch (requests per execution) | {mean:.2f} | | |
| raw ONNX Runtime rows/s at batch {lo:.0f} / {hi:.0f} | {raw_lo:,.0f} / {raw_hi:,.0f} | | |
| raw ONNX Runtime rows/s at the mean batch (interpolated) | {raw:,.0f} | | |
| batched ÷ unbatched | {b/u:.2f}× | ≥ 3× | {ok(b/u >= 3)} |
| batched ÷ raw at the mean batch | {b/raw:.2f}× | ≥ 0.85× | {ok(b/raw >= 0.85)} |
""")
PY
