#!/usr/bin/env bash
# The bash configuration's test: commands on the shell's standard input, their output checked.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${XOS_BIN:?set XOS_BIN to the xos binary}
work=$(mktemp -d "${TMPDIR:-/tmp}/xos-bash.XXXXXX")
chmod 711 "$work"  # the local backend's workloads run as nobody when we are root
trap 'XOS_STATE_DIR=$work "$BIN" --config configurations/bash/xos.toml backend-stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
export DATABASE_URL="sqlite://$work/bash.db" XOS_STATE_DIR=$work
out=$(configurations/bash/shell.sh "$BIN" 2>&1 <<'CMDS'
echo "config=$XOS_CONFIG"
command -v xos
xos list sites
xos list slices ordering=name
xos tosca apply --dry-run configurations/devel/recipes/devel.yaml
xos sync --once
xos list instances
xos list widgets || echo "exit status $?"
xos list slices colour=blue || echo "filter exit status $?"
exit
CMDS
) || { echo "FAIL: the shell exited with an error:"; echo "$out"; exit 1; }
expect() {
  grep -qF -- "$1" <<<"$out" || { echo "FAIL (bash configuration): expected '$1' in:"; echo "$out"; exit 1; }
}
expect "config=$PWD/configurations/bash/xos.toml"
expect "/xos-bin/xos"
expect "MySite"
expect "mysite_demo"
expect "mysite_helloworld"
expect "(3 slices)"
expect "10 unchanged (dry run: nothing written)"
expect "one pass: 8 enacted, 0 failed"  # the instance, the local controller and its six link rows
expect "demo-1  1 - OK, running as pid"
expect "no collection 'widgets'"
expect "exit status 1"
expect "'colour' is not a field of slices"
expect "filter exit status 1"
echo "configuration bash: ok"
