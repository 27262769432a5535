#!/usr/bin/env bash
# Checks the exported API of the published modules (the root module and
# redisbreaker) against their last release tag with apidiff
# (golang.org/x/exp/cmd/apidiff): incompatible changes fail from v1 on and
# are listed, as a notice, before v1 (a v0 module may change its API; list
# the changes in CHANGELOG.md). Without a release tag there is nothing to
# compare with: it says so and succeeds. It never fails for want of a tag
# or of history (a shallow clone): only an incompatible change of a v1+
# module, or a tagged version that no longer builds, makes it fail.
set -euo pipefail
cd "$(dirname "$0")/.."

APIDIFF_VERSION=v0.0.0-20261113113407-e3970619a1a4 # golang.org/x/exp

# module directory and tag prefix: the root module's tags are vX.Y.Z,
# a nested module's <dir>/vX.Y.Z (the go command's convention).
modules=(".:" "redisbreaker:redisbreaker/")

work=""
cleanup() { if [[ -n "$work" ]]; then git worktree remove --force "$work/old" >/dev/null 2>&1 || true; rm -rf "$work"; fi; }
trap cleanup EXIT

status=0
for entry in "${modules[@]}"; do
  dir="${entry%%:*}"
  prefix="${entry#*:}"
  mod="$(cd "$dir" && go list -m)"
  tag="$(git tag --list "${prefix}v*" --sort=-v:refname 2>/dev/null | grep -E "^${prefix}v[0-9]+\.[0-9]+\.[0-9]+$" | head -n1 || true)"
  if [[ -z "$tag" ]]; then
    echo "apicheck: $mod: no release tag (${prefix}vX.Y.Z) yet, nothing to compare the API with: skipped"
    continue
  fi
  if [[ -z "$work" ]]; then
    work="$(mktemp -d)"
    echo "apicheck: installing apidiff ($APIDIFF_VERSION)"
    GOBIN="$work/bin" go install "golang.org/x/exp/cmd/apidiff@$APIDIFF_VERSION"
    git worktree add --detach --quiet "$work/old" "$tag"
  fi
  git -C "$work/old" checkout --quiet --detach "$tag"
  echo "apicheck: $mod: API of $tag against this tree"
  (cd "$work/old/$dir" && "$work/bin/apidiff" -m -w "$work/old.api" "$mod")
  (cd "$dir" && "$work/bin/apidiff" -m -w "$work/new.api" "$mod")
  report="$("$work/bin/apidiff" -m -incompatible "$work/old.api" "$work/new.api")"
  if [[ -z "$report" ]]; then
    echo "apicheck: $mod: no incompatible change since $tag"
    continue
  fi
  echo "$report"
  major="${tag#"$prefix"v}"
  major="${major%%.*}"
  if [[ "$major" -ge 1 ]]; then
    echo "apicheck: $mod: incompatible changes since $tag (a v$major module must keep its API; a new major version needs a new module path)" >&2
    status=1
  else
    echo "apicheck: $mod: incompatible changes since $tag, allowed before v1: list them in CHANGELOG.md"
  fi
done
exit "$status"
