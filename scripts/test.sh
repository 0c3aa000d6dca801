#!/usr/bin/env bash
# scripts/test.sh sets up everything the tests need (model, runtime, Node SDK
# test dependencies) and runs the whole suite: go vet plus go test -race.
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
