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
# Environment: XOS_BIN (the xos binary), XOS_SITE_ROOT (the built UI), DATABASE_URL (default: a
# local database of the configuration's name, owned by a role of the same name, not a
# superuser, with a generated password kept in $XOS_DATA/pg-password), XOS_ADMIN_PASSWORD
# (default: generated at the first start, printed once, kept in $XOS_DATA/admin-password),
# TLS_CERT and TLS_KEY (default: a self-signed certificate for localhost made at the first
# start), SERVER_NAME (the name plain HTTP redirects to; 127.0.0.1), XOS_DATA (pids, logs, nginx files, backend state; default data/production),
# NGINX_PORT (HTTPS, 8100), NGINX_HTTP_PORT (redirects to HTTPS, 8109), SYNC_WORKERS.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
CONF=$REPO/configurations/production/xos.toml
BIN=$(realpath "${XOS_BIN:?set XOS_BIN to the xos binary}")
SITE=$(realpath "${XOS_SITE_ROOT:?set XOS_SITE_ROOT to the built UI (target/site)}")
DATA=$(realpath -m "${XOS_DATA:-data/production}")
NGINX_PORT=${NGINX_PORT:-8100}
NGINX_HTTP_PORT=${NGINX_HTTP_PORT:-8109}
# The name users reach the site by: plain HTTP redirects there, whatever Host a request names.
SERVER_NAME=${SERVER_NAME:-127.0.0.1}
case $SERVER_NAME in *[!A-Za-z0-9.:-]*|'') echo "SERVER_NAME must be a host name or address" >&2; exit 1;; esac
SERVE_PORTS=(8101 8102)
SYNC_WORKERS=${SYNC_WORKERS:-2}
# Worker N serves its /metrics, /healthz and /readyz on METRICS_BASE + N (8111, 8112, …).
METRICS_BASE=${METRICS_BASE:-8110}
export XOS_STATE_DIR=$DATA/state RUST_LOG=${RUST_LOG:-info,sqlx=warn,tower_sessions=warn}
. scripts/lib.sh
PORT=$NGINX_PORT

