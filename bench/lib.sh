# Shared by bench/run.sh and bench/profile.sh (sourced, not run): building,
# free ports, starting mmserve and the nginx baseline, CPU accounting, and
# cleaning up every process started here on exit.
#
# The sourcing script sets, before calling bench_init BUILD_DIR:
#   PIN=0|1   1: servers run on CPU 0, the load generator on the other CPUs

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
NGINX=${NGINX:-/usr/sbin/nginx}
CORES=$(nproc)
TICKS_PER_SECOND=$(getconf CLK_TCK)

die() { echo "bench: $*" >&2; exit 2; }

# bench_init BUILD_DIR [TARGETS...]: checks tools, builds, makes $WORK and
# installs the cleanup trap.
bench_init() {
  BUILD_DIR=$1; shift
  local tool
  for tool in wrk python3 curl taskset "$NGINX"; do
    command -v "$tool" >/dev/null || die "$tool is missing (Debian: wrk nginx-light curl util-linux)"
  done
  if [[ ! -f $BUILD_DIR/build.ninja ]]; then
    echo "== configuring $BUILD_DIR (Release)"
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  echo "== building $* in $BUILD_DIR"
  cmake --build "$BUILD_DIR" -j "$CORES" --target "$@" >/dev/null
  BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD_DIR/CMakeCache.txt")
  [[ $BUILD_TYPE == Release ]] ||
    echo "warning: $BUILD_DIR is a '$BUILD_TYPE' build; figures are meant for Release" >&2
  MMSERVE=$BUILD_DIR/mmserve

  WORK=$(mktemp -d "${TMPDIR:-/tmp}/mmserve-bench.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM

  # Prefixes that pin servers and load generator; simple commands, so that
  # $! of a server started with & is the server itself.
  ON_SERVER_CPUS=() ON_CLIENT_CPUS=()
  if [[ ${PIN:-0} == 1 && $CORES -ge 2 ]]; then
    ON_SERVER_CPUS=(taskset -c 0) ON_CLIENT_CPUS=(taskset -c "1-$((CORES - 1))")
  fi
  declare -gA URL=() GRPC_ADDR=() SERVER_PIDS=()
}

bench_cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then echo "work folder kept: $WORK" >&2; else rm -rf "$WORK"; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# utime+stime of every thread of the given processes, in clock ticks.
cpu_ticks() {
  local total=0 pid stat f
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    stat=${stat##*) }  # the fields after "(command)", from field 3 on
    read -r -a f <<<"$stat"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# Voluntary + involuntary context switches of every thread of the processes.
context_switches() {
  local total=0 pid file n
  for pid in "$@"; do
    for file in /proc/"$pid"/task/*/status; do
      while read -r key n; do
        [[ $key == *ctxt_switches: ]] && total=$((total + n))
      done <"$file" 2>/dev/null || true
    done
  done
  echo "$total"
}

case_model() {
  case $1 in
    add_sub_*) echo add_sub ;;
    mlp_*) echo mlp_classifier ;;
    image_*) echo image_cnn ;;
    *) die "unknown case $1" ;;
  esac
}

wait_ready() {  # wait_ready NAME URL PID SECONDS
  local i
  for ((i = 0; i < $4 * 10; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$2/v2/health/ready") == 200 ]] && return 0
    kill -0 "$3" 2>/dev/null || { cat "$WORK/$1.log" >&2; die "$1 exited while starting"; }
    sleep 0.1
  done
  die "$1 was not ready within $4 s (log: $WORK/$1.log)"
}

# start_mmserve NAME [flags...]: mmserve on examples/models (or $BENCH_REPO)
# and a free port.
# MMSERVE_WRAPPER (an array, e.g. valgrind ...) runs it under a tool.
start_mmserve() {
  local name=$1; shift
  local port; port=$(free_port)
  # Metrics on a free port too (a build from before metrics has no such flag).
  local metrics=()
  # (grep reads the whole help: with -q it may stop early, and under pipefail
  # the SIGPIPE of mmserve would read as "no such flag".)
  "$MMSERVE" --help 2>/dev/null | grep -- --metrics-port >/dev/null && metrics=(--metrics-port 0)
  "${ON_SERVER_CPUS[@]}" "${MMSERVE_WRAPPER[@]}" "$MMSERVE" --model-repository "${BENCH_REPO:-examples/models}" \
    --http-port "$port" --grpc-port 0 "${metrics[@]}" "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  SERVER_PIDS[$name]=$pid
  URL[$name]=http://127.0.0.1:$port
  wait_ready "$name" "${URL[$name]}" "$pid" "${READY_SECONDS:-60}"
  GRPC_ADDR[$name]=127.0.0.1:$(sed -n 's/.*gRPC server listening on [^:]*:\([0-9]*\).*/\1/p' \
    "$WORK/$name.log" | head -1)
}

# wrk_requests LOG: the request count of a finished wrk run's BENCH_RESULT line.
wrk_requests() { sed -n 's/^BENCH_RESULT requests=\([0-9]*\).*/\1/p' "$1"; }

stop_server() {  # stop_server NAME: SIGTERM (graceful), then wait for it
  local pid=${SERVER_PIDS[$1]}
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# A static body of exactly N bytes for nginx to return (no quotes inside).
static_body() {
  python3 -c '
import sys
n = int(sys.argv[1]); head = "{\"model_name\":\"static\",\"pad\":\""; tail = "\"}"
print(head + "x" * (n - len(head) - len(tail)) + tail if n >= len(head) + len(tail) else "x" * n, end="")' "$1"
}

# start_nginx NAME=BYTES...: one nginx worker answering POST /NAME with a
# static JSON body of BYTES bytes, keep-alive on.
start_nginx() {
  local port; port=$(free_port)
  local dir=$WORK/nginx spec
  mkdir -p "$dir/temp"
  {
    echo "worker_processes 1;"
    echo "daemon off;"
    echo "pid $dir/nginx.pid;"
    echo "error_log $dir/error.log warn;"
    echo "events { worker_connections 1024; }"
    echo "http {"
    echo "  access_log off;"
    echo "  keepalive_timeout 300s;"
    echo "  keepalive_requests 100000000;  # mmserve has no per-connection request cap"
    echo "  tcp_nodelay on;"
    echo "  client_body_buffer_size 64k;"
    for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $dir/temp/$t;"; done
    echo "  server {"
    echo "    listen 127.0.0.1:$port;"
    for spec in "$@"; do
      echo "    location = /${spec%%=*} {"
      echo "      default_type application/json;"
      echo "      return 200 '$(static_body "${spec#*=}")';"
      echo "    }"
    done
    echo "  }"
    echo "}"
  } >"$dir/nginx.conf"
  "${ON_SERVER_CPUS[@]}" "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" \
    >"$WORK/nginx.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  URL[nginx]=http://127.0.0.1:$port
  local first=${1%%=*} i
  for ((i = 0; i < 100; i++)); do
    if [[ $(curl -s -o /dev/null -w '%{http_code}' -X POST "${URL[nginx]}/$first") == 200 ]]; then
      SERVER_PIDS[nginx]="$pid $(pgrep -P "$pid" | tr '\n' ' ')"  # master and worker
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$WORK/nginx.log" "$dir/error.log" >&2; die "nginx exited"; }
    sleep 0.1
  done
  die "nginx did not answer within 10 s"
}

target_url() {  # target_url SERVER CASE
  if [[ $1 == nginx ]]; then
    echo "${URL[nginx]}/$2"
  else
    echo "${URL[$1]}/v2/models/$(case_model "$2")/infer"
  fi
}

# run_wrk SERVER CASE CONCURRENCY SECONDS [EXPECTED_BYTES]: one wrk run with
# bench/CASE.lua (WRK_TIMEOUT: wrk's per-request timeout, default 2s), output in $WORK/wrk-SERVER-CASE-cN.txt. Sets R (the
# BENCH_RESULT figures) plus R[cpu_ticks] and R[ctx_switches] (the server's
# CPU and context switches during the run) and R_VALID (0 or 1).
run_wrk() {
  local server=$1 case=$2 conc=$3 seconds=$4 bytes=${5:-}
  local threads=1
  if ((conc > 1)); then threads=2; fi
  local log=$WORK/wrk-$server-$case-c$conc.txt
  local extra=()
  [[ -n $bytes ]] && extra=(-- "$bytes")
  local t0 s0 t1 s1
  t0=$(cpu_ticks ${SERVER_PIDS[$server]}); s0=$(context_switches ${SERVER_PIDS[$server]})
  "${ON_CLIENT_CPUS[@]}" wrk -t"$threads" -c"$conc" -d"${seconds}s" --latency \
    --timeout "${WRK_TIMEOUT:-2s}" \
    -s "bench/$case.lua" "$(target_url "$server" "$case")" "${extra[@]}" >"$log" 2>&1 || true
  t1=$(cpu_ticks ${SERVER_PIDS[$server]}); s1=$(context_switches ${SERVER_PIDS[$server]})
  local line; line=$(grep '^BENCH_RESULT' "$log" || true)
  [[ -n $line ]] || { cat "$log" >&2; die "wrk gave no result for $server $case c$conc"; }
  declare -gA R=()
  local kv
  for kv in ${line#BENCH_RESULT }; do R[${kv%%=*}]=${kv#*=}; done
  R[cpu_ticks]=$((t1 - t0))
  R[ctx_switches]=$((s1 - s0))
  R_VALID=1
  if ((R[bad_status] + R[bad_size] + R[errors] > 0 || R[responses] == 0)); then
    R_VALID=0
    echo "INVALID: $server $case c$conc: ${R[bad_status]} non-200, ${R[bad_size]} wrong size," \
      "${R[errors]} socket errors; $(grep '^BENCH_FIRST_BAD' "$log" | head -1)" >&2
  fi
}

# callgrind_per_request NAME [flags...]: mmserve ($MMSERVE on $BENCH_REPO)
# under callgrind, one HTTP and one execution thread, instrumentation on only
# while wrk runs add_sub_binary at concurrency 1 for BENCH_CALLGRIND_SECONDS
# (6) after a 2 s warm-up (one-time costs stay out). Sets CG_INSTR to the
# user-space instructions per request, and CG_ERROR to what went wrong (empty
# when every answer was right). Valgrind runs the model ~50x slower, so the
# inline bound is widened by as much: requests take the path they take
# natively. BENCH_AUTHORIZATION, when set, goes with every request.
callgrind_per_request() {
  local name=$1; shift
  MMSERVE_WRAPPER=(valgrind --tool=callgrind --instr-atstart=no
    "--callgrind-out-file=$WORK/callgrind.$name")
  READY_SECONDS=300 start_mmserve "cg-$name" --http-threads 1 --execution-threads 1 \
    --inline-execution-max-us 10000 "$@"
  MMSERVE_WRAPPER=()
  local pid=${SERVER_PIDS[cg-$name]} url log n total
  url=$(target_url "cg-$name" add_sub_binary)
  "${ON_CLIENT_CPUS[@]}" wrk -t1 -c1 -d2s -s bench/add_sub_binary.lua "$url" >/dev/null 2>&1
  callgrind_control -i on "$pid" >/dev/null
  log=$WORK/wrk-cg-$name.txt
  "${ON_CLIENT_CPUS[@]}" wrk -t1 -c1 -d"${BENCH_CALLGRIND_SECONDS:-6}s" \
    -s bench/add_sub_binary.lua "$url" >"$log" 2>&1
  callgrind_control -i off "$pid" >/dev/null
  n=$(wrk_requests "$log")
  CG_ERROR=
  grep -q 'bad_status=0 bad_size=0 errors=0' "$log" || CG_ERROR="callgrind $name: $(grep BENCH "$log")"
  stop_server "cg-$name"
  total=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$WORK/callgrind.$name" | tail -1)
  CG_INSTR=$(awk "BEGIN{printf \"%.0f\", $total / $n}")
  echo "  $name: $n requests, $CG_INSTR instructions per request"
}

# ratio A B: A / B to three decimals; median "V1 V2 ...": their median.
ratio() { awk "BEGIN{printf \"%.3f\", $1 / $2}"; }
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR]=$1} END{print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
