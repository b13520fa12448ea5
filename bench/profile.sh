#!/usr/bin/env bash
# bench/profile.sh BUILD_DIR [CASE]: where mmserve's request path spends its
# time, under the same wrk load as bench/run.sh (CASE: add_sub_json, the
# default, add_sub_binary, mlp_json or mlp_binary).
#
#   1. perf (if it works here): a cpu-clock profile with DWARF call graphs of
#      mmserve --http-threads 1 --execution-threads 1 at concurrency 1 and 32,
#      summarized by bench/perf_summary.py: CPU µs per request by request-path
#      stage, by thread, kernel time by system call, self time by library.
#      perf sees the kernel: context switches, futex and epoll wakeups, TCP.
#   2. callgrind: the same server under valgrind at concurrency 1, with
#      instrumentation switched on only while wrk runs (model loading is not
#      counted), summarized by bench/callgrind_summary.py: instructions per
#      request by step, allocations per request, self cost by library.
#      Callgrind counts user-space instructions exactly (it is not disturbed
#      by a noisy machine) but sees no system calls or waiting.
#
# Results go to PROFILE_OUT (default BUILD_DIR/profile): summary.md, the raw
# perf.data/callgrind.out files and perf report/callgrind_annotate listings.
#
# Environment:
#   PROFILE_SECONDS=5          perf recording per concurrency
#   PROFILE_FREQ=999           perf samples per second
#   PROFILE_CALLGRIND_SECONDS=8  wrk run under callgrind (~1,500 req/s there)
#   PROFILE_TOOLS="perf callgrind"
#   BENCH_PIN=1                server on CPU 0, wrk on the others (as run.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CASE=${2:-add_sub_json}
PROFILE_SECONDS=${PROFILE_SECONDS:-5}
PROFILE_FREQ=${PROFILE_FREQ:-999}
CALLGRIND_SECONDS=${PROFILE_CALLGRIND_SECONDS:-8}
TOOLS=${PROFILE_TOOLS:-"perf callgrind"}
PIN=${BENCH_PIN:-1}
THREAD_FLAGS=(--http-threads 1 --execution-threads 1)

GIT_REV="$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD -- src 2>/dev/null || echo +dirty)"
bench_init "${1:-build/release}" mmserve
OUT=${PROFILE_OUT:-$BUILD_DIR/profile}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SUMMARY=$OUT/summary.md
{
  echo "# mmserve request-path profile: $CASE"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $CORES cores," \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')," \
    "git $GIT_REV," \
    "server: mmserve ${THREAD_FLAGS[*]}$([[ ${#ON_SERVER_CPUS[@]} -gt 0 ]] && echo ', pinned to CPU 0, wrk on the others')."
  echo
} >"$SUMMARY"

# wrk_rps LOG: requests per second from a finished wrk run's BENCH_RESULT line.
wrk_rps() { sed -n 's/^BENCH_RESULT.* rps=\([0-9.]*\).*/\1/p' "$1"; }

