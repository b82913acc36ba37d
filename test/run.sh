#!/usr/bin/env bash
# The test command (npm test): type-check, build, run every test with tap, and end with the
# line CI reads: "N passed, N failed[, N skipped]". The exit code is tap's.
# Needs the testbed (test/testbed.sh): a running Docker engine and the local images.
set -uo pipefail
cd "$(dirname "$0")/.."
# The type-check (agent, tests, bench) and the build (agent into dist/) side by side: two cores.
npx tsc --noEmit -p tsconfig.json &
typecheck=$!
npm run --silent build || { wait "$typecheck"; echo "0 passed, 1 failed"; exit 1; }
wait "$typecheck" || { echo "0 passed, 1 failed"; exit 1; }
export STEWARD_BUILT=1   # the packaging tests reuse this build (packaging/build.sh)
log=$(mktemp)
# tap runs as the leader of its own process group, writing to a file that is followed here: when
# it ends, whatever a test left running (a server, a daemon) is killed with the group, and no
# leftover can hold an output pipe open and keep this command from exiting.
# Coverage is a report, not a gate, and costs about 30 s here: `npm run coverage` adds it.
cov=--disable-coverage
[ "${COVERAGE:-}" = 1 ] && cov=
summaries=$(mktemp)
rc=0
run_tap() {
  local log tap_pid tail_pid code
  log=$(mktemp)
  setsid npx tap $cov "$@" >"$log" 2>&1 &
  tap_pid=$!
  tail -n +1 -f --pid="$tap_pid" "$log" &
  tail_pid=$!
  wait "$tap_pid"
  code=$?
  kill -TERM -- "-$tap_pid" 2>/dev/null && sleep 1 && kill -KILL -- "-$tap_pid" 2>/dev/null
  wait "$tail_pid" 2>/dev/null
  grep -E '^# \{ total' "$log" | tail -1 >>"$summaries"
  rm -f "$log"
  [ "$code" -ne 0 ] && rc=$code
  return 0
}
if [ $# -gt 0 ]; then
  run_tap "$@"
else
  # Two files at a time (.taprc), except faults.test.ts: it stops and restarts the Docker engine,
  # which would fail whatever file ran beside it, so it runs alone, after the others.
  run_tap --exclude=test/reconcile/faults.test.ts
  run_tap test/reconcile/faults.test.ts
fi
sum() { grep -oE "$1: [0-9]+" "$summaries" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}'; }
if [ -s "$summaries" ]; then
  skipped=$(sum skip)
  line="$(sum pass) passed, $(sum fail) failed"
  [ "$skipped" != 0 ] && line="$line, $skipped skipped"
  echo "$line"
fi
rm -f "$summaries"
exit "$rc"