started() { [ -f "$DATA/run/$1.pid" ] && kill -0 "$(cat "$DATA/run/$1.pid")" 2>/dev/null; }
http_code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
# nginx's HTTPS, verified against the configuration's certificate.
https_code() { http_code --cacert "$CERT" "https://127.0.0.1:$NGINX_PORT$1" "${@:2}"; }
psql_() { PGOPTIONS='-c client_min_messages=warning' psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

# A secret kept in a file only its owner reads, made once: secret FILE.
secret() {
  [ -s "$1" ] || (umask 077; openssl rand -base64 24 | tr -d '/+=' | head -c 24 >"$1")
  cat "$1"
}

# A secret into a file only its owner reads: keep_secret FILE VALUE.
keep_secret() { (umask 077; printf '%s\n' "$2" >"$1.new" && mv "$1.new" "$1"); }

# The database, its role (no superuser, a password) and DATABASE_URL, unless one was given.
# Either way the URL (it holds the password) reaches the processes as a file, DATABASE_URL_FILE,
# never in their environment.
database() {
  if [ -n "${DATABASE_URL:-}" ]; then
    keep_secret "$DATA/database-url" "$DATABASE_URL"
    unset DATABASE_URL
    export DATABASE_URL_FILE=$DATA/database-url
    return
  fi
  local db=$1 pw
  pw=$(secret "$DATA/pg-password")
  psql_ -d postgres <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$db') THEN CREATE ROLE "$db" LOGIN; END IF;
END \$\$;
ALTER ROLE "$db" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD '$pw';
SQL
  if ! psql_ -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    psql_ -d postgres -c "CREATE DATABASE \"$db\" OWNER \"$db\""
    echo "created database $db (owner: role $db)"
  else
    # A database made before it had a role of its own: hand it and its tables over.
    psql_ -d "$db" <<SQL
ALTER DATABASE "$db" OWNER TO "$db";
DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S', 'v') AND pg_get_userbyid(c.relowner) <> '$db' LOOP
    EXECUTE format('ALTER %s %I.%I OWNER TO %I', CASE r.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END,
                   r.nspname, r.relname, '$db');
  END LOOP;
END \$\$;
SQL
  fi
  keep_secret "$DATA/database-url" "postgres://$db:$pw@127.0.0.1:5432/$db"
  export DATABASE_URL_FILE=$DATA/database-url
}

# The TLS certificate nginx serves: TLS_CERT/TLS_KEY, or a self-signed one made once.
certificate() {
  CERT=${TLS_CERT:-$DATA/tls/cert.pem}
  KEY=${TLS_KEY:-$DATA/tls/key.pem}
  if [ -z "${TLS_CERT:-}" ] && ! [ -s "$CERT" ]; then
    mkdir -p "$DATA/tls"
    (umask 077; openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=localhost" \
       -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$KEY" -out "$CERT" 2>/dev/null)
    echo "made a self-signed TLS certificate for localhost: $CERT"
  fi
}

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
  mkdir -p "$DATA"
  # Others may pass through (the local backend's workloads run as nobody, from the state
  # directory) but not list it; what holds secrets or logs stays the owner's.
  chmod 711 "$DATA"
  chmod 700 "$DATA/run" "$DATA/logs" "$DATA/nginx"
  database "${DB_NAME:-xos_production}"
  certificate
  if [ -n "${XOS_ADMIN_PASSWORD:-}" ]; then
    keep_secret "$DATA/admin-password" "$XOS_ADMIN_PASSWORD"
  else
    local fresh=
    [ -s "$DATA/admin-password" ] || fresh=1
    secret "$DATA/admin-password" >/dev/null
    [ -n "$fresh" ] && echo "the admin padmin@vicci.org's password: $(cat "$DATA/admin-password") (shown once; kept in $DATA/admin-password)"
  fi
  unset XOS_ADMIN_PASSWORD
  # One process migrates and loads the first data (the admin's password from its file); the
  # servers then start on a ready database, with no admin password at all.
  XOS_ADMIN_PASSWORD_FILE=$DATA/admin-password "$BIN" --config "$CONF" setup >>"$DATA/logs/setup.log" 2>&1 ||
    { tail -n 20 "$DATA/logs/setup.log" >&2; exit 1; }
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
      -e "s|@PORT@|$NGINX_PORT|g" -e "s|@HTTP_PORT@|$NGINX_HTTP_PORT|g" -e "s|@USER@|$user|" \
      -e "s|@CERT@|$CERT|g" -e "s|@KEY@|$KEY|g" -e "s|@SERVER_NAME@|$SERVER_NAME|g" \
      -e "/@UPSTREAMS@/{r /dev/stdin" -e "d}" configurations/production/nginx.conf.in \
      <<<"$upstreams" >"$DATA/nginx/nginx.conf"
  cp configurations/production/proxy_params configurations/production/static_headers "$DATA/nginx/"
  nginx -t -q -p "$DATA/nginx" -c "$DATA/nginx/nginx.conf"
  if ! [ -f "$DATA/nginx/nginx.pid" ] || ! kill -0 "$(cat "$DATA/nginx/nginx.pid")" 2>/dev/null; then
    nginx -p "$DATA/nginx" -c "$DATA/nginx/nginx.conf"
  fi
  for _ in $(seq 1 40); do [ "$(https_code /login)" = 200 ] && break; sleep 0.25; done
  [ "$(https_code /login)" = 200 ] || { echo "nginx does not serve the UI" >&2; cat "$DATA/nginx/error.log" >&2; exit 1; }
  echo "XOS (production) is ready at https://127.0.0.1:$NGINX_PORT/ (certificate $CERT; nginx → ${SERVE_PORTS[*]}; $SYNC_WORKERS sync workers)"
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
  export DB_NAME=$db
  unset DATABASE_URL XOS_ADMIN_PASSWORD
  DATA=$(mktemp -d "${TMPDIR:-/tmp}/xos-production.XXXXXX")
  export XOS_STATE_DIR=$DATA/state
  psql_ -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  psql_ -d postgres -c "DROP ROLE IF EXISTS $db"
  fail() { echo "FAIL (production): $*" >&2; tail -n 5 "$DATA"/logs/*.log >&2 || true; cmd_stop >/dev/null 2>&1; exit 1; }
  trap 'cmd_stop >/dev/null 2>&1 || true' EXIT
  # The well-known password, and weak ones, are refused before anything starts.
  mkdir -p "$DATA"
  # (A database that does not exist: it must stop before connecting anywhere.)
  if XOS_ADMIN_PASSWORD=letmein DATABASE_URL=postgres://nobody@127.0.0.1:1/none "$BIN" --config "$CONF" setup >"$DATA/letmein.log" 2>&1; then
    fail "setup accepted the well-known password"
  fi
  grep -q "refusing the well-known password" "$DATA/letmein.log" || fail "no reason given: $(cat "$DATA/letmein.log")"
  for weak in password1234 short Qwertyuiop12; do
    if XOS_ADMIN_PASSWORD=$weak DATABASE_URL=postgres://nobody@127.0.0.1:1/none "$BIN" --config "$CONF" setup >"$DATA/weak.log" 2>&1; then
      fail "setup accepted the weak password $weak"
    fi
    grep -q "refusing a" "$DATA/weak.log" || fail "no reason given for $weak: $(cat "$DATA/weak.log")"
  done
  # A secret file others may read is refused.
  (umask 022; echo "postgres://nobody@127.0.0.1:1/none" >"$DATA/open-url")
  if DATABASE_URL_FILE=$DATA/open-url "$BIN" --config "$CONF" setup >"$DATA/open.log" 2>&1; then
    fail "setup read a database URL from a file others may read"
  fi
  grep -q "readable by its owner only" "$DATA/open.log" || fail "no reason given: $(cat "$DATA/open.log")"
  cmd_start >"$DATA/start.log" || fail "did not start: $(tail -n 5 "$DATA/start.log")"
  grep -q "password: " "$DATA/start.log" || fail "the generated admin password was not shown"
  ADMIN="padmin@vicci.org:$(cat "$DATA/admin-password")"
  [ "$(stat -c %a "$DATA/admin-password")" = 600 ] || fail "the password file is readable by others"
  # The database role is its own, not a superuser, and has a password.
  [ "$(psql_ -d postgres -c "SELECT rolsuper FROM pg_roles WHERE rolname = '$db'")" = f ] || fail "the role is a superuser"
  [ "$(psql_ -d postgres -c "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = '$db'")" = t ] || fail "the role has no password"
  [ "$(psql_ -d postgres -c "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '$db'")" = "$db" ] || fail "the database is not the role's"
  # nginx: TLS with the configuration's certificate, plain HTTP only redirects, no metrics.
  [ "$(http_code "http://127.0.0.1:$NGINX_HTTP_PORT/login")" = 301 ] || fail "plain HTTP does not redirect"
  curl -sI "http://127.0.0.1:$NGINX_HTTP_PORT/xos/sites/" | grep -qi "^location: https://127.0.0.1:$NGINX_PORT/xos/sites/" || fail "the redirect goes elsewhere"
  curl -sI -H 'Host: evil.example' "http://127.0.0.1:$NGINX_HTTP_PORT/login" | grep -qi "^location: https://127.0.0.1:$NGINX_PORT/login" ||
    fail "the redirect follows the request's Host"
  [ "$(https_code /metrics)" = 404 ] || fail "/metrics is public through nginx"
  # No long-lived process holds a secret in its environment (children and /proc would see it).
  local name pid pgpw
  pgpw=$(cat "$DATA/pg-password")
  for name in serve-1 serve-2 sync-1; do
    pid=$(cat "$DATA/run/$name.pid")
    if tr '\0' '\n' <"/proc/$pid/environ" | grep -Eq "^(DATABASE_URL|XOS_ADMIN_PASSWORD)=|$pgpw"; then
      fail "$name has a secret in its environment"
    fi
    tr '\0' '\n' <"/proc/$pid/environ" | grep -q "^DATABASE_URL_FILE=" || fail "$name got no DATABASE_URL_FILE"
  done
  [ "$(stat -c %a "$DATA/database-url")" = 600 ] || fail "the database URL file is readable by others"
  local headers
  headers=$(curl -sI --cacert "$CERT" "https://127.0.0.1:$NGINX_PORT/login")
  for h in "strict-transport-security: max-age" "content-security-policy: default-src 'self'" \
           "x-content-type-options: nosniff" "referrer-policy: same-origin" "x-frame-options: sameorigin"; do
    grep -qi "^$h" <<<"$headers" || fail "the login page lacks '$h': $headers"
  done
  grep -qi '^x-content-type-options: nosniff' <(curl -sI --cacert "$CERT" "https://127.0.0.1:$NGINX_PORT/pkg/xos.css") || fail "static files lack nosniff"
  # The well-known password does not open it; the generated one does, and the session cookie
  # is Secure.
  [ "$(https_code /xos/sites/ -u padmin@vicci.org:letmein)" = 401 ] || fail "letmein opens the API"
  local cookie
  cookie=$(curl -s -D - -o /dev/null --cacert "$CERT" -H "Origin: https://127.0.0.1:$NGINX_PORT" \
             --data-urlencode "username=padmin@vicci.org" --data-urlencode "password=$(cat "$DATA/admin-password")" \
             "https://127.0.0.1:$NGINX_PORT/login" | grep -i '^set-cookie: sessionid=')
  grep -qi 'secure' <<<"$cookie" || fail "the session cookie is not Secure: $cookie"
  # Host names it does not answer to (DNS rebinding).
  [ "$(https_code /xos/sites/ -H 'Host: evil.example')" = 400 ] || fail "a foreign Host is served"
  export SCHEME=https CURL_OPTS="--cacert $CERT"
  # nginx serves the static files itself…
  local base="https://127.0.0.1:$NGINX_PORT"
  curl -sI --cacert "$CERT" "$base/pkg/xos.css" | grep -qi '^x-xos-static: nginx' || fail "/pkg/xos.css does not come from nginx"
  curl -sI --cacert "$CERT" "$base/static/js/helloWorldService.js" | grep -qi '^x-xos-static: nginx' || fail "/static/ does not come from nginx"
  curl -sI --cacert "$CERT" "$base/static/js/vendor/backbone.js" | grep -qi '^x-xos-static: nginx' || fail "the vendored libraries do not come from nginx"
  [ "$(https_code /pkg/frontend_bg.wasm)" = 200 ] || fail "no wasm bundle"
  # …and proxies the rest: the UI, the generated client library, the API.
  curl -s --cacert "$CERT" "$base/login" | grep -q '<form' || fail "no login page through nginx"
  curl -s --cacert "$CERT" "$base/static/js/xoslib/xos-backbone.js" | grep -q 'XOS_MODELS' || fail "xos-backbone.js"
  [ "$(api /xos/sites/ | jq_ 'd[0]["login_base"]')" = mysite ] || fail "the API through nginx"
  # A write through one server is seen at once by the other (the change reaches it by Postgres
  # LISTEN/NOTIFY, which also refreshes its response cache).
  local site id
  site=$(SCHEME=http PORT=${SERVE_PORTS[1]} api /xos/sites/?login_base=mysite | jq_ 'd[0]["id"]')
  SCHEME=http PORT=${SERVE_PORTS[1]} api /xos/slices/ >/dev/null
  id=$(SCHEME=http PORT=${SERVE_PORTS[0]} api "/xos/slices/?no_hyperlinks=1" -X POST -H 'Content-Type: application/json' \
        -d "{\"name\": \"mysite_production\", \"site\": $site}" | jq_ 'd["id"]')
  [ -n "$id" ] || fail "cannot create a slice through the first server"
  seen() { SCHEME=http PORT=${SERVE_PORTS[1]} api "/xos/slices/?name=mysite_production" | jq_ 'len(d)' | grep -qx 1; }
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
  for port in "$NGINX_PORT" "$NGINX_HTTP_PORT" "${SERVE_PORTS[@]}" $(seq $((METRICS_BASE + 1)) $((METRICS_BASE + SYNC_WORKERS))); do
    [ "$(http_code "http://127.0.0.1:$port/login")" = 000 ] || fail "something still answers on $port after stop"
  done
  psql_ -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  psql_ -d postgres -c "DROP ROLE IF EXISTS $db"
  rm -rf "$DATA"
  echo "configuration production: ok (nginx with TLS, 2 servers, $SYNC_WORKERS sync workers, Postgres as its own role)"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  check) cmd_check ;;
  *) echo "usage: run.sh start|stop|check" >&2; exit 2 ;;
esac
