#!/usr/bin/env bash
# scripts/fuzz.sh runs every fuzz target of the project for a while each and
# reports executions, new corpus entries and crashes found. The parsers it
# covers take untrusted input: request bodies and their rewrite, config.yaml
# and router.json loading, upstream server-sent events, and the tokenizer.
#
# Usage: scripts/fuzz.sh [--time 60s]   (scripts/test.sh runs it with --time 5s)
# A crash leaves its input under the package's testdata/fuzz/<Target>/, where
# 'go test' replays it from then on; commit it with the fix.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
time=60s
while [ $# -gt 0 ]; do
  case "$1" in
    --time) time=$2; shift 2 ;;
    --time=*) time=${1#--time=}; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
targets=(
  "./router/openai FuzzParseBody"
  "./router/config FuzzParse"
  "./router/config FuzzParseRouter"
  "./router/upstream FuzzEvents"
  "./router/translate FuzzTranslateRequests"
  "./embed FuzzEncode"
)
failed=0
printf '%-20s %-18s %12s %8s  %s\n' package target execs new result >&2
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  log=$(mktemp)
  if go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$time" >"$log" 2>&1; then
    result=ok
  elif grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'Failing input written to' "$log"; then
    # Go's fuzz coordinator can report its own -fuzztime deadline as a
    # failure when a worker is busy as time runs out (golang/go#75804,
    # fixed in Go 1.27): no input failed, so it is not a crash.
    result="ok (deadline race, golang/go#75804)"
  else
    result=CRASH
    failed=1
  fi
  execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  new=$(grep -o 'new interesting: [0-9]*' "$log" | tail -1 | awk '{print $3}')
  printf '%-20s %-18s %12s %8s  %s\n' "$pkg" "$name" "${execs:-?}" "${new:-?}" "$result" >&2
  if [ "$result" = CRASH ]; then
    sed -n '1,60p' "$log" >&2
  fi
  rm -f "$log"
done
exit $failed
