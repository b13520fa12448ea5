#!/usr/bin/env bash
# bench/grpc_vs_http.sh BUILD_DIR: the add model over gRPC (ghz) against HTTP
# with binary tensors (wrk), same server, same run: p50 at concurrency 1 and
# throughput at concurrency 32, and the ratio gRPC / HTTP binary.
# ghz comes from the Go module proxy into build/tools on first use.
# Env: BENCH_SECONDS (10), BENCH_PIN (1), GHZ_VERSION (v0.120.0).
set -euo pipefail
PIN=${BENCH_PIN:-1}
source "$(dirname "$0")/lib.sh"
SECONDS_PER_POINT=${BENCH_SECONDS:-10}
GHZ=$ROOT/build/tools/ghz
if [[ ! -x $GHZ ]]; then
  command -v go >/dev/null || die "go is needed to install ghz"
  echo "== installing ghz ${GHZ_VERSION:-v0.120.0} into build/tools"
  GOBIN=$ROOT/build/tools go install "github.com/bojand/ghz/cmd/ghz@${GHZ_VERSION:-v0.120.0}"
fi
bench_init "${1:-build/release}" mmserve
start_mmserve mmserve-1x1 --http-threads 1 --execution-threads 1

# The same add_sub request as bench/add_sub_binary.lua, as a serialized
# ModelInferRequest with raw_input_contents.
"$ROOT/.venv/bin/python" - "$WORK/add_sub.bin" <<'PY'
import sys
import numpy as np
from tritonclient.grpc import service_pb2 as pb
r = pb.ModelInferRequest(model_name="add_sub")
for name in ("INPUT0", "INPUT1"):
    r.inputs.add(name=name, datatype="FP32", shape=[4])
r.raw_input_contents.extend([np.array([1, 2, 3, 4], np.float32).tobytes(),
                             np.array([10, 20, 30, 40], np.float32).tobytes()])
for name in ("OUTPUT0", "OUTPUT1"):
    r.outputs.add(name=name)
open(sys.argv[1], "wb").write(r.SerializeToString())
PY

ghz_point() {  # ghz_point CONCURRENCY SECONDS -> "p50_us rps errors"
  "${ON_CLIENT_CPUS[@]}" "$GHZ" --insecure --proto "$ROOT/proto/grpc_service.proto" \
    -i "$ROOT/proto" --call inference.GRPCInferenceService.ModelInfer \
    --binary-file "$WORK/add_sub.bin" -c "$1" --connections "$1" -z "${2}s" -O json \
    "${GRPC_ADDR[mmserve-1x1]}" >"$WORK/ghz.json" 2>/dev/null || true
  cp "$WORK/ghz.json" "$WORK/ghz-$1.json"
  python3 - "$WORK/ghz.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p50 = next(x["latency"] for x in d["latencyDistribution"] if x["percentage"] == 50) / 1000
# ghz closes its connections when the duration ends; the calls then in
# flight fail on the client with "use of closed network connection". Those
# are the load generator's, not the server's: every other error counts.
own = sum(n for e, n in (d.get("errorDistribution") or {}).items()
          if "use of closed network connection" in e)
ok = d.get("statusCodeDistribution", {}).get("OK", 0)
print(f"{p50:.0f} {d['rps']:.0f} {d['count'] - ok - own}")
PY
}

wrk_point() {  # wrk_point THREADS CONNECTIONS SECONDS -> "p50_us rps errors"
  "${ON_CLIENT_CPUS[@]}" wrk -t"$1" -c"$2" -d"${3}s" --latency -s bench/add_sub_binary.lua \
    "${URL[mmserve-1x1]}/v2/models/add_sub/infer" >"$WORK/wrk.txt" 2>&1
  python3 - "$WORK/wrk.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def us(v, unit): return float(v) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
m = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)", t, re.M)
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
errors = int(bad.group(1)) if bad else 0
print(f"{us(*m.groups()):.0f} {rps:.0f} {errors}")
PY
}

echo "== warm-up"
ghz_point 4 1 >/dev/null
wrk_point 1 4 1 >/dev/null
echo "== measuring (${SECONDS_PER_POINT} s per point)"
read -r g1_p50 g1_rps g1_err <<<"$(ghz_point 1 "$SECONDS_PER_POINT")"
read -r h1_p50 h1_rps h1_err <<<"$(wrk_point 1 1 "$SECONDS_PER_POINT")"
read -r g32_p50 g32_rps g32_err <<<"$(ghz_point 32 "$SECONDS_PER_POINT")"
read -r h32_p50 h32_rps h32_err <<<"$(wrk_point 2 32 "$SECONDS_PER_POINT")"
(( g1_err + h1_err + g32_err + h32_err == 0 )) || die "errors: $g1_err $h1_err $g32_err $h32_err"

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
cat <<EOF2

add_sub, mmserve --http-threads 1 --execution-threads 1, pinned=$PIN, ${SECONDS_PER_POINT} s per point, git $(git rev-parse --short HEAD)

| | p50 µs at c1 | req/s at c32 |
|---|---:|---:|
| HTTP binary (wrk) | $h1_p50 | $h32_rps |
| gRPC (ghz) | $g1_p50 | $g32_rps |
| gRPC ÷ HTTP binary | $(ratio "$g1_p50" "$h1_p50")× | $(ratio "$g32_rps" "$h32_rps")× |
EOF2
