# Helpers shared by the configuration scripts (sourced, not run).

ADMIN=${ADMIN:-padmin@vicci.org:letmein}

# The REST API as the admin: api PATH [curl options…] (PORT is the server's port; SCHEME
# http or https; CURL_OPTS e.g. the certificate to trust).
api() {
  # shellcheck disable=SC2086
  curl -s ${CURL_OPTS:-} -u "$ADMIN" "${SCHEME:-http}://127.0.0.1:$PORT$1" "${@:2}"
}

# Evaluate a Python expression over the JSON on standard input (`d` is the document).
jq_() { python3 -c 'import json,sys; d=json.load(sys.stdin); v=eval(sys.argv[1]); print("" if v is None else v)' "$1"; }

# Retry a command for up to $1 seconds.
eventually() {
  local secs=$1; shift
  for _ in $(seq 1 $((secs * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  return 1
}

# A process that runs (a zombie waiting for its parent to reap it does not).
alive() { [ -r "/proc/$1/stat" ] && ! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null; }
