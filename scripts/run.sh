#!/usr/bin/env bash
# scripts/run.sh sets up the local model (first run only) and starts the proxy
# on the example config: an auto router over mock upstreams, so it answers with
# no API keys and no network. Extra arguments go to 'autorouter serve'.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash scripts/setup.sh
go build -o bin/autorouter ./cmd/autorouter
exec bin/autorouter serve --config cmd/autorouter/example/config.yaml "$@"
