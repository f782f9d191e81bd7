#!/usr/bin/env bash
# `make bash`: prepare the bash configuration's database (migrate, admin, the devel recipes) and
# start an interactive shell with `xos` on PATH and XOS_CONFIG set. Commands may also come on
# standard input (the configuration's test does that).
#
#   configurations/bash/shell.sh XOS_BINARY
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(realpath "${1:?usage: shell.sh XOS_BINARY}")
export XOS_CONFIG=$PWD/configurations/bash/xos.toml
mkdir -p "$(dirname "$BIN")/xos-bin"
# `xos` on PATH, whatever the build directory calls the binary.
ln -sf "$BIN" "$(dirname "$BIN")/xos-bin/xos"
export PATH="$(dirname "$BIN")/xos-bin:$PATH"
RUST_LOG=${RUST_LOG:-warn} xos setup >/dev/null
if [ -t 0 ]; then
  exec bash --noprofile --rcfile configurations/bash/bashrc -i
fi
# Commands from a pipe or a file: no prompt, no job control.
export RUST_LOG=${RUST_LOG:-warn}
exec bash --noprofile --norc -s
