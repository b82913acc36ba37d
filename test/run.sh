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
setsid npx tap $cov "$@" >"$log" 2>&1 &
tap_pid=$!
tail -n +1 -f --pid="$tap_pid" "$log" &
tail_pid=$!
wait "$tap_pid"
rc=$?
kill -TERM -- "-$tap_pid" 2>/dev/null && sleep 1 && kill -KILL -- "-$tap_pid" 2>/dev/null
wait "$tail_pid" 2>/dev/null
summary=$(grep -E '^# \{ total' "$log" | tail -1)
rm -f "$log"
num() { echo "$summary" | grep -oE "$1: [0-9]+" | grep -oE '[0-9]+' || echo 0; }
if [ -n "$summary" ]; then
  skipped=$(num skip)
  line="$(num pass) passed, $(num fail) failed"
  [ "$skipped" != 0 ] && line="$line, $skipped skipped"
  echo "$line"
fi
exit "$rc"
