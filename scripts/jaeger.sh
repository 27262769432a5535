#!/usr/bin/env bash
# Builds Jaeger all-in-one (release v1.76.0, also v2.13.0: cmd/jaeger, the
# OpenTelemetry-Collector-based Jaeger v2) from source into .bin/, unless it
# is there already, and prints the binary's path on stdout; progress goes to
# stderr. Used by .ci/run for examples/tracing's end-to-end test:
#
#   JAEGER_BIN="$(scripts/jaeger.sh)" go -C examples test ./tracing
#
# Jaeger never enters a go.mod of this repository. It cannot be built with
# `go install github.com/jaegertracing/jaeger/cmd/jaeger@v1.76.0` (nor
# `go run`): its go.mod has a replace directive, which module-mode installs
# refuse. So the module is downloaded into the module cache with
# `go mod download` (checked against sum.golang.org like any dependency) and
# built there, with its own go.mod and go.sum (-mod=readonly).
#
# The first build downloads ~400 modules and compiles them: about 5 minutes
# on 2 CPUs; a rebuild from a warm Go build cache takes well under a minute.
# A binary built from source serves the query API but not the UI's assets
# (the release binaries and Docker images embed them).
set -euo pipefail
cd "$(dirname "$0")/.."

version=v1.76.0
module=github.com/jaegertracing/jaeger
bin="$PWD/.bin/jaeger-$version"

if [[ ! -x "$bin" ]]; then
  start=$SECONDS
  echo "jaeger.sh: building $module/cmd/jaeger@$version into $bin" >&2
  # Outside any module and workspace, so nothing here is touched.
  dir="$(cd / && GOWORK=off GOFLAGS= go mod download -json "$module@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  if [[ -z "$dir" || ! -f "$dir/go.mod" ]]; then
    echo "jaeger.sh: go mod download $module@$version gave no source directory" >&2
    exit 1
  fi
  mkdir -p .bin
  (cd "$dir" && GOWORK=off GOFLAGS= go build -mod=readonly -buildvcs=false \
    -ldflags "-X $module/internal/version.latestVersion=$version" \
    -o "$bin.tmp" ./cmd/jaeger) >&2
  mv "$bin.tmp" "$bin"
  echo "jaeger.sh: built in $((SECONDS - start))s" >&2
fi
echo "$bin"
