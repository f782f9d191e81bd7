#!/usr/bin/env bash
# schemathesis against our own /openapi.json, as the admin: every operation, with the checks
# not_a_server_error, status_code_conformance, content_type_conformance and
# response_schema_conformance; any failure fails the script.
#
#   ST_EXAMPLES=10 scripts/schemathesis.sh      (make test; make fuzz uses 100)
#
# The server is the debug binary on a fresh SQLite database on a free loopback port, without the
# synchronizer. Two things keep the run from destroying its own credentials: the admin's site is
# write-protected (deleting a site deletes its users, as in XOS), and the operations that change
# or delete users are left out (a generated PUT would change the admin's password); the store's
# tests cover those.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

XOS_BIN=${XOS_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/xos/target}/debug/xos}
ST=${ST:-$HOME/.cache/xos/st-venv/bin/st}
ST_EXAMPLES=${ST_EXAMPLES:-10}
WORK=$(mktemp -d /tmp/xos-schemathesis.XXXXXX)
chmod 711 "$WORK"  # the local backend's workloads run as nobody when we are root
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export PORT

cat > "$WORK/xos.toml" <<TOML
name = "schemathesis"
database_url = "sqlite://$WORK/xos.db"
bind = "127.0.0.1"
port = $PORT
synchronizer = "none"
model_policies = true
state_dir = "$WORK"

[bootstrap]
enabled = true
admin_email = "padmin@vicci.org"
admin_password = "letmein"
site_name = "MySite"
site_login_base = "mysite"
sample_data = false
TOML

RUST_LOG=info "$XOS_BIN" --config "$WORK/xos.toml" serve > "$WORK/server.log" 2>&1 &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
}
trap cleanup EXIT
eventually 30 curl -sf "http://127.0.0.1:$PORT/readyz" || { cat "$WORK/server.log"; exit 1; }
api /xos/sites/1/ -X PATCH -H 'Content-Type: application/json' -d '{"write_protect": true}' -f >/dev/null

echo "schemathesis: $ST_EXAMPLES examples per operation against http://127.0.0.1:$PORT/openapi.json"
status=0
"$ST" run "http://127.0.0.1:$PORT/openapi.json" -a "$ADMIN" \
  -c not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  -n "$ST_EXAMPLES" -w 1 --no-color ${ST_SEED:+--seed "$ST_SEED"} \
  --exclude-operation-id-regex '^(replaceUser|updateUser|deleteUser)$' > "$WORK/report.txt" 2>&1 || status=$?
sed -n '/SUMMARY/,$p' "$WORK/report.txt"
server_errors=$(grep -c 'status=5' "$WORK/server.log" || true)
requests=$(grep -c ' request ' "$WORK/server.log" || true)
echo "server: $requests requests, $server_errors answered 5xx"
if [ "$status" -ne 0 ] || [ "$server_errors" -ne 0 ]; then
  echo "schemathesis failed: full report in $WORK/report.txt, server log in $WORK/server.log"
  exit 1
fi
rm -rf "$WORK"
