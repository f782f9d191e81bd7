#!/bin/bash
# stop.sh [--purge] - stop the services started by setup.sh, by the PIDs in $BASE/run only:
# SIGTERM to each main process (and its worker children), SIGKILL whatever is left after 15 s
# (nova-scheduler's master ignores SIGTERM in its threading mode; a failed nova-compute may hang).
# --purge also drops the databases and the RabbitMQ vhost and deletes $BASE (the venv is elsewhere).
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${BASE:-$HERE/../../../data/openstack}; DBP=${DBP:-xos_os_}; RABBIT_VHOST=${RABBIT_VHOST:-xos_openstack}
[ -d "$BASE" ] || exit 0
pids=""
for f in "$BASE"/run/*.pid; do
  [ -e "$f" ] || continue
  pid=$(cat "$f"); kill -0 "$pid" 2>/dev/null || continue
  pids="$pids $pid $(pgrep -P "$pid" | tr '\n' ' ')"
  kill "$pid" 2>/dev/null && echo "stopping $(basename "$f" .pid) ($pid)"
done
for i in $(seq 1 75); do
  alive=""; for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
  [ -z "$alive" ] && break; sleep 0.2
done
[ -n "$alive" ] && { echo "SIGKILL:$alive"; kill -9 $alive 2>/dev/null; }
rm -f "$BASE"/run/*.pid
if [ "${1:-}" = --purge ]; then
  for d in keystone glance placement neutron nova_api nova nova_cell0; do
    mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS ${DBP}$d"
  done
  rabbitmqctl -q delete_vhost "$RABBIT_VHOST" 2>/dev/null
  find "$BASE" -mindepth 1 -maxdepth 1 ! -name venv -exec rm -rf {} +
  echo purged
fi
