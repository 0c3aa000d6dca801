#!/usr/bin/env bash
# scripts/soak.sh sets up the local model (first run only) and runs the
# reliability section of the benchmark harness: the attacks of issue #11
# (thousands of concurrent streams with memory over time, silent and
# slowloris connections, a low open-file limit, keys in malformed requests
# and logs, embeddings amplification, upstream faults, client disconnects,
# reloads under load and graceful shutdown) replayed against the real
# `autorouter serve` binary and a faulty fake upstream. It prints a table
# with PASS/FAIL per attack and writes it as the report (bench/REPORT.md
# unless --out DIR says elsewhere, which keeps a full report). A full run
# takes a few minutes on 2 cores; --quick (smaller numbers) about two.
# Extra arguments go to the harness, e.g. --quick, --out DIR, --keep.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bash scripts/setup.sh
exec go run ./bench --sections reliability "$@"
