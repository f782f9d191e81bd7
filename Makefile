# XOS: build, run and test. Two commands set up everything on a fresh machine:
#   make run    build, migrate, seed and serve the devel configuration on http://127.0.0.1:8000
#   make test   every test (format, lints, unit and integration tests on SQLite and Postgres,
#               browser tests in Chromium)
# Tools that are missing are installed (wasm32 target, wasm-bindgen-cli pinned to Cargo.lock,
# npm packages, Debian's chromium); tools that are present are left alone.

SHELL := /bin/bash
.DEFAULT_GOAL := run
.DELETE_ON_ERROR:

# Build cache outside the clone, kept between runs (a fresh machine starts cold).
export CARGO_TARGET_DIR ?= $(HOME)/.cache/xos/target
CARGO_JOBS ?= -j2
CONFIG ?= devel
PORT ?= 8000
export PORT

WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/version = "\(.*\)"/\1/p;}' Cargo.lock)
SITE := $(CARGO_TARGET_DIR)/site
WASM_OUT := $(CARGO_TARGET_DIR)/wasm32-unknown-unknown/wasm-release/frontend.wasm
XOS_RELEASE := $(CARGO_TARGET_DIR)/release/xos
XOS_DEBUG := $(CARGO_TARGET_DIR)/debug/xos
export XOS_SITE_ROOT := $(SITE)
TIMED := scripts/timed
NODE_STAMP := end2end/node_modules/.installed

PHONY_EXTRA := assets bench wrk
.PHONY: run dev build frontend server deps toolchain node-deps chromium test fmt-check clippy unit e2e \
        wasm-size clean $(PHONY_EXTRA)

## ---- set-up ------------------------------------------------------------------------------

deps: toolchain node-deps

toolchain:
	@command -v cargo >/dev/null || { echo "cargo is required (rustup)"; exit 1; }
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@if [ "$$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $(WASM_BINDGEN_VERSION)" ]; then \
	  echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (matches Cargo.lock)"; \
	  cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); \
	fi

node-deps: $(NODE_STAMP)
$(NODE_STAMP): end2end/package.json end2end/package-lock.json
	cd end2end && npm ci --no-audit --no-fund
	touch $@

# Debian's chromium for the browser tests (Playwright's own browser download is not used).
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y chromium || { $$SUDO apt-get update && $$SUDO apt-get install -y chromium; }; }

## ---- build ---------------------------------------------------------------------------------

# The wasm bundle: cargo (wasm-release profile), wasm-bindgen, then npm binaryen's wasm-opt
# (Debian's wasm-opt breaks hydration). Also copies the CSS and favicon into the site root.
frontend: toolchain node-deps
	cargo build $(CARGO_JOBS) -p frontend --lib --target wasm32-unknown-unknown --profile wasm-release
	@$(MAKE) --no-print-directory $(SITE)/pkg/frontend_bg.wasm
	@$(MAKE) --no-print-directory assets

# CSS, favicon and the browser libraries vendored from the npm registry (Swagger UI for /docs/).
assets: node-deps
	@mkdir -p $(SITE)/pkg $(SITE)/vendor/swagger-ui
	@cp style/xos.css $(SITE)/pkg/xos.css
	@cp public/favicon.ico $(SITE)/favicon.ico
	@cp end2end/node_modules/swagger-ui-dist/swagger-ui-bundle.js end2end/node_modules/swagger-ui-dist/swagger-ui.css \
	  end2end/node_modules/swagger-ui-dist/LICENSE $(SITE)/vendor/swagger-ui/
	@mkdir -p $(SITE)/static/js/vendor
	@cp end2end/node_modules/jquery/dist/jquery.min.js end2end/node_modules/underscore/underscore-min.js \
	  end2end/node_modules/backbone/backbone.js $(SITE)/static/js/vendor/

# Leptos's hydration script loads `<output>_bg.wasm` when the server is not built by cargo-leptos.
$(SITE)/pkg/frontend_bg.wasm: $(WASM_OUT)
	@mkdir -p $(SITE)/pkg
	wasm-bindgen --target web --out-dir $(SITE)/pkg --out-name frontend $(WASM_OUT)
	end2end/node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int $@ -o $@

server:
	cargo build $(CARGO_JOBS) -p server --release

build: frontend server

wasm-size: frontend
	@raw=$$(stat -c %s $(SITE)/pkg/frontend_bg.wasm); gz=$$(gzip -9 -c $(SITE)/pkg/frontend_bg.wasm | wc -c); \
	  echo "wasm bundle: $$raw bytes raw, $$gz bytes gzip -9"

## ---- run -----------------------------------------------------------------------------------

# Serve the chosen configuration (release build) in the foreground; Ctrl-C stops it.
run: build
	$(XOS_RELEASE) --config configurations/$(CONFIG)/xos.toml serve

# Faster loop for UI work: debug server build, same wasm bundle.
dev: frontend
	cargo build $(CARGO_JOBS) -p server
	$(XOS_DEBUG) --config configurations/$(CONFIG)/xos.toml serve

## ---- test ----------------------------------------------------------------------------------

test: deps chromium
	@rm -f $(CARGO_TARGET_DIR)/timings.txt
	@export XOS_TIMINGS=$(CARGO_TARGET_DIR)/timings.txt; \
	$(TIMED) fmt $(MAKE) --no-print-directory fmt-check && \
	$(TIMED) clippy $(MAKE) --no-print-directory clippy && \
	$(TIMED) unit+integration $(MAKE) --no-print-directory unit && \
	$(TIMED) frontend $(MAKE) --no-print-directory frontend && \
	$(TIMED) end2end $(MAKE) --no-print-directory e2e
	@echo "all tests passed"; cat $(CARGO_TARGET_DIR)/timings.txt

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy $(CARGO_JOBS) -p server -p app --all-targets -- -D warnings
	cargo clippy $(CARGO_JOBS) -p frontend --target wasm32-unknown-unknown -- -D warnings

# Unit tests and the REST/store/session integration tests, each on SQLite and on Postgres
# (127.0.0.1:5432, database `test`; XOS_REQUIRE_POSTGRES=1 makes an unreachable server a failure).
unit:
	cargo test $(CARGO_JOBS) -p server -p app

# Browser tests: the debug `xos` binary the integration tests built, the release wasm bundle.
e2e: node-deps chromium
	cargo build $(CARGO_JOBS) -p server
	cd end2end && XOS_BIN=$(XOS_DEBUG) XOS_SITE_ROOT=$(SITE) npm test

## ---- benchmarks (not part of `make test`) ------------------------------------------------

wrk:
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y wrk || { $$SUDO apt-get update && $$SUDO apt-get install -y wrk; }; }

# REST throughput and latency on SQLite and Postgres against a no-database ceiling.
bench: frontend server wrk chromium
	scripts/bench.sh

clean:
	cargo clean
