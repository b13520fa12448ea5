#!/usr/bin/env bash
# bench/tenancy.sh [BUILD_DIR]: issue 7's benchmark, one run, the figure as a
# ratio against a baseline measured in the same run.
#
# Two servers on examples/models, measured in turn (BENCH_ROUNDS interleaved
# rounds, the best of each kept so that a noisy moment does not decide):
#   open     no --tenants file: no key asked for, no quota (usage is counted,
#            as it always is)
#   tenants  --tenants with one user tenant owning examples/models, whose key
#            every request carries (Authorization: Bearer ...), and both
#            request quotas set high enough never to refuse: a rate of 10^9/s
#            (burst 10^9) and max_concurrency 1000. Each request then pays for
#            authentication (the thread's key cache), the GCRA compare-and-
#            swap, the concurrency count and its release.
#   open2    a second `open`, the control: open2 / open is what this
#            machine's noise makes of two identical servers (c32 only)
# Case: wrk over HTTP with binary tensors on the add model, req/s at
# concurrency 32 (and p50 at 1, for information). Headline: tenants req/s /
# open req/s (target >= 0.97), of the best rounds and as the median of each
# round's ratio (the two measured back to back), beside the control's.
# Beside it the server's CPU time per request at c32 (median over the
# rounds; from /proc, so less swayed than req/s by whatever else the machine
# runs), as a ratio too.
#
# Then (BENCH_CALLGRIND=1, the default, when valgrind is there) the exact
# count: each server again under callgrind, instrumentation on only while wrk
# runs at concurrency 1 for BENCH_CALLGRIND_SECONDS (6), and the user-space
# instructions per request of each, as ratios. Callgrind is not disturbed by
# a noisy machine; it sees no system calls or waiting.
#
# With BENCH_BEFORE=PATH (an mmserve binary built from an earlier commit), a
# third server `before` runs that binary open, and the report adds open /
# before: what this build's request path costs against the earlier one.
#
# Pinning (BENCH_PIN, default 1): servers on CPU 0, wrk on CPU 1.
# Env: BENCH_SECONDS (8), BENCH_ROUNDS (5), BENCH_BEFORE, BENCH_OUT (also
# write the report there), BENCH_KEEP=1 (keep the work folder).
set -euo pipefail
PIN=${BENCH_PIN:-1}
source "$(dirname "$0")/lib.sh"
SECS=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-5}
bench_init "${1:-build/release}" mmserve
[[ -x $MMSERVE ]] || die "no mmserve in $BUILD_DIR"

KEY=bench-key-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
HASH=$("$MMSERVE" hash-key "$KEY")
cat >"$WORK/tenants.yaml" <<YAML
tenants:
  - id: bench
    api_keys: ['$HASH']
    repositories: [$(pwd)/examples/models]
    quotas: {requests_per_second: 1000000000, burst: 1000000000, max_concurrency: 1000}
YAML

start_mmserve open
start_mmserve tenants --tenants "$WORK/tenants.yaml"
start_mmserve open2
SERVERS=(open tenants open2)
if [[ -n ${BENCH_BEFORE:-} ]]; then
  [[ -x $BENCH_BEFORE ]] || die "BENCH_BEFORE=$BENCH_BEFORE is not an executable"
  THIS=$MMSERVE MMSERVE=$BENCH_BEFORE
  start_mmserve before
  MMSERVE=$THIS
  SERVERS+=(before)
fi
grep -q "runs open" "$WORK/open.log" || die "the open server does not say it runs open"
# The tenants server refuses a request without the key, and serves one with it.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "${URL[tenants]}/v2/models/add_sub/infer" -d '{}')
[[ $code == 401 ]] || die "the tenants server answered $code without a key"

INVALID=()
declare -A CPU_MED=()
declare -A BEST_P50=() BEST_RPS=() CPU_US=() ROUND_RPS=()
PAIRED=""   # tenants / open req/s of each round at c32
CONTROL=""  # open2 / open
measure() {  # measure SERVER CONC
  if [[ $1 == tenants ]]; then export BENCH_AUTHORIZATION="Bearer $KEY"; else export BENCH_AUTHORIZATION=; fi
  run_wrk "$1" add_sub_binary "$2" "$SECS"
  ((R_VALID)) || INVALID+=("$1 c$2")
  echo "  $1 c$2: p50 ${R[p50_us]} us, p99 ${R[p99_us]} us, ${R[rps]} req/s"
  if (($2 == 1)); then
    if [[ -z ${BEST_P50[$1]:-} ]] || awk "BEGIN{exit !(${R[p50_us]} < ${BEST_P50[$1]})}"; then
      BEST_P50[$1]=${R[p50_us]}
    fi
  else
    ROUND_RPS[$1]=${R[rps]}
    if [[ -z ${BEST_RPS[$1]:-} ]] || awk "BEGIN{exit !(${R[rps]} > ${BEST_RPS[$1]})}"; then
      BEST_RPS[$1]=${R[rps]}
    fi
    local ticks_per_s; ticks_per_s=$(getconf CLK_TCK)
    CPU_US[$1]+=" $(awk "BEGIN{printf \"%.2f\", ${R[cpu_ticks]} * 1e6 / $ticks_per_s / ${R[requests]}}")"
  fi
}
for ((round = 1; round <= ROUNDS; round++)); do
  echo "== round $round"
  # Alternate which server goes first, so neither always meets a warmer machine.
  order=("${SERVERS[@]}")
  ((round % 2 == 0)) && order=($(printf '%s\n' "${SERVERS[@]}" | tac))
  for server in "${order[@]}"; do measure "$server" 32; done
  for server in "${order[@]}"; do [[ $server == open2 ]] || measure "$server" 1; done
  PAIRED+=" $(ratio "${ROUND_RPS[tenants]}" "${ROUND_RPS[open]}")"
  CONTROL+=" $(ratio "${ROUND_RPS[open2]}" "${ROUND_RPS[open]}")"
