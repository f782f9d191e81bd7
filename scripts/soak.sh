#!/usr/bin/env bash
# `make soak`: the release server with the devel configuration (SQLite, the synchronizer with the
# local backend, sample data) on a fresh database, and `xos soak` against it: SOAK_MINUTES
# (30) of mixed API traffic at half the capacity it measures first, plus instances created and
# deleted on the local backend. Prints requests, errors, p50/p99 latency and the server's RSS per
# minute, then the totals and the RSS growth from minute 5. Fails when a request failed.
set -euo pipefail
cd "$(dirname "$0")/.."
XOS=${XOS_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/xos/target}/release/xos}
XOS_DEV=${XOS_DEV_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/xos/target}/release/xos-dev}
MINUTES=${SOAK_MINUTES:-30}
WORK=$(mktemp -d /tmp/xos-soak.XXXXXX)
chmod 711 "$WORK"  # the local backend's workloads run as nobody when we are root
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

sed -e "s|^database_url = .*|database_url = \"sqlite://$WORK/xos.db\"|" \
    -e "s|^state_dir = .*|state_dir = \"$WORK/state\"|" \
    -e "s|^port = .*|port = $PORT|" \
    -e "s|^recipes = \[\"|recipes = [\"$PWD/configurations/devel/|" \
    -e "s|\", \"recipes/|\", \"$PWD/configurations/devel/recipes/|" \
    configurations/devel/xos.toml > "$WORK/xos.toml"

RUST_LOG=warn "$XOS" --config "$WORK/xos.toml" serve > "$WORK/server.log" 2>&1 &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  "$XOS" --config "$WORK/xos.toml" backend-stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 150); do
  curl -sf -o /dev/null -u padmin@vicci.org:letmein "http://127.0.0.1:$PORT/xos/instances/" && break
  sleep 0.2
done
status=0
"$XOS_DEV" soak --url "http://127.0.0.1:$PORT" --minutes "$MINUTES" --server-pid "$SERVER" ${SOAK_RATE:+--rate "$SOAK_RATE"} || status=$?
errors=$(grep -ci 'error' "$WORK/server.log" || true)
echo "server log: $errors lines mentioning an error ($WORK/server.log)"
exit $status
