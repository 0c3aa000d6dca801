#!/usr/bin/env bash
# scripts/services.sh starts the real servers the tests use, on loopback,
# in a scratch directory: PostgreSQL and Redis (Debian's postgresql and
# redis-server, installed with apt-get when missing) and finds Debian's
# chromium for the browser tests. It writes DIR/env with the variables the
# tests read; 'stop' ends the servers. Postgres refuses to run as root, so
# as root it runs as the postgres user.
#
# Usage: scripts/services.sh start DIR    then: . DIR/env
#        scripts/services.sh stop DIR
set -euo pipefail

say() { printf 'services: %s\n' "$*" >&2; }
die() { printf 'services: error: %s\n' "$*" >&2; exit 1; }

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: scripts/services.sh start|stop DIR"

pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else return 1
  fi
}

install_missing() {
  local pkgs=()
  [ -n "$(pgbin)" ] || pkgs+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
  command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || pkgs+=(chromium)
  [ ${#pkgs[@]} -gt 0 ] || return 0
  say "installing ${pkgs[*]} with apt-get (first run only)..."
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null ||
    die "apt-get update failed; install ${pkgs[*]} by hand (needs root or passwordless sudo)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null ||
    die "apt-get install ${pkgs[*]} failed; install them by hand"
  # Debian starts the packaged servers on their default ports; the tests
  # use their own, so those are left alone.
}

free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free port found"
}

# run_pg runs a Postgres tool, as the postgres user when we are root.
run_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  install_missing
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local bin pgport redport
  bin=$(pgbin)
  [ -n "$bin" ] || die "postgresql is not installed"
  pgport=$(free_port)
  mkdir -p "$dir/pg" "$dir/pgsock"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir/pg" "$dir/pgsock"; chmod 755 "$dir"; fi
  say "starting postgres on 127.0.0.1:$pgport (data in $dir/pg)"
  run_pg "$bin/initdb" -D "$dir/pg/data" -U autorouter --auth=trust -E UTF8 >"$dir/pg-init.log" 2>&1 ||
    { cat "$dir/pg-init.log" >&2; die "initdb failed"; }
  run_pg "$bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/log" -w -t 60 \
    -o "-p $pgport -k $dir/pgsock -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null ||
    { cat "$dir/pg/log" >&2; die "postgres did not start"; }
  run_pg "$bin/createdb" -h 127.0.0.1 -p "$pgport" -U autorouter autorouter_test ||
    die "createdb failed"

  command -v redis-server >/dev/null 2>&1 || die "redis-server is not installed"
  redport=$(free_port)
  say "starting redis on 127.0.0.1:$redport"
  redis-server --port "$redport" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null ||
    die "redis-server did not start"
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$redport") 2>/dev/null && break
    sleep 0.1
  done

  local chrome=/usr/bin/chromium
  [ -x "$chrome" ] || chrome=$(command -v chromium || true)
  cat >"$dir/env" <<EOF
export AUTOROUTER_TEST_POSTGRES_URL='postgres://autorouter@127.0.0.1:$pgport/autorouter_test?sslmode=disable'
export AUTOROUTER_TEST_POSTGRES_ADMIN_URL='postgres://autorouter@127.0.0.1:$pgport/postgres?sslmode=disable'
export AUTOROUTER_TEST_REDIS_URL='redis://127.0.0.1:$redport/0'
export AUTOROUTER_TEST_CHROMIUM='$chrome'
export AUTOROUTER_REQUIRE_SERVICES=1
EOF
  say "ready: . $dir/env"
}

stop() {
  [ -d "$dir" ] || return 0
  local bin
  bin=$(pgbin)
  if [ -n "$bin" ] && [ -d "$dir/pg/data" ]; then
    run_pg "$bin/pg_ctl" -D "$dir/pg/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [ -f "$dir/redis.pid" ]; then
    kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  fi
  rm -rf "$dir"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) die "usage: scripts/services.sh start|stop DIR" ;;
esac
