#!/bin/bash
# setup.sh - build and start a minimal, real OpenStack 2026.1 ("Gazpacho") control plane on 127.0.0.1
# for XOS's OpenStack synchronizer (`make openstack`); from the measured recipe of
# shared/reference/openstack, adapted: state under data/openstack, the venv cached under
# ~/.cache/xos, an already running stack is reused, and `openrc` is written for XOS.
#
#   Keystone, Glance (file store), Placement, Neutron (ML2, no agents), Nova (api, conductor, scheduler,
#   compute with the fake virt driver).  Everything from PyPI into one venv; MariaDB + RabbitMQ from Debian.
#
# Needs (already running on this machine kind; otherwise install/start them, see REPORT.md):
#   MariaDB on 127.0.0.1:3306 (root, empty password)   RabbitMQ on 127.0.0.1:5672 (guest/guest)
#
# Env knobs: BASE (state dir), VENV (venv path; reused when its stamp matches), DBP (database name prefix),
#            RABBIT_VHOST, NICE (command prefix, e.g. "nice -n 19" or "").
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${BASE:-$HERE/../../../data/openstack}
mkdir -p "$BASE"; BASE=$(cd "$BASE" && pwd)
VENV=${VENV:-$HOME/.cache/xos/openstack-venv}
DBP=${DBP:-xos_os_}
RABBIT_VHOST=${RABBIT_VHOST:-xos_openstack}
NICE=${NICE-nice -n 19}
PY=${PYTHON:-python3}
MYSQL="mysql -h 127.0.0.1 -u root"
DB="mysql+pymysql://root@127.0.0.1"
TRANSPORT="rabbit://guest:guest@127.0.0.1:5672/$RABBIT_VHOST"
PINS="keystone==29.1.0 glance==32.0.0 neutron==28.0.2 nova==33.0.2 openstack-placement==15.0.0 gunicorn PyMySQL python-openstackclient"

T0=$(date +%s.%N); TS=$T0
step() { local now; now=$(date +%s.%N); printf '[%6.1fs] (+%5.1fs) %s\n' "$(echo "$now-$T0" | bc)" "$(echo "$now-$TS" | bc)" "$*"; TS=$now; }
waitfor() { # url timeout
  local s; s=$(date +%s)
  until code=$(curl -s -o /dev/null -w '%{http_code}' "$1") && [ "$code" != 000 ] && [ "$code" -lt 500 ]; do
    [ $(( $(date +%s) - s )) -gt "${2:-120}" ] && { echo "TIMEOUT waiting for $1" >&2; return 1; }
    sleep 0.2
  done
}
# MariaDB and RabbitMQ (already running on these machines): started, or installed from Debian.
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
if ! $MYSQL -e 'SELECT 1' >/dev/null 2>&1; then
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || $SUDO apt-get install -y mariadb-server \
    || { $SUDO apt-get update && $SUDO apt-get install -y mariadb-server; }
  $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 1 150); do $MYSQL -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
  $MYSQL -e 'SELECT 1' >/dev/null || { echo "MariaDB does not answer on 127.0.0.1:3306" >&2; exit 1; }
fi
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  command -v rabbitmq-server >/dev/null || $SUDO apt-get install -y rabbitmq-server \
    || { $SUDO apt-get update && $SUDO apt-get install -y rabbitmq-server; }
  $SUDO rabbitmq-server -detached || true
  rabbitmqctl -q await_startup >/dev/null 2>&1 || sleep 10
fi

# Already running (every service's pid alive and Keystone answering): reuse it.
running() {
  for n in keystone glance placement neutron nova-api nova-conductor nova-scheduler nova-compute; do
    kill -0 "$(cat "$BASE/run/$n.pid" 2>/dev/null)" 2>/dev/null || return 1
  done
  curl -sf -o /dev/null http://127.0.0.1:5000/v3
}
if running && [ -f "$BASE/openrc" ]; then
  echo "OpenStack already running (state in $BASE); stop it with make openstack-stop"
  # The seed is idempotent: a stack started by an older recipe gets what was added since.
  PATH=$VENV/bin:$PATH python "$HERE/wait_and_seed.py" "$BASE" >/dev/null
  exit 0
