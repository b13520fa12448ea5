#!/usr/bin/env bash
# bench/send_cost.sh BUILD_DIR [CASE]: why a response's send costs mmserve
# more kernel time than it costs nginx, measured in one run (issue 27).
#
# Both send the same bytes to the same client over loopback with one system
# call per response, so the kernel's TCP work per response is the same. What
# differs is the client: nginx keeps wrk busy, so wrk seldom sleeps, while a
# slower server leaves wrk waiting in epoll_wait, and every response that
# finds it asleep pays for waking it (a wakeup of a thread on another CPU:
# on a VM, an inter-processor interrupt through the hypervisor), in the
# sender's system call.
#
# nginx (one worker, a static body of the answer's size), beast-floor
# (bench_http_floor: Beast and Asio answering the same body, mmserve's
# reading pattern, nothing else) and mmserve --http-threads 1
# --execution-threads 1 run pinned to CPU 0, wrk -t2 -c32 on the others,
# interleaved for BENCH_ROUNDS rounds. For each run:
#   - req/s, and the server's CPU µs per request (/proc ticks);
#   - the client's sleeps per request: wrk's voluntary context switches
#     (getrusage of the finished wrk);
#   - with perf (if it records here), µs per request in the server's kernel
#     TCP send (tcp_sendmsg, under sendmsg or writev), and, within it, in
#     waking the reader (sock_def_readable: the epoll callback and the
#     wakeup; with cpu-clock sampling a wakeup's interrupts-off time is
#     charged here too).
#
# Environment: BENCH_ROUNDS=3, BENCH_SECONDS=6 (per run), BENCH_PIN=1,
# BENCH_PERF=1 (0: no perf; its call graphs cost the servers CPU),
# BENCH_KEEP=0, BENCH_OUT=FILE (also write the report there).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CASE=${2:-add_sub_binary}
ROUNDS=${BENCH_ROUNDS:-3}
SECONDS_PER_RUN=${BENCH_SECONDS:-6}
PIN=${BENCH_PIN:-1}
bench_init "${1:-build/release}" mmserve bench_http_floor
[[ ${#ON_SERVER_CPUS[@]} -gt 0 ]] || die "needs pinning (BENCH_PIN=1 and 2 or more cores)"

PERF=0
if [[ ${BENCH_PERF:-1} == 0 ]]; then
  :
elif command -v perf >/dev/null && perf record -e cpu-clock -o "$WORK/probe.data" true >/dev/null 2>&1; then
  PERF=1
else
  echo "perf cannot record here: the kernel's shares are left out" >&2
fi

start_mmserve mmserve-1x1 --http-threads 1 --execution-threads 1
run_wrk mmserve-1x1 "$CASE" 1 1  # the answer's size, for nginx
((R_VALID)) && [[ ${R[body_bytes]} -gt 0 ]] || die "mmserve did not answer $CASE with 200"
BYTES=${R[body_bytes]}
start_nginx "$CASE=$BYTES"
"${ON_SERVER_CPUS[@]}" "$BUILD_DIR/bench/bench_http_floor" "$WORK/floor.port" "$BYTES" \
  >"$WORK/floor.log" 2>&1 &
PIDS+=($!)
SERVER_PIDS[beast-floor]=$!
for ((i = 0; i < 100; i++)); do [[ -s $WORK/floor.port ]] && break; sleep 0.1; done
[[ -s $WORK/floor.port ]] || die "bench_http_floor did not start: $(cat "$WORK/floor.log")"
URL[beast-floor]=http://127.0.0.1:$(cat "$WORK/floor.port")
SERVERS=(nginx beast-floor mmserve-1x1)
for s in "${SERVERS[@]}"; do run_wrk "$s" "$CASE" 32 1 "$BYTES"; done  # warm-up

# wrk under a parent that prints its rusage once it has finished.
WRK_RUSAGE='import resource, subprocess, sys
subprocess.run(sys.argv[1:])
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"BENCH_RUSAGE voluntary={r.ru_nvcsw} involuntary={r.ru_nivcsw}", flush=True)'

# perf_us DATA FUNCTION CPU_US: FUNCTION's inclusive share of
# the profile times the server's CPU µs per request.
perf_us() {
  perf report -i "$1" --children --sort sym --stdio -g none 2>/dev/null |
    awk -v f="$2" -v cpu="$3" '$NF == f && !found { gsub("%", "", $1); share = $1; found = 1 }
      END { printf "%.2f", share / 100 * cpu }'  # (reads to the end: no SIGPIPE for perf)
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"
for ((round = 1; round <= ROUNDS; round++)); do
  for s in "${SERVERS[@]}"; do
    pids=${SERVER_PIDS[$s]}
    log=$WORK/wrk-$s-$round.txt
    if ((PERF)); then
      perf record -e cpu-clock -g -p "$(tr ' ' ',' <<<"${pids% }")" -o "$WORK/perf-$s-$round.data" \
        -- sleep "$((SECONDS_PER_RUN - 2))" >/dev/null 2>&1 &
      perf_pid=$!
    fi
    t0=$(cpu_ticks $pids)
    "${ON_CLIENT_CPUS[@]}" python3 -c "$WRK_RUSAGE" wrk -t2 -c32 -d"${SECONDS_PER_RUN}s" \
      -s "bench/$CASE.lua" "$(target_url "$s" "$CASE")" -- "$BYTES" >"$log" 2>&1 || true
    t1=$(cpu_ticks $pids)
    ((PERF)) && wait "$perf_pid"
    grep -q 'bad_status=0 bad_size=0 errors=0' "$log" || die "$s: wrong answers: $(grep BENCH "$log")"
    n=$(wrk_requests "$log")
    sleeps=$(sed -n 's/^BENCH_RUSAGE voluntary=\([0-9]*\).*/\1/p' "$log")
    cpu=$(awk "BEGIN{printf \"%.2f\", $((t1 - t0)) / $TICKS_PER_SECOND * 1e6 / $n}")
    send=- wake=-
    if ((PERF)); then
      send=$(perf_us "$WORK/perf-$s-$round.data" tcp_sendmsg "$cpu")
      wake=$(perf_us "$WORK/perf-$s-$round.data" sock_def_readable "$cpu")
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$s" \
      "$(awk "BEGIN{printf \"%.0f\", $n / $SECONDS_PER_RUN}")" "$cpu" \
      "$(awk "BEGIN{printf \"%.3f\", $sleeps / $n}")" "$send" "$wake" >>"$RESULTS"
    printf '  round %s %-12s %8s req/s  %5s us CPU/req  client sleeps %s/req  send %s us  wake %s us\n' \
      $(tail -1 "$RESULTS" | tr '\t' ' ')
  done
done

REPORT=$WORK/report.md
{
  echo "## The send's cost: mmserve against nginx ($CASE, c32)"
  echo
  echo "$(date -u +%Y-%m-%d), $CORES cores, git $(git rev-parse --short HEAD 2>/dev/null || echo none)," \
    "$ROUNDS interleaved rounds of ${SECONDS_PER_RUN} s, servers on CPU 0, wrk -t2 -c32 on the others;" \
    "medians of the rounds."
  echo
  echo "| server | req/s | CPU µs per request | client sleeps per request | TCP send µs per request | of which waking the reader |"
  echo "|---|---:|---:|---:|---:|---:|"
  for s in "${SERVERS[@]}"; do
    row="| $s"
    for col in 3 4 5 6 7; do
      vals=$(awk -F'\t' -v s="$s" -v c="$col" '$2 == s { print $c }' "$RESULTS" | tr '\n' ' ')
      if [[ $vals == *-* ]]; then row+=" | -"; else row+=" | $(median "$vals")"; fi
    done
    echo "$row |"
  done
} >"$REPORT"
echo
cat "$REPORT"
[[ -n ${BENCH_OUT:-} ]] && cp "$REPORT" "$BENCH_OUT"
exit 0
