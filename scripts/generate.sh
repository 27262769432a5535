#!/usr/bin/env bash
# Regenerates the Go code for proto/ with pinned tools built by the Go
# toolchain (works offline once the module cache holds them).
#   scripts/generate.sh         lint and generate
#   scripts/generate.sh --check lint, generate and fail if the tree changed
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${RESILIENCE_TOOLS_BIN:-$PWD/.bin}"
mkdir -p "$BIN"
export GOBIN="$BIN" PATH="$BIN:$PATH"
install_tool() { # name pkg@version
  local stamp="$BIN/.$1.version"
  if [[ ! -x "$BIN/$1" || "$(cat "$stamp" 2>/dev/null)" != "$2" ]]; then
    go install "$2"
    echo "$2" >"$stamp"
  fi
}
install_tool buf github.com/bufbuild/buf/cmd/buf@v1.75.0
install_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
install_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

buf lint
buf generate
if [[ "${1:-}" == "--check" ]]; then
  if [[ -n "$(git status --porcelain -- proto)" ]]; then
    echo "generated code is out of date; run scripts/generate.sh and commit:" >&2
    git status --porcelain -- proto >&2
    git diff -- proto >&2
    exit 1
  fi
fi