fi
write_openrc() {
cat > "$BASE/openrc" <<EOF
export OS_AUTH_URL=http://127.0.0.1:5000/v3 OS_IDENTITY_API_VERSION=3 OS_REGION_NAME=RegionOne
export OS_USERNAME=admin OS_PASSWORD=adminpass OS_PROJECT_NAME=admin OS_USER_DOMAIN_ID=default OS_PROJECT_DOMAIN_ID=default
export OS_PROJECT_DOMAIN_NAME=Default OS_USER_DOMAIN_NAME=Default
EOF
}
# Another checkout's stack on the same ports, with the same admin: use it rather than fail.
if [ ! -f "$BASE/run/keystone.pid" ] && curl -sf -o /dev/null --max-time 5 -H 'Content-Type: application/json' \
     -d '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"id":"default"},"password":"adminpass"}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}' \
     http://127.0.0.1:5000/v3/auth/tokens \
   && curl -s -o /dev/null --max-time 5 http://127.0.0.1:8774/; then
  write_openrc
  echo "an OpenStack already answers on 127.0.0.1 with this stack's admin: using it"
  exit 0
fi
# A half-started stack (a crash, a killed set-up) is stopped first; the databases are made anew.
BASE=$BASE DBP=$DBP RABBIT_VHOST=$RABBIT_VHOST "$HERE/stop.sh" >/dev/null 2>&1 || true
for p in 5000 9292 8778 9696 8774; do
  if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$p/"; then
    echo "port $p is taken by something that is not this stack; stop it first" >&2; exit 1
  fi
done
mkdir -p "$BASE"/{etc,logs,run,wsgi,data} && cd "$BASE"

