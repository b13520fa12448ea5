#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD (default build/asan) for SECONDS each
# (default 600), growing a persistent corpus under build/fuzz-corpus/<target>
# seeded from tests/fuzz/corpus/<target>. Crashes land in build/fuzz-artifacts/.
set -euo pipefail
BUILD=${1:-build/asan}
SECONDS_EACH=${2:-600}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp}
mkdir -p build/fuzz-artifacts
status=0
for fuzzer in "$BUILD"/tests/fuzz/fuzz_*; do
  [ -x "$fuzzer" ] || continue
  name=${fuzzer##*/fuzz_}
  corpus=build/fuzz-corpus/$name
  mkdir -p "$corpus"
  [ -d "tests/fuzz/corpus/$name" ] && cp -rn "tests/fuzz/corpus/$name/." "$corpus/"
  echo "== fuzz $name for ${SECONDS_EACH}s (corpus $corpus)"
  if ! "$fuzzer" -max_total_time="$SECONDS_EACH" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix=build/fuzz-artifacts/"$name"- "$corpus"; then
    echo "fuzz $name FAILED: see build/fuzz-artifacts/"
    status=1
  fi
done
exit $status
