#!/usr/bin/env bash
# Runs every test against the sanitizer build in $1 (and, for memory
# measurements, the release build in build/release) and ends with one summary
# line "N passed, N failed". Exit status: 0 only when everything passed.
set -uo pipefail
BUILD=${1:-build/asan}
FUZZ_SECONDS=${2:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp}
export MMSERVE_BINARY=$ROOT/$BUILD/mmserve
# Measurements a sanitizer distorts (RSS across load/unload cycles) use the release build.
export MMSERVE_RELEASE_BINARY=${MMSERVE_RELEASE_BINARY:-$ROOT/build/release/mmserve}
LOGS=$ROOT/build/test-logs
mkdir -p "$LOGS"

tests_start=$(date +%s)
passed=0
failed=0
failures=()
count() {  # count NAME PASSED FAILED
  passed=$((passed + $2))
  failed=$((failed + $3))
  if [ "$3" -gt 0 ]; then failures+=("$1"); fi
}

# 0. Formatting: every C++ file as clang-format (.clang-format) writes it.
echo "== clang-format"
# In batches, one batch per core (one process per file took two minutes).
format_out=$(git ls-files -z '*.cc' '*.h' |
  xargs -0 -n 64 -P "$(nproc)" clang-format --dry-run --Werror 2>&1 >/dev/null)
format_rc=$?
unformatted=$(grep -oE '^[^:]+:[0-9]+:[0-9]+: error' <<<"$format_out" | cut -d: -f1 | sort -u)
[ "$format_rc" -ne 0 ] && [ -z "$unformatted" ] && unformatted="(clang-format failed: $format_out)"
if [ -z "$unformatted" ]; then
  count "clang-format" 1 0
else
  echo "not clang-formatted (run make format):" $unformatted
  count "clang-format" 0 1
fi

# 1. GoogleTest units.
echo "== unit tests"
"$BUILD/tests/unit/unit_tests" --gtest_brief=1 2>&1 | tee "$LOGS/unit.log" | tail -n 30
rc=${PIPESTATUS[0]}
ok=$(grep -oE '\[  PASSED  \] [0-9]+' "$LOGS/unit.log" | grep -oE '[0-9]+$' || echo 0)
bad=$(grep -E '^\[  FAILED  \] [A-Za-z]' "$LOGS/unit.log" | sort -u | wc -l)
if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
count "unit tests" "${ok:-0}" "$bad"