if [[ " $TOOLS " == *" perf "* ]]; then
  if ! perf record -e cpu-clock -o "$WORK/probe.data" true >/dev/null 2>&1; then
    echo "perf cannot record here (perf_event_paranoid: $(cat /proc/sys/kernel/perf_event_paranoid)); skipping it" |
      tee -a "$SUMMARY"
  else
    start_mmserve perf-target "${THREAD_FLAGS[@]}"
    pid=${SERVER_PIDS[perf-target]}
    for conc in 1 32; do
      echo "== perf: $CASE at concurrency $conc, ${PROFILE_SECONDS}s"
      threads=1
      ((conc > 1)) && threads=2
      log=$WORK/wrk-perf-c$conc.txt
      "${ON_CLIENT_CPUS[@]}" wrk -t"$threads" -c"$conc" -d"$((PROFILE_SECONDS + 2))s" \
        -s "bench/$CASE.lua" "$(target_url perf-target "$CASE")" >"$log" 2>&1 &
      wrk_pid=$!
      sleep 1
      rm -f "$OUT/perf-c$conc.data" "$OUT/perf-c$conc.data.old"
      perf record -e cpu-clock -F "$PROFILE_FREQ" --call-graph dwarf,16384 -p "$pid" \
        -o "$OUT/perf-c$conc.data" -- sleep "$PROFILE_SECONDS" >/dev/null 2>"$WORK/perf-c$conc.err"
      wait "$wrk_pid"
      rps=$(wrk_rps "$log")
      [[ -n $rps ]] || { cat "$log" >&2; die "wrk failed under perf"; }
      grep -q 'bad_status=0 bad_size=0 errors=0' "$log" || die "errors under perf: $(grep BENCH "$log")"
      requests=$(python3 -c "print(round($rps * $PROFILE_SECONDS))")
      perf report -i "$OUT/perf-c$conc.data" --no-children --sort dso,sym -g none --percent-limit 0.5 \
        >"$OUT/perf-c$conc-report.txt" 2>/dev/null || true
      {
        echo "## perf, concurrency $conc (wrk -t$threads -c$conc): $rps req/s while profiled"
        echo
        perf script --no-inline -i "$OUT/perf-c$conc.data" -F tid,period,ip,sym,dso 2>/dev/null |
          python3 bench/perf_summary.py --requests "$requests"
        echo
      } >>"$SUMMARY"
    done
    stop_server perf-target
  fi
fi

if [[ " $TOOLS " == *" callgrind "* ]]; then
  command -v valgrind >/dev/null || die "valgrind is missing"
  echo "== callgrind: $CASE at concurrency 1, ${CALLGRIND_SECONDS}s (starting under valgrind takes a while)"
  rm -f "$OUT"/callgrind.out.*
  MMSERVE_WRAPPER=(valgrind --tool=callgrind --instr-atstart=no
    "--callgrind-out-file=$OUT/callgrind.out.%p")
  # Valgrind runs the model ~50x slower: where the server picks the inline
  # fast path by measured execution time, widen its bound by as much, so that
  # the profiled requests take the path they take natively.
  CALLGRIND_FLAGS=()
  # (grep reads the whole help, as in lib.sh: -q may stop early, and under
  # pipefail mmserve's SIGPIPE would read as "no such flag".)
  if "$MMSERVE" --help 2>/dev/null | grep -- --inline-execution-max-us >/dev/null; then
    CALLGRIND_FLAGS=(--inline-execution-max-us "${PROFILE_CALLGRIND_INLINE_US:-10000}")
  fi
  READY_SECONDS=300 start_mmserve callgrind-target "${THREAD_FLAGS[@]}" "${CALLGRIND_FLAGS[@]}"
  MMSERVE_WRAPPER=()
  pid=${SERVER_PIDS[callgrind-target]}
  callgrind_control -i on "$pid" >/dev/null
  log=$WORK/wrk-callgrind.txt
  "${ON_CLIENT_CPUS[@]}" wrk -t1 -c1 -d"${CALLGRIND_SECONDS}s" -s "bench/$CASE.lua" \
    "$(target_url callgrind-target "$CASE")" >"$log" 2>&1
  callgrind_control -i off "$pid" >/dev/null
  requests=$(wrk_requests "$log")
  [[ -n $requests ]] || { cat "$log" >&2; die "wrk failed under callgrind"; }
  grep -q 'bad_status=0 bad_size=0 errors=0' "$log" || die "errors under callgrind: $(grep BENCH "$log")"
  stop_server callgrind-target  # the profile is written at exit
  out_file=$(ls "$OUT"/callgrind.out.* | head -1)
  callgrind_annotate --inclusive=yes "$out_file" 2>/dev/null | head -80 | cut -c1-250 \
    >"$OUT/callgrind-inclusive.txt" || true
  callgrind_annotate "$out_file" 2>/dev/null | head -80 | cut -c1-250 >"$OUT/callgrind-self.txt" || true
  {
    echo "## callgrind, concurrency 1 (wrk -t1 -c1): $requests requests${CALLGRIND_FLAGS:+, mmserve ${CALLGRIND_FLAGS[*]}}"
    echo
    python3 bench/callgrind_summary.py "$out_file" --requests "$requests"
    echo
  } >>"$SUMMARY"
fi

echo
cat "$SUMMARY"
echo
echo "profile files: $OUT"
