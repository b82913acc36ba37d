#!/usr/bin/env bash
# Runs every benchmark; each prints its figures and the machine it ran on. Needs test/testbed.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
for b in bench/*.ts; do
  echo "== $b"
  node --import ./test/loader/register.mjs "$b"
done
