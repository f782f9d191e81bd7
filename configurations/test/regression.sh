#!/usr/bin/env bash
# The test configuration's regression run, in the guide's two phases:
#
#   1. data model: every recipe in recipes/ plans as creates (--dry-run), applies, re-applies as
#      a no-op, deletes, deletes again as a no-op and applies again; every recipe in bad/ fails
#      with the errors its `# expect:` lines name and writes nothing.
#   2. synchronizer: `xos serve` with this configuration (embedded synchronizer, local backend);
#      recipes/sync.yaml is posted to the TOSCA endpoint and every object must be enacted (the
#      instances' processes run, the tenants serve their messages); a changed message is served;
#      a TOSCA delete stops everything.
#
# Usage: XOS_BIN=… configurations/test/regression.sh [sqlite|postgres]...  (default: sqlite,
# and postgres when a server answers on 127.0.0.1:5432). Exits non-zero at the first failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${XOS_BIN:?set XOS_BIN to the xos binary}
BIN=$(realpath "$BIN")
. scripts/lib.sh
HERE=configurations/test
export RUST_LOG=${RUST_LOG:-warn}

backends=("$@")
if [ ${#backends[@]} -eq 0 ]; then
  backends=(sqlite)
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then backends+=(postgres); fi
fi

phase=""
fail() { echo "FAIL [$backend, $phase]: $*" >&2; exit 1; }

# A fresh database for this backend: sets DATABASE_URL.
fresh_database() {
  local name=$1
  case "$backend" in
    sqlite) rm -f "$work/$name.db"*; export DATABASE_URL="sqlite://$work/$name.db" ;;
    postgres)
      local db="xos_regression_$name"
      PGOPTIONS='-c client_min_messages=warning' psql -h 127.0.0.1 -U postgres -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
      PGOPTIONS='-c client_min_messages=warning' psql -h 127.0.0.1 -U postgres -q -d postgres -c "CREATE DATABASE $db" >/dev/null
      export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" ;;
  esac
}

# The summary line of a plan must be exactly "$2" (e.g. "19 create").
expect_summary() {
  local what=$1 want=$2 out
  shift 2
  out=$("$BIN" tosca "$@") || fail "$what: xos tosca $* failed"
  [ "$(tail -n 1 <<<"$out")" = "$want" ] || fail "$what: expected '$want', got:
$out"
}

