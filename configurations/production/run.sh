#!/usr/bin/env bash
# The production configuration on one machine: Postgres, two `xos serve` processes, sync
# workers, and nginx in front.
#
#   run.sh start   migrate, start 2 × serve (ports 8101, 8102), $SYNC_WORKERS × `xos sync`, and
#                  nginx on 127.0.0.1:$NGINX_PORT (8100); returns once nginx serves the UI
#   run.sh stop    stop all of them (and the local backend's processes)
#   run.sh check   start on a scratch database, check it serves (static files from nginx, the
#                  API through both servers, the sync workers enacting), stop (make production-check)
#
# Environment: XOS_BIN (the xos binary), XOS_SITE_ROOT (the built UI), DATABASE_URL (default:
# the configuration's), XOS_DATA (pids, logs, nginx files, backend state; default
# data/production), NGINX_PORT, SYNC_WORKERS.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
CONF=$REPO/configurations/production/xos.toml
BIN=$(realpath "${XOS_BIN:?set XOS_BIN to the xos binary}")
SITE=$(realpath "${XOS_SITE_ROOT:?set XOS_SITE_ROOT to the built UI (target/site)}")
DATA=$(realpath -m "${XOS_DATA:-data/production}")
NGINX_PORT=${NGINX_PORT:-8100}
SERVE_PORTS=(8101 8102)
SYNC_WORKERS=${SYNC_WORKERS:-2}
# Worker N serves its /metrics, /healthz and /readyz on METRICS_BASE + N (8111, 8112, …).
METRICS_BASE=${METRICS_BASE:-8110}
export XOS_STATE_DIR=$DATA/state RUST_LOG=${RUST_LOG:-info,sqlx=warn,tower_sessions=warn}
. scripts/lib.sh
PORT=$NGINX_PORT

started() { [ -f "$DATA/run/$1.pid" ] && kill -0 "$(cat "$DATA/run/$1.pid")" 2>/dev/null; }
http_code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

start_one() { # name, command…
  local name=$1; shift
  if started "$name"; then echo "$name already runs"; return; fi
  setsid "$@" >>"$DATA/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$DATA/run/$name.pid"
}

wait_http() { # url, name
  for _ in $(seq 1 240); do
    [ "$(http_code "$1")" = 200 ] && return 0
    if ! started "$2"; then echo "$2 exited; the end of its log:" >&2; tail -n 20 "$DATA/logs/$2.log" >&2; return 1; fi
    sleep 0.25
  done
  echo "$2 did not answer at $1" >&2
  return 1
}

