#!/usr/bin/env bash
# bench/grpc_vs_http.sh BUILD_DIR: the add model over gRPC (bench_grpc_load, a
# light C++ callback-API client; ghz, a Go client, saturated its own CPU before
# the server) against HTTP with binary tensors (wrk), same server, same run:
# p50 at concurrency 1, throughput at concurrency 32, the ratio gRPC / HTTP
# binary, and the server's CPU per request for each; and the same gRPC load
# against bench_grpc_floor, grpc++ answering a fixed response with mmserve's
# set-up and no inference: the library's own cost per call. Then both
# protocols once more with Triton's perf_analyzer as the one client (what users
# run; it is heavier than wrk and bench_grpc_load, so these points are bound by
# the client, not the server). The native transport (--grpc-transport native:
# HTTP/2 by nghttp2 on the HTTP server's event loop) is a second server,
# measured in the same run with the same client.
# Last, h2load (Debian's nghttp2-client) as the one client of HTTP/1.1 binary,
# native gRPC and REST over h2c: the lightest client for each, the same code.
# Env: BENCH_SECONDS (10), BENCH_PIN (1), BENCH_PERF_ANALYZER (1; 0 skips its points).
set -euo pipefail
PIN=${BENCH_PIN:-1}
source "$(dirname "$0")/lib.sh"
SECONDS_PER_POINT=${BENCH_SECONDS:-10}
bench_init "${1:-build/release}" mmserve bench_grpc_load bench_grpc_floor
start_mmserve mmserve-1x1 --http-threads 1 --grpc-threads 1 --execution-threads 1 \
  --grpc-transport grpcpp
start_mmserve mmserve-native --http-threads 1 --execution-threads 1 --grpc-transport native

"${ON_SERVER_CPUS[@]}" "$BUILD_DIR/bench/bench_grpc_floor" "$WORK/floor.port" &
FLOOR_PID=$!
PIDS+=("$FLOOR_PID")
for _ in $(seq 100); do [[ -s $WORK/floor.port ]] && break; sleep 0.1; done
[[ -s $WORK/floor.port ]] || die "bench_grpc_floor did not start"
FLOOR_ADDR=127.0.0.1:$(cat "$WORK/floor.port")

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

grpc_point() {  # grpc_point CONCURRENCY SECONDS [ADDRESS] -> "p50_us rps errors"
  local out
  out=$("${ON_CLIENT_CPUS[@]}" "$BUILD_DIR/bench/bench_grpc_load" "${3:-${GRPC_ADDR[mmserve-1x1]}}" \
    "$WORK/add_sub.bin" "$1" "$1" "$2")
  read -r p50 _p99 rps errors <<<"$out"
  echo "$p50 $rps $errors"
}

