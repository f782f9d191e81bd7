#!/usr/bin/env bash
# REST benchmark (`make bench`): a release `xos serve` on a fresh database with 100 slices,
# driven by Debian's wrk (one thread, 32 connections, pinned to one core; the server on the
# other), for: list /xos/slices/ (100 rows), get one slice, create+delete; on SQLite and
# Postgres. The ceiling is `xos-dev bench-ceiling`: the same cached basic-auth check answering the
# same bytes without a database. Prints req/s, p50 and p99 per case and the ratios to the ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."

XOS=${XOS_BIN:-$CARGO_TARGET_DIR/release/xos}
XOS_DEV=${XOS_DEV_BIN:-$CARGO_TARGET_DIR/release/xos-dev}
DURATION=${BENCH_SECONDS:-10}
CONN=32
AUTH="Authorization: Basic $(printf 'padmin@vicci.org:letmein' | base64)"
PG_URL=${XOS_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
WORK=$(mktemp -d /tmp/xos-bench.XXXXXX)
chmod 711 "$WORK"  # the local backend's workloads run as nobody when we are root
NCPU=$(nproc)
SERVER_CPU=0
LOAD_CPU=$(( NCPU > 1 ? 1 : 0 ))
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$PG_URL" -c "DROP SCHEMA IF EXISTS xos_bench CASCADE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_up() { # url: up, and the admin's credential verified once (so no run starts with argon2)
  for _ in $(seq 1 150); do curl -sf -o /dev/null -H "$AUTH" "$1" && return 0; sleep 0.2; done
  echo "server at $1 did not answer" >&2; return 1
}

# run_wrk NAME URL [LUA] -> prints "rps p50 p99" (latencies in ms)
run_wrk() {
  local out
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONN" -d"${DURATION}s" --latency -H "$AUTH" ${3:+-s "$3"} "$2")
  echo "$out" > "$WORK/$1.wrk"
  if grep -q "Non-2xx" <<<"$out"; then echo "bench $1: errors: $(grep Non-2xx <<<"$out")" >&2; fi
  awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps=$2 }
    $1=="50%" { p50=ms($2) }
    $1=="99%" { p99=ms($2) }
    END { printf "%.0f %.2f %.2f\n", rps, p50, p99 }' <<<"$out"
}

cat > "$WORK/create_delete.lua" <<'LUA'
-- Each create is followed by the delete of what it created: one pair = 2 requests.
local n, pending = 0, {}
wrk.headers["Content-Type"] = "application/json"
request = function()
  local id = table.remove(pending)
  if id then return wrk.format("DELETE", "/xos/slices/" .. id .. "/", nil, nil) end
  n = n + 1
  local body = string.format('{"name": "mysite_bench%d_%d", "site": SITE}', math.random(1, 1e9), n)
  return wrk.format("POST", "/xos/slices/?no_hyperlinks=1", nil, body)
end
response = function(status, headers, body)
  if status == 201 then
    local id = body:match('"id":(%d+)')
    if id then table.insert(pending, id) end
  end
end
LUA

RESULTS="$WORK/results.txt"
: > "$RESULTS"

