#!/usr/bin/env bash
# Runs every test of every module in the repository, with the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."
for mod in . examples bench redisbreaker; do
  [[ -f "$mod/go.mod" ]] || continue
  echo "== go test $mod"
  (cd "$mod" && go test -race -count=1 -timeout 15m ./...)
done

# The README's commands, run as a newcomer would (examples/readme): on their
# own, after the rest, so that their builds and demos slow no
# timing-sensitive test down.
echo "== README commands (examples/readme)"
(cd examples && README_COMMANDS=1 go test -count=1 -timeout 20m -run TestCommandsRun ./readme)