phase1() {
  phase="data model"
  fresh_database phase1
  local n
  for recipe in "$HERE"/recipes/*.yaml; do
    [ "$(basename "$recipe")" = sync.yaml ] && continue
    n=$(grep -c '^    [^ #][^:]*:$' "$recipe")
    expect_summary "$recipe dry run" "$n create (dry run: nothing written)" apply --dry-run "$recipe"
    expect_summary "$recipe apply" "$n create" apply "$recipe"
    expect_summary "$recipe re-apply" "$n unchanged" apply "$recipe"
    expect_summary "$recipe delete" "$n delete" delete "$recipe"
    expect_summary "$recipe delete again" "$n absent" delete "$recipe"
    expect_summary "$recipe apply after delete" "$n create" apply "$recipe"
    echo "  $recipe: $n nodes load, re-apply unchanged, delete, re-apply"
  done
  for recipe in "$HERE"/bad/*.yaml; do
    local err
    if err=$(cd "$HERE" && "$BIN" tosca apply "bad/$(basename "$recipe")" 2>&1 >/dev/null); then
      fail "$recipe was accepted"
    fi
    while IFS= read -r want; do
      grep -qF -- "$want" <<<"$err" || fail "$recipe: expected '$want' in:
$err"
    done < <(sed -n 's/^# expect: //p' "$recipe")
    echo "  $recipe: rejected as expected"
  done
  # Nothing of the bad recipes was written: the core recipe's objects are all still there, and
  # nothing else.
  expect_summary "after the bad recipes" "$(grep -c '^    [^ #][^:]*:$' "$HERE/recipes/core.yaml") unchanged" apply "$HERE/recipes/core.yaml"
}

tenant_field() { api "/xos/helloworldtenants/?name=$1" | jq_ "d[0][\"$2\"]"; }
all_enacted() {
  local statuses
  statuses=$(api "/xos/instances/?slice__name=syncsite_slice" | jq_ '"\n".join(o["backend_status"] for o in d)')
  statuses+=$'\n'$(api "/xos/helloworldtenants/" | jq_ '"\n".join(o["backend_status"] for o in d)')
  [ "$(grep -c '^1 - OK' <<<"$statuses")" = 4 ]
}
serves() { [ "$(curl -s "http://127.0.0.1:$1/")" = "$2" ]; }

phase2() {
  phase="synchronizer"
  export XOS_DATA=$work/serve
  mkdir -p "$XOS_DATA"
  fresh_database phase2
  export XOS_DATABASE_URL=$DATABASE_URL PORT=${TEST_PORT:-8790}
  scripts/xosctl start test "$BIN" >/dev/null || fail "xos serve did not start"
  trap 'scripts/xosctl stop test "$BIN" >/dev/null 2>&1 || true' EXIT
  local recipe body n
  n=$(grep -c '^    [^ #][^:]*:$' "$HERE/recipes/sync.yaml")
  recipe=$(python3 -c 'import json,sys; print(json.dumps({"recipe": open(sys.argv[1]).read()}))' "$HERE/recipes/sync.yaml")
  body=$(api /api/utility/tosca/run/ -X POST -H 'Content-Type: application/json' -d "$recipe")
  [ "$(jq_ 'd.get("summary")' <<<"$body")" = "$n create" ] || fail "the sync recipe: $body"
  eventually 90 all_enacted || fail "not everything was enacted:
$(api '/xos/instances/' | jq_ '[(o["name"], o["backend_status"]) for o in d]')
$(api '/xos/helloworldtenants/' | jq_ '[(o["name"], o["backend_status"]) for o in d]')"
  local pids port1 port2
  pids=$(api "/xos/instances/?slice__name=syncsite_slice" | jq_ '" ".join(o["instance_id"] for o in d)')
  for pid in $pids; do alive "$pid" || fail "instance process $pid does not run"; done
  port1=$(tenant_field sync-tenant-1 port); port2=$(tenant_field sync-tenant-2 port)
  serves "$port1" "Hello from the regression" || fail "tenant 1 does not serve its message on $port1"
  serves "$port2" "Hello again" || fail "tenant 2 does not serve its message on $port2"
  echo "  4 objects enacted: instance processes $pids, tenants on ports $port1 and $port2"
  # A changed message is served after the synchronizer's next pass, on the same port.
  local id
  id=$(tenant_field sync-tenant-1 id)
  api "/xos/helloworldtenants/$id/" -X PATCH -H 'Content-Type: application/json' \
    -d '{"display_message": "Changed"}' -o /dev/null
  eventually 30 serves "$port1" "Changed" || fail "the changed message is not served"
  echo "  a changed message is served on the same port"
  # Deleting the recipe stops everything it started.
  recipe=$(python3 -c 'import json,sys; print(json.dumps({"recipe": open(sys.argv[1]).read(), "action": "delete"}))' "$HERE/recipes/sync.yaml")
  body=$(api /api/utility/tosca/run/ -X POST -H 'Content-Type: application/json' -d "$recipe")
  [ "$(jq_ 'd.get("summary")' <<<"$body")" = "$n delete" ] || fail "the delete: $body"
  stopped() { for pid in $pids; do ! alive "$pid" || return 1; done; ! serves "$port1" Changed && ! serves "$port2" "Hello again"; }
  eventually 30 stopped || fail "deleted objects still run"
  echo "  a TOSCA delete stopped the instances and the tenants"
  scripts/xosctl stop test "$BIN" >/dev/null
  trap - EXIT
}

for backend in "${backends[@]}"; do
  work=$(mktemp -d "${TMPDIR:-/tmp}/xos-regression.XXXXXX")
  chmod 711 "$work"  # the local backend's workloads run as nobody when we are root
  start=$(date +%s)
  echo "regression on $backend"
  phase1
  phase2
  rm -rf "$work"
  echo "regression on $backend: ok ($(( $(date +%s) - start )) s)"
done