# 2. Fuzz targets, a short bounded run each over a copy of their seed corpus,
# FUZZ_JOBS at once (default: one per core), before the pytest suites. (Run
# in the background beside them, at nice 19, they cost the run no time of
# their own, but the suites slowed by a quarter and Python workers missed
# their 60 s start limit in the MLflow tests: not until that is understood.)
FUZZ_JOBS=${FUZZ_JOBS:-$(nproc)}
fuzz_one() {  # fuzz_one FUZZER NAME: its exit status in $LOGS/fuzz_NAME.rc
  local corpus
  corpus=$(mktemp -d)
  [ -d "tests/fuzz/corpus/$2" ] && cp -r "tests/fuzz/corpus/$2/." "$corpus/"
  # -timeout: one input running a minute is a hang, reported as such
  # (libFuzzer's default waits twenty minutes, past any -max_total_time).
  nice -n 19 "$1" -max_total_time="$FUZZ_SECONDS" -timeout=60 -rss_limit_mb=4096 \
    -print_final_stats=1 "$corpus" > "$LOGS/fuzz_$2.log" 2>&1
  echo $? > "$LOGS/fuzz_$2.rc"
  rm -rf "$corpus"
}
fuzz_names=()
for fuzzer in "$BUILD"/tests/fuzz/fuzz_*; do
  [ -x "$fuzzer" ] || continue
  name=${fuzzer##*/fuzz_}
  fuzz_names+=("$name")
  rm -f "$LOGS/fuzz_$name.rc"
done
echo "== fuzz: ${#fuzz_names[@]} targets, ${FUZZ_SECONDS}s each, $FUZZ_JOBS at a time"
(
  for name in "${fuzz_names[@]}"; do
    fuzz_one "$BUILD/tests/fuzz/fuzz_$name" "$name" &
    while [ "$(jobs -rp | wc -l)" -ge "$FUZZ_JOBS" ]; do wait -n; done
  done
  wait
) &
fuzz_pid=$!
fuzz_results() {
  wait "$fuzz_pid"
  for name in "${fuzz_names[@]}"; do
    if [ "$(cat "$LOGS/fuzz_$name.rc" 2>/dev/null)" = 0 ]; then
      count "fuzz $name" 1 0
      echo "fuzz $name: $(grep -E 'stat::number_of_executed_units' "$LOGS/fuzz_$name.log")"
    else
      echo "== fuzz $name FAILED"
      tail -n 40 "$LOGS/fuzz_$name.log"
      count "fuzz $name" 0 1
    fi
  done
}
fuzz_results

# 3. Integration tests against the real server, then the hostile suite
# (tests/adversarial: a hostile tenant, client and repository), each in its
# own pytest process (each folder has its own conftest). Each prints its 15
# slowest tests: what to look at first when a CI run nears its time limit.
# Test files run side by side (pytest-xdist, a file's tests on one worker,
# so its module fixtures start once): most of a test's time is a server
# starting or a client waiting, and every test picks its own ports and
# folders. One worker per core, at most 4.
PYTEST_JOBS=${PYTEST_JOBS:-$(nproc)}
[ "$PYTEST_JOBS" -gt 4 ] && PYTEST_JOBS=4
parallel=()
[ "$PYTEST_JOBS" -gt 1 ] && parallel=(-n "$PYTEST_JOBS" --dist loadfile)
# pytest_suite NAME LOG ARGS...: one pytest run, counted under NAME.
pytest_suite() {
  local name=$1 log=$2
  shift 2
  "$ROOT/.venv/bin/python" -m pytest -q -rfE --durations=15 -p no:cacheprovider "${parallel[@]}" \
    "$@" 2>&1 | tee "$LOGS/$log" | tail -n 60
  local rc=${PIPESTATUS[0]} summary ok bad
  summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)' "$LOGS/$log" | tail -1)
  ok=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || echo 0)
  bad=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$summary" | awk '{s += $1} END {print s + 0}')
  if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
  count "$name" "${ok:-0}" "$bad"
}
for suite in integration adversarial deploy; do
  echo "== $suite tests"
  pytest_suite "$suite tests" "$suite.log" "tests/$suite"
done

# 4. The gRPC transport's own suites once more, on the grpc++ transport (the
# native one, the default, serves the run above), as long as grpc++ is kept as
# the fallback: every call, stream, limit, shared-memory and certificate test
# of the gRPC port, through tritonclient, grpcio and perf_analyzer. Tests that
# speak HTTP alone (named so, without gRPC) touch nothing of the gRPC port:
# left to the run above. So are the suites of the features behind the port
# (tenancy, queue policies, tracing): they ran on grpc++ too until CI neared
# its time limit, and they see the transport only through the calls above.
grpc_files=()
for f in grpc_api tls limits shared_memory decoupled python_decoupled perf_analyzer; do
  grpc_files+=("tests/integration/test_$f.py")
done
echo "== gRPC suites on the grpc++ transport"
MMSERVE_GRPC_TRANSPORT=grpcpp pytest_suite "gRPC suites (grpc++ transport)" grpc-grpcpp.log \
  -k "not http or grpc" "${grpc_files[@]}"


# Where the time went: what to look at first when a CI run nears its limit
# (the build's marks are the Makefile's, when make test ran this).
now=$(date +%s)
marks=${MMSERVE_MAKE_TIMES:-}
if [ -n "$marks" ] && [ -f "$marks" ]; then
  # shellcheck disable=SC1090
  . "$marks"
  echo "time: install ${t_deps_end:+$((t_deps_end - t_start))}s, sanitizer build" \
    "${t_asan_end:+$((t_asan_end - t_deps_end))}s, release build" \
    "${t_release_end:+$((t_release_end - t_asan_end))}s, tests $((now - tests_start))s," \
    "all $((now - t_start))s"
else
  echo "time: tests $((now - tests_start))s"
fi

echo
if [ "$failed" -eq 0 ]; then
  echo "ALL TESTS PASSED"
else
  echo "FAILED: ${failures[*]}"
fi
echo "Summary: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
