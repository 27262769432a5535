#!/usr/bin/env bash
# Runs every test of every module in the repository, with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."
for mod in . examples bench redisbreaker; do
  [[ -f "$mod/go.mod" ]] || continue
  echo "== go test $mod"
  (cd "$mod" && go test -race -count=1 -timeout 15m ./...)
done
