#!/usr/bin/env bash
# Start the single-process configurations as `make run` does (scripts/xosctl), each on a
# temporary data directory and its own port, exercise them through the API, and stop them.
#
#   XOS_BIN=target/debug/xos scripts/test-configurations.sh [devel] [frontend-only] [openstack] [cdn] [storage]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${XOS_BIN:?set XOS_BIN to the xos binary}
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(devel frontend-only)
. scripts/lib.sh

config=""
fail() {
  echo "FAIL ($config): $*" >&2
  scripts/xosctl logs "$config" >&2 || true
  scripts/xosctl stop "$config" "$BIN" >/dev/null 2>&1 || true
  exit 1
}
instance_enacted() { api "/xos/instances/?name=demo-1" | jq_ 'd[0]["backend_status"]' | grep -q '^1 - OK'; }
tenant_enacted() { api "/xos/helloworldtenants/?name=hello-tenant" | jq_ 'd[0]["backend_status"]' | grep -q '^1 - OK'; }

# The rows of the seed that are still "0 - …" (pending), one per line: collections given.
pending_rows() {
  local m
  for m in "$@"; do
    api "/xos/$m/?no_hyperlinks=1" \
      | jq_ '"\n".join("'"$m"' %s: %s" % (o["id"], o["backend_status"]) for o in d if o["backend_status"].startswith("0 -")) or None'
  done
}
SEEDED="sites slices users controllers controllersites controllerslices controllerusers instances"
none_pending() { [ -z "$(pending_rows $SEEDED)" ]; }

test_devel() {
  # Every seeded Site, Slice, User, Controller, controller link row and instance tells its real
  # state within 10 s of the server answering (none stays "Provisioning in progress").
  eventually 10 none_pending || fail "rows still pending 10 s after start: $(pending_rows $SEEDED)"
  api "/xos/slices/?name=mysite_demo" | jq_ 'd[0]["backend_status"]' | grep -q '^1 - OK, slice directory' \
    || fail "the demo slice does not tell its state: $(api '/xos/slices/?name=mysite_demo')"
  eventually 60 instance_enacted || fail "instance demo-1 was not enacted: $(api '/xos/instances/?name=demo-1')"
  local pid
  pid=$(api "/xos/instances/?name=demo-1" | jq_ 'd[0]["instance_id"]')
  alive "$pid" || fail "the instance's process $pid does not run"
  eventually 60 tenant_enacted || fail "the HelloWorld tenant was not enacted"
  local port
  port=$(api "/xos/helloworldtenants/?name=hello-tenant" | jq_ 'd[0]["port"]')
  [ "$(curl -s "http://127.0.0.1:$port/")" = "Hello World!" ] || fail "the tenant does not serve its message on $port"
  # A restart re-applies the recipes as no-ops and adopts the running processes.
  scripts/xosctl stop "$config" >/dev/null
  scripts/xosctl start "$config" "$BIN" >/dev/null || fail "restart"
  grep -q 'applied the configuration.s TOSCA recipes.*created.*=.*0.*updated.*=.*0' "$XOS_DATA/logs/$config.log" \
    || fail "the second start changed objects"
  [ "$(api "/xos/instances/?name=demo-1" | jq_ 'd[0]["instance_id"]')" = "$pid" ] || fail "the instance was restarted"
  scripts/xosctl stop "$config" "$BIN" >/dev/null
  ! alive "$pid" || fail "make stop left the instance's process $pid running"
  ! curl -s "http://127.0.0.1:$port/" >/dev/null || fail "make stop left the tenant's server running"
}

test_frontend_only() {
  api "/xos/slices/?name=princeton_web" | jq_ 'len(d)' | grep -qx 1 || fail "the sample recipe was not loaded"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -u pi@princeton.edu:princeton-pi "http://127.0.0.1:$PORT/xos/slices/")" = 200 ] \
    || fail "the sample PI cannot log in"
  local site id
  site=$(api "/xos/sites/?login_base=mysite" | jq_ 'd[0]["id"]')
  id=$(api "/xos/slices/?no_hyperlinks=1" -X POST -H 'Content-Type: application/json' \
        -d "{\"name\": \"mysite_frontend\", \"site\": $site}" | jq_ 'd["id"]')
  [ -n "$id" ] || fail "cannot create a slice"
  sleep 2
  api "/xos/slices/$id/" | jq_ 'd["backend_status"]' | grep -q '^0 - ' || fail "something enacted the slice"
  grep -q "synchronizer running" "$XOS_DATA/logs/$config.log" && fail "a synchronizer runs"
  [ "$(api "/xos/slices/$id/" -X DELETE -o /dev/null -w '%{http_code}')" = 204 ] || fail "delete"
  [ "$(api "/xos/slices/$id/" -o /dev/null -w '%{http_code}')" = 404 ] || fail "the slice is still there"
  scripts/xosctl stop "$config" "$BIN" >/dev/null
}

