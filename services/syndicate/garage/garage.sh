#!/bin/bash
# garage.sh start|stop|env - one Garage node on loopback for the Syndicate storage service.
#
# start: writes $BASE/garage.toml (SQLite metadata, replication 1, loopback ports), a generated
#        RPC secret and admin token in files only their owner may read, starts the node, waits
#        for its admin API, and gives the node a role in the layout when it has none. Idempotent:
#        a running node is left alone.
# stop:  stops the node by its PID file (--purge also deletes its data).
# env:   prints the settings XOS reads (XOS_GARAGE_ADMIN_URL, …), for `eval`.
#
# GARAGE (the binary), BASE (~/.cache/xos/garage-node), GARAGE_PORT_BASE (3900: S3, +1 RPC,
# +3 admin).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${BASE:-$HOME/.cache/xos/garage-node}
GARAGE=${GARAGE:-${XOS_GARAGE:-$HOME/.cache/xos/garage/bin/garage}}
P=${GARAGE_PORT_BASE:-3900}
S3_PORT=$P; RPC_PORT=$((P + 1)); ADMIN_PORT=$((P + 3))
CONF=$BASE/garage.toml

secret_file() { # name bytes: a random hex secret, made once, readable by its owner only
  local f=$BASE/$1
  if [ ! -s "$f" ]; then
    (umask 077; od -An -tx1 -N"$2" /dev/urandom | tr -d ' \n' >"$f")
  fi
  chmod 600 "$f"
}

admin() { # method path [body]
  curl -sf -X "$1" -H "Authorization: Bearer $(cat "$BASE/admin_token")" \
    -H 'Content-Type: application/json' ${3:+--data "$3"} "http://127.0.0.1:$ADMIN_PORT$2"
}

running() { [ -f "$BASE/garage.pid" ] && kill -0 "$(cat "$BASE/garage.pid")" 2>/dev/null; }

cmd_start() {
  [ -x "$GARAGE" ] || { echo "garage is not installed at $GARAGE (make garage-install)" >&2; exit 1; }
  mkdir -p "$BASE/meta" "$BASE/data"
  chmod 700 "$BASE"
  secret_file rpc_secret 32
  secret_file admin_token 32
  cat >"$CONF" <<EOF
metadata_dir = "$BASE/meta"
data_dir = "$BASE/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret_file = "$BASE/rpc_secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
admin_token_file = "$BASE/admin_token"
EOF
  chmod 600 "$CONF"
  if ! running; then
    nohup "$GARAGE" -c "$CONF" server >"$BASE/garage.log" 2>&1 &
    echo $! >"$BASE/garage.pid"
  fi
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$ADMIN_PORT/health" >/dev/null 2>&1 && break
    # /health answers 503 until the layout has a role: the status call is enough to go on.
    admin GET /v2/GetClusterStatus >/dev/null 2>&1 && break
    running || { echo "garage exited:" >&2; tail -n 20 "$BASE/garage.log" >&2; exit 1; }
    sleep 0.1
  done
  local status id version
  status=$(admin GET /v2/GetClusterStatus)
  id=$(python3 -c 'import json,sys; n=[n for n in json.load(sys.stdin)["nodes"] if not n.get("role")]; print(n[0]["id"] if n else "")' <<<"$status")
  if [ -n "$id" ]; then
    admin POST /v2/UpdateClusterLayout "{\"roles\":[{\"id\":\"$id\",\"zone\":\"dc1\",\"capacity\":1000000000,\"tags\":[]}]}" >/dev/null
    version=$(admin GET /v2/GetClusterLayout | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
    admin POST /v2/ApplyClusterLayout "{\"version\":$((version + 1))}" >/dev/null
  fi
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$ADMIN_PORT/health" >/dev/null 2>&1 && { echo "garage is up (S3 127.0.0.1:$S3_PORT, admin 127.0.0.1:$ADMIN_PORT, $BASE)"; return; }
    sleep 0.1
  done
  echo "garage does not report healthy:" >&2; tail -n 20 "$BASE/garage.log" >&2; exit 1
}

cmd_stop() {
  if running; then
    kill "$(cat "$BASE/garage.pid")"
    for _ in $(seq 1 50); do running || break; sleep 0.1; done
    running && kill -9 "$(cat "$BASE/garage.pid")"
    echo "garage stopped"
  fi
  rm -f "$BASE/garage.pid"
  [ "${1:-}" = --purge ] && rm -rf "$BASE" && echo purged
  return 0
}

cmd_env() {
  echo "export XOS_GARAGE_ADMIN_URL=http://127.0.0.1:$ADMIN_PORT"
  echo "export XOS_GARAGE_ADMIN_TOKEN_FILE=$BASE/admin_token"
  echo "export XOS_GARAGE_S3_URL=http://127.0.0.1:$S3_PORT"
  echo "export XOS_GARAGE_REGION=garage"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) shift; cmd_stop "$@" ;;
  env) cmd_env ;;
  *) echo "usage: $0 start|stop [--purge]|env" >&2; exit 2 ;;
esac
