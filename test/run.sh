#!/usr/bin/env bash
# The test command (npm test): type-check, build, run every test with tap, and end with the
# line CI reads: "N passed, N failed[, N skipped]". The exit code is tap's.
# Needs the testbed (test/testbed.sh): a running Docker engine and the local images.
set -uo pipefail
cd "$(dirname "$0")/.."
npx tsc --noEmit -p tsconfig.json || { echo "0 passed, 1 failed"; exit 1; }
npm run --silent build || { echo "0 passed, 1 failed"; exit 1; }
log=$(mktemp)
npx tap "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
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