# ---------------------------------------------------------------- 1. venv
STAMP=$( (cat "$HERE/upper-constraints-2026.1.txt" "$HERE"/fakemech/pyproject.toml "$HERE"/fakemech/xos_fakemech/*.py; echo "$PINS $PY") | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$STAMP" ]; then
  rm -rf "$VENV"
  $NICE $PY -m venv "$VENV"
  mkdir -p "$(dirname "$VENV")"
  $NICE "$VENV/bin/pip" install -q -U pip==26.3 setuptools==84.2.1 wheel==0.48.0
  $NICE "$VENV/bin/pip" install -q -c "$HERE/upper-constraints-2026.1.txt" $PINS
  rm -rf "$BASE/fakemech-src" && cp -r "$HERE/fakemech" "$BASE/fakemech-src"   # keep the source tree clean
  $NICE "$VENV/bin/pip" install -q --no-build-isolation "$BASE/fakemech-src" && rm -rf "$BASE/fakemech-src"
  echo "$STAMP" > "$VENV/.stamp"
  step "venv built ($VENV)"
else
  step "venv reused ($VENV)"
fi
export PATH=$VENV/bin:$PATH

# ---------------------------------------------------------------- 2. databases, broker
for d in keystone glance placement neutron nova_api nova nova_cell0; do
  $MYSQL -e "DROP DATABASE IF EXISTS ${DBP}$d; CREATE DATABASE ${DBP}$d CHARACTER SET utf8mb4"
done
rabbitmqctl -q add_vhost "$RABBIT_VHOST" >/dev/null 2>&1 || true
rabbitmqctl -q set_permissions -p "$RABBIT_VHOST" guest '.*' '.*' '.*' >/dev/null
step "databases + rabbit vhost created"

# ---------------------------------------------------------------- 3. config files
mkdir -p etc/{keystone,glance,placement,nova,neutron/plugins/ml2} data/keystone \
         data/glance/{images,staging,tasks} data/nova/instances data/neutron
authopts() { # user -> keystoneauth password-plugin options
cat <<EOF
auth_url = http://127.0.0.1:5000
auth_type = password
project_domain_id = default
user_domain_id = default
region_name = RegionOne
project_name = service
username = $1
password = ${1}pass
EOF
}
authtoken() { echo "[keystone_authtoken]"; echo "www_authenticate_uri = http://127.0.0.1:5000"; echo "service_token_roles_required = True"; authopts "$1"; }

cat > etc/keystone/keystone.conf <<EOF
[DEFAULT]
use_stderr = True
[database]
connection = $DB/${DBP}keystone?charset=utf8mb4
[token]
provider = fernet
[fernet_tokens]
key_repository = $BASE/data/keystone/fernet-keys
[credential]
key_repository = $BASE/data/keystone/credential-keys
[identity]
# bcrypt cost: the default (12) makes every password check ~0.3 s; 4 is the minimum. Test only.
password_hash_rounds = 4
[cache]
# in-process cache: token validation drops from ~0.5 s to ~0.02 s per request (1 worker only!)
enabled = True
backend = dogpile.cache.memory
EOF

cp "$VENV/etc/glance/glance-api-paste.ini" etc/glance/
cat > etc/glance/glance-api.conf <<EOF
[DEFAULT]
use_stderr = True
enabled_backends = fs:file
[database]
connection = $DB/${DBP}glance?charset=utf8mb4
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $BASE/data/glance/images
[os_glance_staging_store]
filesystem_store_datadir = $BASE/data/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = $BASE/data/glance/tasks
$(authtoken glance)
[paste_deploy]
flavor = keystone
[oslo_concurrency]
lock_path = $BASE/data/glance/lock
EOF

cat > etc/placement/placement.conf <<EOF
[DEFAULT]
use_stderr = True
[placement_database]
connection = $DB/${DBP}placement?charset=utf8mb4
[api]
auth_strategy = keystone
$(authtoken placement)
EOF

cp "$VENV/etc/neutron/api-paste.ini" etc/neutron/
cat > etc/neutron/neutron.conf <<EOF
[DEFAULT]
use_stderr = True
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
transport_url = $TRANSPORT
state_path = $BASE/data/neutron
notify_nova_on_port_status_changes = True
notify_nova_on_port_data_changes = True
# no DHCP agents exist: do not try to schedule networks to them
dhcp_agent_notification = False
[database]
# Neutron's migrations are MySQL-only since 2025.2 (PostgreSQL fails in d553edeb540f)
connection = $DB/${DBP}neutron?charset=utf8mb4
$(authtoken neutron)
[nova]
$(authopts nova)
[oslo_concurrency]
lock_path = $BASE/data/neutron/lock
EOF
cat > etc/neutron/plugins/ml2/ml2_conf.ini <<EOF
[ml2]
type_drivers = flat,vlan,vxlan
project_network_types = vxlan
# fake_bind: tiny driver from ./fakemech, binds every port ACTIVE without agents
mechanism_drivers = fake_bind
extension_drivers = port_security
[ml2_type_flat]
flat_networks = public
[ml2_type_vlan]
network_vlan_ranges = physnet1:100:200
[ml2_type_vxlan]
vni_ranges = 1:1000
EOF

cp "$VENV/etc/nova/api-paste.ini" etc/nova/
nova_conf() { # $1 = with-db | no-db  (nova-compute must not have DB access)
cat <<EOF
[DEFAULT]
use_stderr = True
host = xos-compute1
my_ip = 127.0.0.1
transport_url = $TRANSPORT
# FakeDriverWithoutFakeNodes = FakeDriver (1000 vCPU, 800 GB RAM) with a stable node UUID kept in
# <state_path>/compute_id; plain fake.FakeDriver makes a new node UUID per process and then
# nova-compute refuses to restart ("No local node identity found").
compute_driver = fake.FakeDriverWithoutFakeNodes
state_path = $BASE/data/nova
instances_path = $BASE/data/nova/instances
# oslo.service waits up to 60 s by default on SIGTERM
graceful_shutdown_timeout = 5
[api]
auth_strategy = keystone
EOF
if [ "$1" = with-db ]; then cat <<EOF
[api_database]
connection = $DB/${DBP}nova_api?charset=utf8mb4
[database]
connection = $DB/${DBP}nova?charset=utf8mb4
EOF
fi
cat <<EOF
[wsgi]
api_paste_config = $BASE/etc/nova/api-paste.ini
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 2
[vnc]
enabled = False
[oslo_concurrency]
lock_path = $BASE/data/nova/lock
$(authtoken nova)
[service_user]
send_service_user_token = True
$(authopts nova)
[placement]
$(authopts placement)
[neutron]
$(authopts neutron)
[glance]
$(authopts glance)
EOF
}
nova_conf with-db > etc/nova/nova.conf
nova_conf no-db > etc/nova/nova-compute.conf

# WSGI entry points for gunicorn: the apps parse sys.argv with oslo.config, so hide gunicorn's argv
wsgi() { # file module envvar value
  printf 'import os, sys\nsys.argv = [sys.argv[0]]\nos.environ.setdefault(%s, %s)\nfrom %s import application  # noqa\n' \
    "'$3'" "'$4'" "$2" > "wsgi/$1.py"
}
wsgi keystone_app  keystone.wsgi.api       OS_KEYSTONE_CONFIG_FILES  "$BASE/etc/keystone/keystone.conf"
wsgi glance_app    glance.wsgi.api         OS_GLANCE_CONFIG_DIR      "$BASE/etc/glance"
wsgi placement_app placement.wsgi.api      OS_PLACEMENT_CONFIG_DIR   "$BASE/etc/placement"
wsgi neutron_app   neutron.wsgi.api        OS_NEUTRON_CONFIG_DIR     "$BASE/etc/neutron"
wsgi nova_api_app  nova.wsgi.osapi_compute OS_NOVA_CONFIG_DIR        "$BASE/etc/nova"
step "config files written"

# ---------------------------------------------------------------- 4. schema + keystone bootstrap (in parallel)
K="--config-file $BASE/etc/keystone/keystone.conf"
N="--config-file $BASE/etc/nova/nova.conf"
( $NICE keystone-manage $K db_sync &&
  $NICE keystone-manage $K fernet_setup --keystone-user root --keystone-group root &&
  $NICE keystone-manage $K credential_setup --keystone-user root --keystone-group root &&
  $NICE keystone-manage $K bootstrap --bootstrap-password adminpass --bootstrap-region-id RegionOne \
     --bootstrap-admin-url http://127.0.0.1:5000/v3/ --bootstrap-internal-url http://127.0.0.1:5000/v3/ \
     --bootstrap-public-url http://127.0.0.1:5000/v3/ ) > logs/keystone-manage.log 2>&1 & P1=$!
( $NICE glance-manage --config-file etc/glance/glance-api.conf db_sync &&
  $NICE placement-manage --config-file etc/placement/placement.conf db sync ) > logs/glance-placement-manage.log 2>&1 & P2=$!
$NICE neutron-db-manage --config-file etc/neutron/neutron.conf --config-file etc/neutron/plugins/ml2/ml2_conf.ini \
   upgrade heads > logs/neutron-db-manage.log 2>&1 & P3=$!
( $NICE nova-manage $N api_db sync &&
  $NICE nova-manage $N cell_v2 map_cell0 --database_connection "$DB/${DBP}nova_cell0?charset=utf8mb4" &&
  $NICE nova-manage $N cell_v2 create_cell --name cell1 &&
  $NICE nova-manage $N db sync ) > logs/nova-manage.log 2>&1 & P4=$!
wait $P1 || { tail logs/keystone-manage.log; exit 1; }
step "keystone db_sync + fernet + bootstrap"

# ---------------------------------------------------------------- 5. start services
declare -A LAUNCH
ready() { # name url : wait for the service and print its start-up time
  waitfor "$2" 180; printf '    %-10s answered %5.1fs after launch\n' "$1" "$(echo "$(date +%s.%N)-${LAUNCH[$1]}" | bc)"
}
gunicorn_start() { # name module port
  LAUNCH[$1]=$(date +%s.%N)
  $NICE gunicorn --no-control-socket --chdir "$BASE/wsgi" --bind "127.0.0.1:$3" --workers 1 --threads 4 \
    --timeout 300 --graceful-timeout 5 --pid "$BASE/run/$1.pid" "$2:application" > "logs/$1.log" 2>&1 < /dev/null &
}
gunicorn_start keystone keystone_app 5000
ready keystone http://127.0.0.1:5000/v3; step "keystone up"
write_openrc
$NICE python "$HERE/keystone_setup.py"; step "keystone service users/endpoints"

wait $P2 || { tail logs/glance-placement-manage.log; exit 1; }
gunicorn_start glance glance_app 9292
gunicorn_start placement placement_app 8778
wait $P3 || { tail logs/neutron-db-manage.log; exit 1; }
gunicorn_start neutron neutron_app 9696
wait $P4 || { tail logs/nova-manage.log; exit 1; }
step "all db schemas synced"
gunicorn_start nova-api nova_api_app 8774
for s in conductor scheduler; do
  $NICE nova-$s $N > logs/nova-$s.log 2>&1 < /dev/null & echo $! > run/nova-$s.pid
done
# nova-compute's first RPC call to the conductor is lost (and retried only after 10 s) if the
# conductor queue does not exist yet: wait until the conductor consumes its queue.
python - "$RABBIT_VHOST" <<'PYEOF'
import sys, time, amqp
c = amqp.Connection('127.0.0.1:5672', userid='guest', password='guest', virtual_host=sys.argv[1]); c.connect()
for _ in range(600):
    try:
        if c.channel().queue_declare('conductor', passive=True).consumer_count > 0: break
    except amqp.exceptions.NotFound:
        pass
    time.sleep(0.2)
else:
    sys.exit('nova-conductor did not start')
c.close()
PYEOF
$NICE nova-compute --config-file "$BASE/etc/nova/nova-compute.conf" > logs/nova-compute.log 2>&1 < /dev/null &
echo $! > run/nova-compute.pid
ready glance http://127.0.0.1:9292/; ready placement http://127.0.0.1:8778/
ready neutron http://127.0.0.1:9696/; ready nova-api http://127.0.0.1:8774/
step "glance, placement, neutron, nova-api up"

# ---------------------------------------------------------------- 6. wait for compute, seed basics
$NICE python "$HERE/wait_and_seed.py" "$BASE"
step "nova-compute registered + discovered; flavor, public net, image seeded"
echo "OpenStack ready: source $BASE/openrc (admin / adminpass, project admin); stop with make openstack-stop"
