#!/usr/bin/env bash
# scripts/bench.sh sets up the local model (first run only) and runs the
# end-to-end benchmark harness, which writes bench/REPORT.md and
# bench/latency.svg. It installs nginx (apt-get) and the Portkey gateway (npm)
# as peers when it can, and says so in the report when it cannot. Extra
# arguments go to the harness: --quick for a run of a few minutes,
# --sections overhead,decision,routed,scale,quality to pick sections,
# --peers=false to skip the peers.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash scripts/setup.sh
exec go run ./bench "$@"