cmd_start() {
  command -v nginx >/dev/null || { echo "nginx is not installed (make production-check installs Debian's)" >&2; exit 1; }
  mkdir -p "$DATA/run" "$DATA/logs" "$DATA/nginx/tmp" "$XOS_STATE_DIR"
  local db
  db=$(python3 -c 'import sys,urllib.parse as u; print(u.urlparse(sys.argv[1]).path.lstrip("/"))' "${DATABASE_URL:-postgres://x/xos_production}")
  if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $db"
    echo "created database $db"
  fi
  # One process migrates and loads the first data; the servers then start on a ready database.
  "$BIN" --config "$CONF" setup >>"$DATA/logs/setup.log" 2>&1 || { tail -n 20 "$DATA/logs/setup.log" >&2; exit 1; }
  local i=0
  for port in "${SERVE_PORTS[@]}"; do
    i=$((i + 1))
    PORT=$port start_one "serve-$i" "$BIN" --config "$CONF" serve
  done
  for w in $(seq 1 "$SYNC_WORKERS"); do
    start_one "sync-$w" "$BIN" --config "$CONF" sync --metrics-addr "127.0.0.1:$((METRICS_BASE + w))"
  done
  i=0
  for port in "${SERVE_PORTS[@]}"; do
    i=$((i + 1))
    wait_http "http://127.0.0.1:$port/login" "serve-$i"
  done
  local upstreams="" user=""
  for port in "${SERVE_PORTS[@]}"; do upstreams+="        server 127.0.0.1:$port;"$'\n'; done
  # As root, nginx's workers would run as nobody, who may not read the build directory.
  [ "$(id -u)" = 0 ] && user="user root;"
  sed -e "s|@PREFIX@|$DATA/nginx|g" -e "s|@SITE@|$SITE|g" -e "s|@REPO@|$REPO|g" \
      -e "s|@PORT@|$NGINX_PORT|g" -e "s|@USER@|$user|" \
      -e "/@UPSTREAMS@/{r /dev/stdin" -e "d}" configurations/production/nginx.conf.in \
      <<<"$upstreams" >"$DATA/nginx/nginx.conf"
  cp configurations/production/proxy_params "$DATA/nginx/proxy_params"
  nginx -t -q -p "$DATA/nginx" -c "$DATA/nginx/nginx.conf"
  if ! [ -f "$DATA/nginx/nginx.pid" ] || ! kill -0 "$(cat "$DATA/nginx/nginx.pid")" 2>/dev/null; then
    nginx -p "$DATA/nginx" -c "$DATA/nginx/nginx.conf"
  fi
  for _ in $(seq 1 40); do [ "$(http_code "http://127.0.0.1:$NGINX_PORT/login")" = 200 ] && break; sleep 0.25; done
  [ "$(http_code "http://127.0.0.1:$NGINX_PORT/login")" = 200 ] || { echo "nginx does not serve the UI" >&2; cat "$DATA/nginx/error.log" >&2; exit 1; }
  echo "XOS (production) is ready at http://127.0.0.1:$NGINX_PORT/ (nginx → ${SERVE_PORTS[*]}; $SYNC_WORKERS sync workers)"
}

cmd_stop() {
  if [ -f "$DATA/nginx/nginx.pid" ] && kill -0 "$(cat "$DATA/nginx/nginx.pid")" 2>/dev/null; then
    nginx -p "$DATA/nginx" -c "$DATA/nginx/nginx.conf" -s quit 2>/dev/null || true
  fi
  for f in "$DATA"/run/*.pid; do
    [ -e "$f" ] || continue
    local pid
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  "$BIN" --config "$CONF" backend-stop >/dev/null 2>&1 || true
  for _ in $(seq 1 20); do [ -f "$DATA/nginx/nginx.pid" ] || break; sleep 0.25; done
  echo "XOS (production) stopped"
}

cmd_check() {
  local db=xos_production_check
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
  DATA=$(mktemp -d "${TMPDIR:-/tmp}/xos-production.XXXXXX")
  export XOS_STATE_DIR=$DATA/state
  PGOPTIONS='-c client_min_messages=warning' psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  fail() { echo "FAIL (production): $*" >&2; tail -n 5 "$DATA"/logs/*.log >&2 || true; cmd_stop >/dev/null 2>&1; exit 1; }
  trap 'cmd_stop >/dev/null 2>&1 || true' EXIT
  cmd_start >/dev/null || fail "did not start"
  # nginx serves the static files itself…
  curl -sI "http://127.0.0.1:$NGINX_PORT/pkg/xos.css" | grep -qi '^x-xos-static: nginx' || fail "/pkg/xos.css does not come from nginx"
  curl -sI "http://127.0.0.1:$NGINX_PORT/static/js/helloWorldService.js" | grep -qi '^x-xos-static: nginx' || fail "/static/ does not come from nginx"
  curl -sI "http://127.0.0.1:$NGINX_PORT/static/js/vendor/backbone.js" | grep -qi '^x-xos-static: nginx' || fail "the vendored libraries do not come from nginx"
  [ "$(http_code "http://127.0.0.1:$NGINX_PORT/pkg/frontend_bg.wasm")" = 200 ] || fail "no wasm bundle"
  # …and proxies the rest: the UI, the generated client library, the API.
  curl -s "http://127.0.0.1:$NGINX_PORT/login" | grep -q '<form' || fail "no login page through nginx"
  curl -s "http://127.0.0.1:$NGINX_PORT/static/js/xoslib/xos-backbone.js" | grep -q 'XOS_MODELS' || fail "xos-backbone.js"
  [ "$(api /xos/sites/ | jq_ 'd[0]["login_base"]')" = mysite ] || fail "the API through nginx"
  # A write through one server is seen at once by the other (the change reaches it by Postgres
  # LISTEN/NOTIFY, which also refreshes its response cache).
  local site id
  site=$(PORT=${SERVE_PORTS[1]} api /xos/sites/?login_base=mysite | jq_ 'd[0]["id"]')
  PORT=${SERVE_PORTS[1]} api /xos/slices/ >/dev/null
  id=$(PORT=${SERVE_PORTS[0]} api "/xos/slices/?no_hyperlinks=1" -X POST -H 'Content-Type: application/json' \
        -d "{\"name\": \"mysite_production\", \"site\": $site}" | jq_ 'd["id"]')
  [ -n "$id" ] || fail "cannot create a slice through the first server"
  seen() { PORT=${SERVE_PORTS[1]} api "/xos/slices/?name=mysite_production" | jq_ 'len(d)' | grep -qx 1; }
  eventually 5 seen || fail "the second server does not see the first one's write"
  # The sync workers enact the HelloWorld tenant the recipe loaded; the servers run none.
  tenant_ok() { api "/xos/helloworldtenants/?name=hello-tenant" | jq_ 'd[0]["backend_status"]' | grep -q '^1 - OK'; }
  eventually 60 tenant_ok || fail "no sync worker enacted the tenant: $(api /xos/helloworldtenants/)"
  local port
  port=$(api "/xos/helloworldtenants/?name=hello-tenant" | jq_ 'd[0]["port"]')
  [ "$(curl -s "http://127.0.0.1:$port/")" = "Hello World!" ] || fail "the tenant does not serve its message"
  grep -q "synchronizer running in this process" "$DATA"/logs/serve-*.log && fail "a server runs the synchronizer"
  # Each worker reports its own passes; together they enacted the tenant.
  local w enacted=0 n
  for w in $(seq 1 "$SYNC_WORKERS"); do
    curl -s "http://127.0.0.1:$((METRICS_BASE + w))/metrics" >"$DATA/metrics-$w.txt" || fail "sync-$w serves no /metrics"
    grep -Eq '^xos_sync_passes_total [1-9]' "$DATA/metrics-$w.txt" || fail "sync-$w reports no pass: $(head -c 600 "$DATA/metrics-$w.txt")"
    [ "$(http_code "http://127.0.0.1:$((METRICS_BASE + w))/readyz")" = 200 ] || fail "sync-$w is not ready"
    n=$(awk '/^xos_sync_enacted_total\{step="helloworld/ {s += $2} END {print s + 0}' "$DATA/metrics-$w.txt")
    enacted=$((enacted + n))
  done
  [ "$enacted" -ge 1 ] || fail "no worker's metrics count the enacted tenant"
  # Requests went to both servers.
  for i in 1 2; do grep -q . "$DATA/logs/serve-$i.log" || fail "serve-$i logged nothing"; done
  cmd_stop >/dev/null
  trap - EXIT
  for port in "$NGINX_PORT" "${SERVE_PORTS[@]}" $(seq $((METRICS_BASE + 1)) $((METRICS_BASE + SYNC_WORKERS))); do
    [ "$(http_code "http://127.0.0.1:$port/login")" = 000 ] || fail "something still answers on $port after stop"
  done
  PGOPTIONS='-c client_min_messages=warning' psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  rm -rf "$DATA"
  echo "configuration production: ok (nginx, 2 servers, $SYNC_WORKERS sync workers, Postgres)"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  check) cmd_check ;;
  *) echo "usage: run.sh start|stop|check" >&2; exit 2 ;;
esac
