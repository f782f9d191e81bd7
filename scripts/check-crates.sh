#!/usr/bin/env bash
# The crate boundaries, checked with `cargo tree` (no build): the synchronizer runtime knows no
# backend, service, web server or UI; a backend knows no web server, UI or other backend; the
# core crates know no backend. Prints each violation and fails on any.
set -euo pipefail
cd "$(dirname "$0")/.."

# deps CRATE: the normal (non-dev, non-build) dependencies of CRATE, one name per line.
deps() {
    cargo tree -q -p "$1" -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u
}

failed=0
# forbid CRATE PATTERN WHY
forbid() {
    local found
    found=$(deps "$1" | grep -E "^($2)\$" | grep -vx "$1" || true)
    if [[ -n "$found" ]]; then
        echo "crate $1 depends on $(echo "$found" | paste -sd, -): $3" >&2
        failed=1
    fi
}

web='axum|leptos|leptos_axum|leptos_router|leptos_meta|tower-sessions|app|server|frontend'
backends='backend-kit|backend-local|backend-ec2|backend-openstack'

services='xos-services|service-[a-z0-9-]+'
for core in registry store tosca synchronizer xos-service; do
    forbid "$core" "$backends|$services|$web" "a core crate knows no backend, no service and no web layer"
done
# Without its `server` feature a service crate is its models and nothing else (what the
# TOSCA engine and the docs read).
for s in $(ls services | grep -v catalog); do
    forbid "service-$s" "tokio|sqlx|store|synchronizer|$backends|$web" "a service's model part is wasm-safe"
done
# The browser's bundle is the islands: no service, no router, no server; the models reach it as
# JSON in the page.
forbid frontend "$services|leptos_router|leptos_meta|leptos_axum|axum|server|tokio|sqlx" "the bundle holds the islands only"
for b in backend-kit backend-local backend-ec2 backend-openstack; do
    forbid "$b" "$web" "a backend knows no web server or UI"
done
forbid backend-kit "backend-local|backend-ec2|backend-openstack" "the kit is below every backend"
forbid backend-local "backend-ec2|backend-openstack" "backends are independent"
forbid backend-ec2 "backend-local|backend-openstack" "backends are independent"
forbid backend-openstack "backend-local|backend-ec2" "backends are independent"
# The store's and the TOSCA crate's tests build without the layers above them: their
# dev-dependencies too know no runtime, backend, service or web crate.
for core in store tosca; do
    found=$(cargo tree -q -p "$core" -e normal,dev --prefix none --format '{p}' | awk '{print $1}' | sort -u |
        grep -E "^(synchronizer|xos-service|$backends|$services|$web)\$" || true)
    if [[ -n "$found" ]]; then
        echo "crate $core (with its tests) depends on $(echo "$found" | paste -sd, -): its tests need the store only" >&2
        failed=1
    fi
done
# The tests' helpers (a dev-dependency of any crate) sit below everything: tokio and nothing else.
direct=$(cargo tree -q -p testkit -e normal --depth 1 --prefix none --format '{p}' | awk '{print $1}' | grep -vx testkit | sort -u)
if [[ "$direct" != "tokio" ]]; then
    echo "crate testkit depends on $(echo "$direct" | paste -sd, -): it may depend on tokio only" >&2
    failed=1
fi

if [[ $failed -ne 0 ]]; then
    exit 1
fi
echo "crate boundaries hold: runtime $(deps synchronizer | wc -l) deps, no backend, service or web crate"