# The openstack configuration against the stack of `make openstack` (which `make test-configurations` runs).
os_active() { api "/xos/instances/?name=os-demo-1" | jq_ 'd[0]["backend_status"]' | grep -q '^1 - OK: ACTIVE'; }
# What OpenStack itself holds (Keystone's projects named $1, Nova's servers in them), as admin.
os_count() {
  python3 - "$1" <<'PY'
import json, sys, urllib.request
def call(url, body=None, token=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                 headers={'Content-Type': 'application/json', **({'X-Auth-Token': token} if token else {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers.get('X-Subject-Token'), json.load(r)
token, _ = call('http://127.0.0.1:5000/v3/auth/tokens', {'auth': {'identity': {'methods': ['password'], 'password': {'user': {
    'name': 'admin', 'domain': {'id': 'default'}, 'password': 'adminpass'}}}, 'scope': {'project': {'name': 'admin', 'domain': {'id': 'default'}}}}})
_, projects = call('http://127.0.0.1:5000/v3/projects?name=' + sys.argv[1], token=token)
ids = {p['id'] for p in projects['projects']}
_, servers = call('http://127.0.0.1:8774/v2.1/servers/detail?all_tenants=1', token=token)
live = [s for s in servers['servers'] if s['tenant_id'] in ids and s['status'] != 'DELETED']
print(len(ids), len(live))
PY
}
os_slice_gone() { [ "$(os_count mysite_openstack)" = "0 0" ]; }
test_openstack() {
  eventually 180 os_active || fail "instance os-demo-1 did not become ACTIVE: $(api '/xos/instances/?name=os-demo-1')"
  local ip ctl
  ip=$(api "/xos/instances/?name=os-demo-1" | jq_ 'd[0]["ip"]')
  [[ "$ip" == 10.* ]] || fail "the instance has no address on its private network: $ip"
  ctl=$(api "/xos/controllers/?name=openstack-controller" | jq_ 'd[0]["backend_status"]')
  [[ "$ctl" == "1 - OK, logged in"* ]] || fail "the controller says: $ctl"
  api "/xos/ports/?no_hyperlinks=1" | jq_ 'd[0]["port_id"]' | grep -q . || fail "the port was not enacted"
  # The Developer view's figures count the instance and its site.
  local info
  info=$(api "/xoslib/slicesplus/?name=mysite_openstack")
  echo "$info" | jq_ 'd[0]["sliceInfo"]["instanceCount"]' | grep -qx 1 || fail "Developer view instance count: $info"
  echo "$info" | jq_ 'd[0]["sliceInfo"]["siteCount"]' | grep -qx 1 || fail "Developer view site count: $info"
  # Deleting the slice takes its server, port, network and project away.
  local slice
  slice=$(api "/xos/slices/?name=mysite_openstack" | jq_ 'd[0]["id"]')
  [ "$(api "/xos/slices/$slice/" -X DELETE -o /dev/null -w '%{http_code}')" = 204 ] || fail "delete the slice"
  [ "$(os_count mysite_openstack)" = "1 1" ] || fail "OpenStack should hold the slice's project and server: $(os_count mysite_openstack)"
  eventually 120 os_slice_gone || fail "the slice's project and server were not removed from OpenStack: $(os_count mysite_openstack)"
  scripts/xosctl stop "$config" "$BIN" >/dev/null
}

# The cdn configuration: DNS answers a cache, the cache serves the origin's bytes (MISS, then
# HIT), make stop stops caches and DNS server. Its fixed ports (8880, 8890, 5353) must be free.
cdn_answers() { dig @127.0.0.1 -p 5353 cdn.example.org A +short +time=1 +tries=1 2>/dev/null | grep -qE '^[0-9]+(\.[0-9]+){3}$'; }
test_cdn() {
  eventually 60 cdn_answers || fail "DNS does not answer cdn.example.org: $(api '/xos/requestrouterservices/')"
  local addr
  addr=$(dig @127.0.0.1 -p 5353 cdn.example.org A +short +time=1 +tries=1 | grep -E '^[0-9]+(\.[0-9]+){3}$' | head -1)
  local one two
  one=$(curl -s -D - -o /dev/null --resolve "cdn.example.org:8880:$addr" http://cdn.example.org:8880/config-test | tr -d '\r' | sed -n 's/^X-Cache-Status: //p')
  two=$(curl -s -D - -o /dev/null --resolve "cdn.example.org:8880:$addr" http://cdn.example.org:8880/config-test | tr -d '\r' | sed -n 's/^X-Cache-Status: //p')
  [ "$one $two" = "MISS HIT" ] || fail "the cache at $addr answered '$one' then '$two', not MISS then HIT"
  scripts/xosctl stop "$config" "$BIN" >/dev/null
  ! cdn_answers || fail "make stop left the DNS server running"
  ! curl -s -o /dev/null "http://$addr:8880/" || fail "make stop left the cache at $addr running"
}

# The storage configuration against the Garage node of `make garage`: the slice's instance
# writes and reads a file in the sample volume through S3 with the credentials XOS delivered.
# Its buckets and keys carry a prefix of this run's own; deleting the volume removes them.
storage_probed() {
  local id
  id=$(api "/xos/instances/?name=storage-1&no_hyperlinks=1" | jq_ 'd[0]["id"]')
  grep -q 'syndicate-probe: wrote and read s3://' "$XOS_DATA/instances/$id.log" 2>/dev/null
}
volume_gone() { api "/xos/volumes/?name=sample" | jq_ 'len(d)' | grep -qx 0; }
test_storage() {
  eventually 90 storage_probed || fail "the instance did not write and read its volume: $(api '/xos/volumeslices/') $(cat "$XOS_DATA"/instances/*.log)"
  local vol
  vol=$(api "/xos/volumes/?name=sample&no_hyperlinks=1" | jq_ 'd[0]["id"]')
  [ "$(api "/xos/volumes/$vol/" -X DELETE -o /dev/null -w '%{http_code}')" = 204 ] || fail "delete the volume"
  eventually 60 volume_gone || fail "the volume's bucket was not removed: $(api "/xos/volumes/?name=sample")"
  scripts/xosctl stop "$config" "$BIN" >/dev/null
}

export XOS_GARAGE_PREFIX="cfg$$"
port=8791
for config in "${configs[@]}"; do
  XOS_DATA=$(mktemp -d "${TMPDIR:-/tmp}/xos-config-$config.XXXXXX")
  chmod 711 "$XOS_DATA"  # the local backend's workloads run as nobody when we are root
  export XOS_DATA PORT=$port
  port=$((port + 1))
  start=$(date +%s)
  scripts/xosctl start "$config" "$BIN" >/dev/null || fail "did not start"
  case "$config" in
    devel) test_devel ;;
    frontend-only) test_frontend_only ;;
    openstack) test_openstack ;;
    cdn) test_cdn ;;
    storage) test_storage ;;
    *) fail "no test for this configuration" ;;
  esac
  rm -rf "$XOS_DATA"
  echo "configuration $config: ok ($(( $(date +%s) - start )) s)"
done
