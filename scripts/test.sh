#!/usr/bin/env bash
# scripts/test.sh sets up everything the tests need (model, runtime, Node SDK
# test dependencies, Postgres, Redis and Chromium) and runs the whole suite: go vet, go test -race, the
# allocation tests again without -race (the race detector makes sync.Pool drop
# items, so counts only hold without it), and a short run of every fuzz target
# (FUZZ_TIME, default 5s each).
# Extra arguments go to go test (e.g. scripts/test.sh -run TestONNX ./embed/).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash scripts/setup.sh
# Real Postgres and Redis on loopback for the database tests, and Debian's
# chromium for the browser tests; stopped when the tests end.
services=$(mktemp -d "${TMPDIR:-/tmp}/autorouter-services.XXXXXX")
trap 'bash scripts/services.sh stop "$services"' EXIT
bash scripts/services.sh start "$services"
# shellcheck disable=SC1091
. "$services/env"
echo "test: go vet ./..." >&2
go vet ./...
if [ $# -eq 0 ]; then set -- ./...; fi
echo "test: go test -race $*" >&2
go test -race -timeout 40m "$@"
if [ "$*" = "./..." ]; then
  echo "test: allocation tests without -race (go test -run Alloc ./...)" >&2
  go test -count=1 -run Alloc ./...
  echo "test: fuzzing each parser for a short while (scripts/fuzz.sh --time 5s)" >&2
  bash scripts/fuzz.sh --time "${FUZZ_TIME:-5s}"
fi