done

# Every request of the tenants server was charged to its tenant: none refused.
USAGE=$(curl -s -H "Authorization: Bearer $KEY" "${URL[tenants]}/v2/usage")
python3 - "$USAGE" <<'PY' || INVALID+=("usage: requests were refused or not counted")
import json, sys
t = json.loads(sys.argv[1])["tenants"][0]
assert t["refused"] == 0, t
assert sum(m["requests"] for m in t["models"]) > 0 and all(m["failures"] == 0 for m in t["models"]), t
PY

# ----------------------------------------------- callgrind: instructions
declare -A INSTR=()
if [[ ${BENCH_CALLGRIND:-1} == 1 ]] && command -v valgrind >/dev/null; then
  for server in "${SERVERS[@]}"; do stop_server "$server"; done
  for server in "${SERVERS[@]}"; do
    [[ $server == open2 ]] && continue  # the control is for req/s; callgrind is exact
    flags=()
    [[ $server == tenants ]] && flags=(--tenants "$WORK/tenants.yaml")
    binary=$MMSERVE
    [[ $server == before ]] && binary=$BENCH_BEFORE
    echo "== callgrind: $server"
    if [[ $server == tenants ]]; then export BENCH_AUTHORIZATION="Bearer $KEY"; else export BENCH_AUTHORIZATION=; fi
    THIS=$MMSERVE MMSERVE=$binary
    callgrind_per_request "$server" "${flags[@]}"
    MMSERVE=$THIS
    [[ -z $CG_ERROR ]] || INVALID+=("$CG_ERROR")
    INSTR[$server]=$CG_INSTR
  done
fi

for server in "${SERVERS[@]}"; do CPU_MED[$server]=$(median "${CPU_US[$server]}"); done
{
  echo "## Tenancy overhead (bench/tenancy.sh, $(date -u +%F), best of $ROUNDS interleaved rounds, ${SECS} s each)"
  echo
  echo "| case | open | API key + quotas | with / without |"
  echo "|---|---|---|---|"
  echo "| add, req/s at c32 (best round) | ${BEST_RPS[open]} | ${BEST_RPS[tenants]} | $(ratio "${BEST_RPS[tenants]}" "${BEST_RPS[open]}")x (target >= 0.97x) |"
  echo "| add, req/s at c32: median of the rounds' tenants / open |  |  | $(median "$PAIRED")x (rounds:$PAIRED) |"
  echo "| control: req/s at c32, median of the rounds' open2 / open (two identical servers) |  |  | $(median "$CONTROL")x (rounds:$CONTROL) |"
  echo "| add, server CPU per request at c32 (median) | ${CPU_MED[open]} us | ${CPU_MED[tenants]} us | $(ratio "${CPU_MED[tenants]}" "${CPU_MED[open]}")x |"
  echo "| add, p50 at c1 | ${BEST_P50[open]} us | ${BEST_P50[tenants]} us | $(ratio "${BEST_P50[tenants]}" "${BEST_P50[open]}")x |"
  if [[ -n ${INSTR[open]:-} ]]; then
    echo "| add, user-space instructions per request (callgrind, c1) | ${INSTR[open]} | ${INSTR[tenants]} | $(ratio "${INSTR[tenants]}" "${INSTR[open]}")x |"
  fi
  if [[ -n ${BENCH_BEFORE:-} ]]; then
    echo
    echo "This build open against \`$BENCH_BEFORE\` open: req/s at c32 ${BEST_RPS[open]} vs ${BEST_RPS[before]} ($(ratio "${BEST_RPS[open]}" "${BEST_RPS[before]}")x), CPU per request ${CPU_MED[open]} vs ${CPU_MED[before]} us ($(ratio "${CPU_MED[open]}" "${CPU_MED[before]}")x),${INSTR[before]:+ instructions per request ${INSTR[open]} vs ${INSTR[before]} ($(ratio "${INSTR[open]}" "${INSTR[before]}")x),} p50 at c1 ${BEST_P50[open]} vs ${BEST_P50[before]} us ($(ratio "${BEST_P50[open]}" "${BEST_P50[before]}")x)."
  fi
  if ((${#INVALID[@]})); then
    echo
    echo "INVALID:"
    printf '  %s\n' "${INVALID[@]}"
  fi
} | tee "$WORK/report.md"
[[ -n ${BENCH_OUT:-} ]] && cp "$WORK/report.md" "$BENCH_OUT"
((${#INVALID[@]} == 0))
