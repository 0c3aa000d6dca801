#!/usr/bin/env bash
# scripts/test.sh sets up everything the tests need (model, runtime, Node SDK
# test dependencies) and runs the whole suite: go vet, go test -race, and a
# short run of every fuzz target (FUZZ_TIME, default 5s each).
# Extra arguments go to go test (e.g. scripts/test.sh -run TestONNX ./embed/).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash scripts/setup.sh
echo "test: go vet ./..." >&2
go vet ./...
if [ $# -eq 0 ]; then set -- ./...; fi
echo "test: go test -race $*" >&2
go test -race -timeout 40m "$@"
if [ "$*" = "./..." ]; then
  echo "test: fuzzing each parser for a short while (scripts/fuzz.sh --time 5s)" >&2
  bash scripts/fuzz.sh --time "${FUZZ_TIME:-5s}"
fi