bench_db() { # name database_url
  local name=$1 url=$2 port
  port=$(free_port)
  DATABASE_URL="$url" PORT=$port RUST_LOG=warn taskset -c "$SERVER_CPU" "$XOS" serve >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  local base="http://127.0.0.1:$port"
  wait_up "$base/xos/"
  local site
  site=$(curl -sf -H "$AUTH" "$base/xos/sites/?login_base=mysite&no_hyperlinks=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
  for i in $(seq 1 100); do
    curl -sf -o /dev/null -H "$AUTH" -H 'Content-Type: application/json' \
      -d "{\"name\": \"mysite_s$i\", \"site\": $site, \"description\": \"benchmark slice $i\"}" "$base/xos/slices/"
  done
  local one
  one=$(curl -sf -H "$AUTH" "$base/xos/slices/?name=mysite_s50&no_hyperlinks=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
  curl -sf -H "$AUTH" "$base/xos/slices/" > "$WORK/list.json"
  curl -sf -H "$AUTH" "$base/xos/slices/$one/" > "$WORK/one.json"
  sed "s/SITE/$site/" "$WORK/create_delete.lua" > "$WORK/cd.lua"
  echo "$name list $(run_wrk "$name-list" "$base/xos/slices/")" >> "$RESULTS"
  echo "$name get $(run_wrk "$name-get" "$base/xos/slices/$one/")" >> "$RESULTS"
  echo "$name create+delete $(run_wrk "$name-cd" "$base/" "$WORK/cd.lua")" >> "$RESULTS"
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
  # The ceiling answers the same bytes this database's server did.
  for body in list one; do
    local cport
    cport=$(free_port)
    RUST_LOG=warn taskset -c "$SERVER_CPU" "$XOS_DEV" bench-ceiling --body "$WORK/$body.json" --addr "127.0.0.1:$cport" >"$WORK/ceiling.log" 2>&1 &
    PIDS+=($!)
    wait_up "http://127.0.0.1:$cport/"
    echo "$name ceiling-$body $(run_wrk "$name-ceiling-$body" "http://127.0.0.1:$cport/xos/slices/")" >> "$RESULTS"
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
  done
  echo "  $name done ($(wc -c < "$WORK/list.json") bytes per list, $(wc -c < "$WORK/one.json") per slice)" >&2
}

# The UI: bundle size and first-page load time (release server, Chromium).
WASM="${XOS_SITE_ROOT:-$CARGO_TARGET_DIR/site}/pkg/frontend_bg.wasm"
if [ -f "$WASM" ]; then
  echo "wasm bundle: $(( $(stat -c %s "$WASM") / 1024 )) KB raw, $(( $(gzip -9 -c "$WASM" | wc -c) / 1024 )) KB gzip -9"
  (cd end2end && XOS_BIN="$XOS" XOS_SITE_ROOT="${XOS_SITE_ROOT:-$CARGO_TARGET_DIR/site}" node bench-load.mjs) || echo "first-page load: not measured"
fi
echo "XOS REST benchmark: wrk -t1 -c$CONN -d${DURATION}s (load on CPU $LOAD_CPU, server on CPU $SERVER_CPU), basic auth" >&2
bench_db sqlite "sqlite://$WORK/bench.db"
if psql -q "$PG_URL" -c "DROP SCHEMA IF EXISTS xos_bench CASCADE; CREATE SCHEMA xos_bench" >/dev/null 2>&1; then
  bench_db postgres "$PG_URL?options=-c%20search_path%3Dxos_bench"
else
  echo "  postgres: unreachable at $PG_URL, skipped" >&2
fi

# Synchronizer: change → enacted latency (no-op step), throughput for 10,000 objects, idle pass
# time at 1,000 and 100,000 enacted objects.
SYNC="$WORK/sync.txt"
: > "$SYNC"
echo "  synchronizer: sqlite" >&2
# Only the figures line: a log line (the Postgres event listener's shutdown warning) is not one.
echo "sqlite $(taskset -c "$SERVER_CPU" "$XOS_DEV" bench-sync --database-url "sqlite://$WORK/sync.db" | grep '^latency_')" >> "$SYNC"
if psql -q "$PG_URL" -c "DROP SCHEMA IF EXISTS xos_bench CASCADE; CREATE SCHEMA xos_bench" >/dev/null 2>&1; then
  echo "  synchronizer: postgres" >&2
  echo "postgres $(taskset -c "$SERVER_CPU" "$XOS_DEV" bench-sync --database-url "$PG_URL?options=-c%20search_path%3Dxos_bench" | grep '^latency_')" >> "$SYNC"
fi

python3 - "$RESULTS" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    db, case, rps, p50, p99 = line.split()
    rows[(db, case)] = (float(rps), float(p50), float(p99))
print(f"{'database':<9} {'case':<16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  vs ceiling")
for db in ("sqlite", "postgres"):
    if (db, "list") not in rows:
        continue
    for case, ceiling, goal in (("list", "ceiling-list", 0.30), ("get", "ceiling-one", 0.70),
                                ("create+delete", None, None), ("ceiling-list", None, None), ("ceiling-one", None, None)):
        rps, p50, p99 = rows[(db, case)]
        extra = ""
        if ceiling:
            ratio = rps / rows[(db, ceiling)][0]
            extra = f"  {ratio:5.1%} (goal {goal:.0%}: {'met' if ratio >= goal else 'MISSED'})"
        if case == "create+delete":
            extra = f"  ({rps/2:.0f} create+delete pairs/s)"
        print(f"{db:<9} {case:<16} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f}{extra}")
PY

python3 - "$SYNC" <<'PY'
import sys
print()
print(f"{'database':<9} {'latency p50':>12} {'p99':>8} {'objects/s':>10} {'idle pass (1k)':>15} {'idle (100k)':>12}")
for line in open(sys.argv[1]):
    db, *kv = line.split()
    f = dict(x.split("=") for x in kv)
    small = next(k for k in f if k.startswith("idle_") and k != "idle_100000_ms")
    p99 = float(f["latency_p99_ms"])
    tput = float(f["throughput_per_s"])
    print(f"{db:<9} {float(f['latency_p50_ms']):>9.2f} ms {p99:>5.2f} ms {tput:>10.0f} {float(f[small]):>12.2f} ms {float(f['idle_100000_ms']):>9.2f} ms"
          f"   goals: p99 <= 20 ms {'met' if p99 <= 20 else 'MISSED'}, >= 10000/s {'met' if tput >= 10000 else 'MISSED'}")
PY