# measure NAME COMMAND...: runs a point, prints its figures and the server's
# CPU µs per request.
measure() {
  local pid=${MEASURED_PID:-${SERVER_PIDS[mmserve-1x1]}} t0 t1 out
  t0=$(cpu_ticks "$pid")
  out=$("$@")
  t1=$(cpu_ticks "$pid")
  read -r p50 rps errors <<<"$out"
  local dur=$SECONDS_PER_POINT
  python3 -c "print($p50, $rps, $errors, round(($t1 - $t0) / $TICKS_PER_SECOND * 1e6 / max($rps * $dur, 1), 1))"
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

PA=${PERF_ANALYZER:-$HOME/.cache/mmserve/perf_analyzer-2.41.0/perf_analyzer}
[[ -x $PA ]] || die "perf_analyzer not found at $PA (scripts/install-deps.sh fetches it)"
pa_point() {  # pa_point http|grpc CONCURRENCY REQUESTS -> "p50_us rps errors"
  local url=${URL[mmserve-1x1]#http://}
  [[ $1 == grpc ]] && url=${GRPC_ADDR[mmserve-1x1]}
  LD_LIBRARY_PATH=$(dirname "$PA") "${ON_CLIENT_CPUS[@]}" "$PA" -m add_sub -i "$1" -u "$url" \
    --concurrency-range "$2" --measurement-mode count_windows --measurement-request-count "$3" \
    --stability-percentage 1000 --max-trials 3 >"$WORK/pa.txt" 2>&1 || die "perf_analyzer: $(cat "$WORK/pa.txt")"
  python3 - "$WORK/pa.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
p50 = float(re.search(r"p50 latency: (\d+) usec", t).group(1))
rps = float(re.search(r"Throughput: ([\d.]+) infer/sec", t).group(1))
print(f"{p50:.0f} {rps:.0f} 0")
PY
}

# The same request for h2load: the binary REST body (as add_sub_binary.lua
# sends it) and the gRPC message framed, with the bytes of their answers,
# which each point checks per request (h2load counts HTTP statuses only;
# gRPC's status is in the trailers, and an error answer carries no message).
"$ROOT/.venv/bin/python" - "$WORK" "${URL[mmserve-native]}" "${GRPC_ADDR[mmserve-native]}" <<'PY'
import json, sys
import numpy as np
import requests
import tritonclient.grpc as grpcclient
work, url, grpc_addr = sys.argv[1:]
head = json.dumps({"inputs": [
    {"name": "INPUT0", "shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": 16}},
    {"name": "INPUT1", "shape": [4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}],
    "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}},
                {"name": "OUTPUT1", "parameters": {"binary_data": True}}]},
    separators=(",", ":")).encode()
body = head + np.array([1, 2, 3, 4], np.float32).tobytes() + \
    np.array([10, 20, 30, 40], np.float32).tobytes()
open(f"{work}/binary.body", "wb").write(body)
r = requests.post(f"{url}/v2/models/add_sub/infer", data=body,
                  headers={"Inference-Header-Content-Length": str(len(head))}, timeout=30)
assert r.status_code == 200, r.text
message = open(f"{work}/add_sub.bin", "rb").read()
open(f"{work}/add_sub.grpc", "wb").write(b"\0" + len(message).to_bytes(4, "big") + message)
client = grpcclient.InferenceServerClient(grpc_addr)
inputs = [grpcclient.InferInput(n, [4], "FP32") for n in ("INPUT0", "INPUT1")]
inputs[0].set_data_from_numpy(np.array([1, 2, 3, 4], np.float32))
inputs[1].set_data_from_numpy(np.array([10, 20, 30, 40], np.float32))
outputs = [grpcclient.InferRequestedOutput(n) for n in ("OUTPUT0", "OUTPUT1")]
reply = client.infer("add_sub", inputs, outputs=outputs).get_response()
with open(f"{work}/h2load.env", "w") as f:
    f.write(f"BIN_HEAD={len(head)} BIN_REPLY={len(r.content)} "
            f"GRPC_REPLY={5 + len(reply.SerializeToString())}\n")
PY
read -r BIN_HEAD BIN_REPLY GRPC_REPLY <<<"$(sed 's/[A-Z_]*=//g' "$WORK/h2load.env")"
H2_MODEL=add_sub H2_BIN_BODY=$WORK/binary.body H2_GRPC_BODY=$WORK/add_sub.grpc

# The 4 MiB point: one FP32 [1,3,512,683] image through image_cnn, as the
# binary REST body and as a framed ModelInferRequest (raw_input_contents),
# with their answers' sizes.
"$ROOT/.venv/bin/python" - "$WORK" "${URL[mmserve-native]}" "${GRPC_ADDR[mmserve-native]}" <<'PY'
import json, sys
import numpy as np
import requests
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2 as pb
work, url, grpc_addr = sys.argv[1:]
shape = [1, 3, 512, 683]
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
head = json.dumps({"inputs": [{"name": "image", "shape": shape, "datatype": "FP32",
                               "parameters": {"binary_data_size": x.nbytes}}],
                   "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]},
                  separators=(",", ":")).encode()
open(f"{work}/image.body", "wb").write(head + x.tobytes())
r = requests.post(f"{url}/v2/models/image_cnn/infer", data=head + x.tobytes(),
                  headers={"Inference-Header-Content-Length": str(len(head))}, timeout=60)
assert r.status_code == 200, r.text
m = pb.ModelInferRequest(model_name="image_cnn")
t = m.inputs.add(name="image", datatype="FP32")
t.shape.extend(shape)
m.raw_input_contents.append(x.tobytes())
message = m.SerializeToString()
open(f"{work}/image.grpc", "wb").write(b"\0" + len(message).to_bytes(4, "big") + message)
client = grpcclient.InferenceServerClient(grpc_addr)
i = grpcclient.InferInput("image", shape, "FP32")
i.set_data_from_numpy(x)
reply = client.infer("image_cnn", [i]).get_response()
with open(f"{work}/image.env", "w") as f:
    f.write(f"{len(head)} {len(r.content)} {5 + len(reply.SerializeToString())}\n")
PY
read -r IMG_HEAD IMG_BIN_REPLY IMG_GRPC_REPLY <"$WORK/image.env"

h2load_point() {  # h2load_point http1|grpc|h2c CONCURRENCY SECONDS -> "p50_us rps errors"
  local mode=$1 want args url
  # H2_MODEL, H2_BIN_BODY and H2_GRPC_BODY (with BIN_HEAD, BIN_REPLY and
  # GRPC_REPLY) say which request: add_sub's, or the 4 MiB image's.
  case $mode in
    http1 | h2c)
      want=$BIN_REPLY url=${URL[mmserve-native]}/v2/models/$H2_MODEL/infer
      args=(-d "$H2_BIN_BODY" -H "inference-header-content-length: $BIN_HEAD")
      [[ $mode == http1 ]] && args+=(--h1) ;;
    grpc)
      want=$GRPC_REPLY url=http://${GRPC_ADDR[mmserve-native]}/inference.GRPCInferenceService/ModelInfer
      args=(-d "$H2_GRPC_BODY" -H "content-type: application/grpc" -H "te: trailers") ;;
  esac
  local log=$WORK/h2load-$H2_MODEL-$mode-c$2
  "${ON_CLIENT_CPUS[@]}" h2load -t1 -c"$2" -m1 -D "$3" --log-file="$log.log" "${args[@]}" "$url" \
    >"$log.txt" 2>&1 || die "h2load $mode: $(tail -5 "$log.txt")"
  python3 - "$log" "$want" "$2" <<'PY'
import re, statistics, sys
log, want, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = open(log + ".txt").read()
rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", t).group(1))
done, ok, failed, errored, timeout = map(int, re.search(
    r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout", t).groups())
data = int(re.search(r"\((\d+)\) data", t).group(1))
two = int(re.search(r"status codes: (\d+) 2xx", t).group(1))
# (Answers still arriving when the time is up count their bytes, not themselves.)
short = not want * done <= data <= want * (done + clients)
errors = failed + errored + timeout + (done - two) + short
if errors:
    print(f"h2load {log}: {failed} failed, {errored} errored, {timeout} timed out, "
          f"{done - two} not 2xx, {data} data bytes for {done} answers of {want}",
          file=sys.stderr)
times = [int(line.split("\t")[2]) for line in open(log + ".log") if line.strip()]
print(f"{statistics.median(times):.0f} {rps:.0f} {errors}")
PY
}

echo "== warm-up"
grpc_point 4 1 >/dev/null
wrk_point 1 4 1 >/dev/null
echo "== measuring (${SECONDS_PER_POINT} s per point)"
read -r g1_p50 g1_rps g1_err g1_cpu <<<"$(measure grpc_point 1 "$SECONDS_PER_POINT")"
read -r h1_p50 h1_rps h1_err h1_cpu <<<"$(measure wrk_point 1 1 "$SECONDS_PER_POINT")"
read -r g32_p50 g32_rps g32_err g32_cpu <<<"$(measure grpc_point 32 "$SECONDS_PER_POINT")"
read -r h32_p50 h32_rps h32_err h32_cpu <<<"$(measure wrk_point 2 32 "$SECONDS_PER_POINT")"
read -r n1_p50 n1_rps n1_err n1_cpu <<<"$(MEASURED_PID=${SERVER_PIDS[mmserve-native]} measure \
  grpc_point 1 "$SECONDS_PER_POINT" "${GRPC_ADDR[mmserve-native]}")"
read -r n32_p50 n32_rps n32_err n32_cpu <<<"$(MEASURED_PID=${SERVER_PIDS[mmserve-native]} measure \
  grpc_point 32 "$SECONDS_PER_POINT" "${GRPC_ADDR[mmserve-native]}")"
read -r f1_p50 f1_rps f1_err f1_cpu <<<"$(MEASURED_PID=$FLOOR_PID measure grpc_point 1 "$SECONDS_PER_POINT" "$FLOOR_ADDR")"
read -r f32_p50 f32_rps f32_err f32_cpu <<<"$(MEASURED_PID=$FLOOR_PID measure grpc_point 32 "$SECONDS_PER_POINT" "$FLOOR_ADDR")"
# One light client for every protocol: h2load (nghttp2's, one C thread,
# epoll), so that the client costs about the same whichever the server
# speaks, against mmserve-native: HTTP/1.1 with binary tensors (--h1), the
# native gRPC transport, and the same binary REST request over h2c.
if command -v h2load >/dev/null; then
  echo "== h2load: HTTP/1.1, native gRPC and h2c on mmserve-native"
  for c in 1 32; do
    for mode in http1 grpc h2c; do
      read -r p50 rps err cpu <<<"$(MEASURED_PID=${SERVER_PIDS[mmserve-native]} measure \
        h2load_point "$mode" "$c" "$SECONDS_PER_POINT")"
      (( err == 0 )) || die "h2load $mode c$c: $err errors (see $WORK/h2load-$mode-c$c.txt)"
      declare "hl_${mode}_${c}=$p50 $rps $cpu"
    done
  done
  echo "== h2load: 4 MiB, HTTP/1.1 binary and native gRPC on mmserve-native"
  for mode in http1 grpc; do
    read -r p50 rps err cpu <<<"$(H2_MODEL=image_cnn H2_BIN_BODY=$WORK/image.body \
      H2_GRPC_BODY=$WORK/image.grpc BIN_HEAD=$IMG_HEAD BIN_REPLY=$IMG_BIN_REPLY \
      GRPC_REPLY=$IMG_GRPC_REPLY MEASURED_PID=${SERVER_PIDS[mmserve-native]} \
      measure h2load_point "$mode" 1 "$SECONDS_PER_POINT")"
    (( err == 0 )) || die "h2load 4 MiB $mode: $err errors (see $WORK/h2load-image_cnn-$mode-c1.txt)"
    declare "img_${mode}=$p50 $cpu"
  done
else
  echo "(h2load not found: Debian's nghttp2-client; its points are skipped)" >&2
fi
ph1_p50=0 ph1_rps=0 pg1_p50=0 pg1_rps=0 ph32_p50=0 ph32_rps=0 pg32_p50=0 pg32_rps=0
if [[ ${BENCH_PERF_ANALYZER:-1} == 1 ]]; then
  read -r ph1_p50 ph1_rps _ <<<"$(pa_point http 1 5000)"
  read -r pg1_p50 pg1_rps _ <<<"$(pa_point grpc 1 5000)"
  read -r ph32_p50 ph32_rps _ <<<"$(pa_point http 32 20000)"
  read -r pg32_p50 pg32_rps _ <<<"$(pa_point grpc 32 20000)"
fi
(( g1_err + h1_err + g32_err + h32_err + n1_err + n32_err + f1_err + f32_err == 0 )) ||
  die "errors: $g1_err $h1_err $g32_err $h32_err $n1_err $n32_err $f1_err $f32_err"

ratio() { python3 -c "print(f'{$1 / $2:.2f}' if $2 else 'n/a')"; }
cat <<EOF2

add_sub, mmserve --http-threads 1 --grpc-threads 1 --execution-threads 1 (grpc++; native: --http-threads 1), pinned=$PIN, ${SECONDS_PER_POINT} s per point, git $(git rev-parse --short HEAD)

| | p50 µs at c1 | req/s at c32 | server CPU µs/req at c1 / c32 |
|---|---:|---:|---:|
| HTTP binary (wrk) | $h1_p50 | $h32_rps | $h1_cpu / $h32_cpu |
| gRPC (bench_grpc_load) | $g1_p50 | $g32_rps | $g1_cpu / $g32_cpu |
| gRPC ÷ HTTP binary | $(ratio "$g1_p50" "$h1_p50")× | $(ratio "$g32_rps" "$h32_rps")× | |
| gRPC, native transport (bench_grpc_load) | $n1_p50 | $n32_rps | $n1_cpu / $n32_cpu |
| native gRPC ÷ HTTP binary | $(ratio "$n1_p50" "$h1_p50")× | $(ratio "$n32_rps" "$h32_rps")× | |
| grpc++ floor, no inference (bench_grpc_floor) | $f1_p50 | $f32_rps | $f1_cpu / $f32_cpu |
| floor ÷ HTTP binary | $(ratio "$f1_p50" "$h1_p50")× | $(ratio "$f32_rps" "$h32_rps")× | |
| HTTP binary (perf_analyzer) | $ph1_p50 | $ph32_rps | (not measured) |
| gRPC (perf_analyzer) | $pg1_p50 | $pg32_rps | (not measured) |
| gRPC ÷ HTTP binary (perf_analyzer) | $(ratio "$pg1_p50" "$ph1_p50")× | $(ratio "$pg32_rps" "$ph32_rps")× | |
EOF2
if [[ -n ${hl_http1_1:-} ]]; then
  read -r a1 _ ac1 <<<"$hl_http1_1"; read -r _ a32 ac32 <<<"$hl_http1_32"
  read -r b1 _ bc1 <<<"$hl_grpc_1"; read -r _ b32 bc32 <<<"$hl_grpc_32"
  read -r c1 _ cc1 <<<"$hl_h2c_1"; read -r _ c32 cc32 <<<"$hl_h2c_32"
  cat <<EOF3

h2load as the one client, mmserve-native (--http-threads 1 --execution-threads 1), -m1 (one request at a time per connection)

| | p50 µs at c1 | req/s at c32 | server CPU µs/req at c1 / c32 |
|---|---:|---:|---:|
| HTTP/1.1 binary (h2load --h1) | $a1 | $a32 | $ac1 / $ac32 |
| native gRPC (h2load) | $b1 | $b32 | $bc1 / $bc32 |
| native gRPC ÷ HTTP/1.1 binary | $(ratio "$b1" "$a1")× | $(ratio "$b32" "$a32")× | $(ratio "$bc32" "$ac32")× at c32 |
| REST binary over h2c (h2load) | $c1 | $c32 | $cc1 / $cc32 |
| h2c ÷ HTTP/1.1 binary | $(ratio "$c1" "$a1")× | $(ratio "$c32" "$a32")× | $(ratio "$cc32" "$ac32")× at c32 |
EOF3
  read -r i1 ic1 <<<"$img_http1"; read -r i2 ic2 <<<"$img_grpc"
  cat <<EOF4

4 MiB (image_cnn, FP32 [1,3,512,683]), h2load at c1, mmserve-native

| | p50 µs | server CPU µs/req |
|---|---:|---:|
| HTTP/1.1 binary (h2load --h1) | $i1 | $ic1 |
| native gRPC, raw_input_contents (h2load) | $i2 | $ic2 |
| native gRPC ÷ HTTP/1.1 binary | $(ratio "$i2" "$i1")× | $(ratio "$ic2" "$ic1")× |
EOF4
fi
