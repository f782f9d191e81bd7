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
XOS_DEV := $(CARGO_TARGET_DIR)/release/xos-dev
export XOS_SITE_ROOT := $(SITE)
# The host crates (the wasm crate `frontend` and the dev tools apart).
HOST_CRATES := -p registry -p store -p tosca -p synchronizer -p backend-kit -p backend-local -p backend-ec2 \
               -p backend-openstack -p xos-service -p xos-services -p service-helloworld \
               -p service-hpc -p service-requestrouter -p service-example -p service-syndicate -p app -p server -p testkit
TIMED := scripts/timed
NODE_STAMP := end2end/node_modules/.installed
WEB_STAMP := vendor/node_modules/.installed

PHONY_EXTRA := openstack openstack-stop bench-openstack assets bench wrk stop showlogs bash test-regression test-configurations production-check nginx moto \
               schemathesis-venv test-api-fuzz fuzz soak check-crates
PHONY_EXTRA += web-deps devtools dns garage-install garage garage-stop
.PHONY: run dev build frontend server deps toolchain node-deps chromium test fmt-check clippy test-rust test-browser \
        wasm-size clean $(PHONY_EXTRA)

## ---- set-up ------------------------------------------------------------------------------

deps: toolchain web-deps node-deps

toolchain:
	@command -v cargo >/dev/null || { echo "cargo is required (rustup)"; exit 1; }
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@if [ "$$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $(WASM_BINDGEN_VERSION)" ]; then \
	  echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (matches Cargo.lock)"; \
	  cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); \
	fi

# The browser tests' npm packages (playwright-core, axe-core).
node-deps: $(NODE_STAMP)
$(NODE_STAMP): end2end/package.json end2end/package-lock.json
	cd end2end && npm ci --no-audit --no-fund
	touch $@

# The build's npm packages: wasm-opt and the browser libraries XOS serves (`vendor/`).
web-deps: $(WEB_STAMP)
$(WEB_STAMP): vendor/package.json vendor/package-lock.json
	cd vendor && npm ci --no-audit --no-fund
	touch $@

# Debian's chromium for the browser tests (Playwright's own browser download is not used).
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y chromium || { $$SUDO apt-get update && $$SUDO apt-get install -y chromium; }; }

# moto_server (PyPI `moto[server]`, pinned), the EC2 API emulator the EC2 backend's tests run
# against, in a venv kept with the build cache.
MOTO_VENV ?= $(HOME)/.cache/xos/moto-venv
MOTO_VERSION := 5.2.5
export XOS_MOTO_SERVER := $(MOTO_VENV)/bin/moto_server
moto: $(MOTO_VENV)/.installed-$(MOTO_VERSION)
$(MOTO_VENV)/.installed-$(MOTO_VERSION):
	python3 -m venv $(MOTO_VENV)
	$(MOTO_VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)'
	touch $@

# Garage (crate `garage`, an S3 object store; AGPL, so a separate process, never linked), pinned,
# for the Syndicate storage service; built once into the tool cache (about 22 min on 2 cores).
GARAGE_VERSION := 2.5.0
GARAGE_ROOT ?= $(HOME)/.cache/xos/garage
export XOS_GARAGE := $(GARAGE_ROOT)/bin/garage
garage-install:
	@$(XOS_GARAGE) --version 2>/dev/null | grep -q 'cargo:$(GARAGE_VERSION) ' || { \
	  echo "building garage $(GARAGE_VERSION) from crates.io (about 22 minutes on 2 cores)"; \
	  cargo install garage --version $(GARAGE_VERSION) --locked $(CARGO_JOBS) --root $(GARAGE_ROOT) \
	    --target-dir $(GARAGE_ROOT)/target && rm -rf $(GARAGE_ROOT)/target; }

# One Garage node on loopback, one per machine (its data beside the tool cache, so every
# checkout uses the same node: SQLite metadata, generated RPC secret and admin token readable by
# their owner only, the layout applied); XOS reads where it is from these variables, which
# point it at an existing cluster instead when set (`external`).
GARAGE_DATA ?= $(HOME)/.cache/xos/garage-node
export XOS_GARAGE_ADMIN_URL ?= http://127.0.0.1:3903
export XOS_GARAGE_ADMIN_TOKEN_FILE ?= $(GARAGE_DATA)/admin_token
export XOS_GARAGE_S3_URL ?= http://127.0.0.1:3900
export XOS_GARAGE_REGION ?= garage
garage: garage-install
	@BASE=$(GARAGE_DATA) GARAGE=$(XOS_GARAGE) services/syndicate/garage/garage.sh start
garage-stop:
	@BASE=$(GARAGE_DATA) services/syndicate/garage/garage.sh stop

# schemathesis, pinned, for the API fuzzing in `make test` and `make fuzz`.
ST_VENV ?= $(HOME)/.cache/xos/st-venv
ST_VERSION := 4.32.5
schemathesis-venv: $(ST_VENV)/.installed-$(ST_VERSION)
$(ST_VENV)/.installed-$(ST_VERSION):
	python3 -m venv $(ST_VENV)
	$(ST_VENV)/bin/pip install --quiet --disable-pip-version-check 'schemathesis==$(ST_VERSION)'
	touch $@

# Debian's nginx for the production configuration (its service is not started: run.sh runs its
# own nginx on a loopback port), and openssl for its self-signed TLS certificate.
nginx:
	@command -v openssl >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y openssl || { $$SUDO apt-get update && $$SUDO apt-get install -y openssl; }; }
	@command -v nginx >/dev/null || { \
	  echo "installing Debian's nginx"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null; $$SUDO chmod +x /usr/sbin/policy-rc.d; guard=1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y nginx-light || { $$SUDO apt-get update && $$SUDO apt-get install -y nginx-light; }; \
	  status=$$?; if [ -n "$$guard" ]; then $$SUDO rm -f /usr/sbin/policy-rc.d; fi; exit $$status; }

## ---- build ---------------------------------------------------------------------------------

# The wasm bundle: cargo (wasm-release profile), wasm-bindgen, then npm binaryen's wasm-opt
# (Debian's wasm-opt breaks hydration). Also copies the CSS and favicon into the site root.
frontend: toolchain web-deps
	cargo build $(CARGO_JOBS) -p frontend --lib --target wasm32-unknown-unknown --profile wasm-release
	@$(MAKE) --no-print-directory $(SITE)/pkg/frontend_bg.wasm
	@$(MAKE) --no-print-directory assets

# CSS, favicon, the browser libraries vendored from the npm registry (Swagger UI for /docs/) and
# the services' static files (the server also serves those compiled in, for a run without this).
assets: web-deps
	@mkdir -p $(SITE)/pkg $(SITE)/vendor/swagger-ui
	@cp style/xos.css $(SITE)/pkg/xos.css
	@cp public/favicon.ico $(SITE)/favicon.ico
	@cp vendor/node_modules/swagger-ui-dist/swagger-ui-bundle.js vendor/node_modules/swagger-ui-dist/swagger-ui.css \
	  vendor/node_modules/swagger-ui-dist/LICENSE $(SITE)/vendor/swagger-ui/
	@mkdir -p $(SITE)/static/js/vendor
	@for d in services/*/static; do cp -R $$d/. $(SITE)/static/; done  # each service's own (collectstatic)
	@cp vendor/node_modules/jquery/dist/jquery.min.js vendor/node_modules/underscore/underscore-min.js \
	  vendor/node_modules/backbone/backbone.js $(SITE)/static/js/vendor/

# Leptos's hydration script loads `<output>_bg.wasm` when the server is not built by cargo-leptos.
$(SITE)/pkg/frontend_bg.wasm: $(WASM_OUT)
	@mkdir -p $(SITE)/pkg
	wasm-bindgen --target web --out-dir $(SITE)/pkg --out-name frontend $(WASM_OUT)
	vendor/node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int $@ -o $@

server:
	cargo build $(CARGO_JOBS) -p server --release

# xos-dev: the benchmarks' and the soak test's programs (not part of `make run`).
devtools:
	cargo build $(CARGO_JOBS) -p devtools --release

build: frontend server

# The bundle's budget: what the browser downloads before anything on a page reacts. Fails above it.
WASM_BUDGET := 300000
wasm-size: frontend
	@raw=$$(stat -c %s $(SITE)/pkg/frontend_bg.wasm); gz=$$(gzip -9 -c $(SITE)/pkg/frontend_bg.wasm | wc -c); \
	  echo "wasm bundle: $$raw bytes raw, $$gz bytes gzip -9 (budget $(WASM_BUDGET))"; \
	  if [ $$gz -gt $(WASM_BUDGET) ]; then echo "wasm bundle over its budget by $$((gz - $(WASM_BUDGET))) bytes" >&2; exit 1; fi

## ---- run -----------------------------------------------------------------------------------

# Debian's Knot DNS with its geoip module (the Request Router's DNS server; its service is not
# started: the synchronizer runs its own knotd) and dig, which the CDN tests ask.
dns:
	@{ [ -x /usr/sbin/knotd ] && [ -n "$$(ls /usr/lib/*/knot/modules-*/geoip.so 2>/dev/null)" ] && command -v dig >/dev/null; } || { \
	  echo "installing Debian's Knot DNS and dig"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null; $$SUDO chmod +x /usr/sbin/policy-rc.d; guard=1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  pkgs="knot knot-module-geoip bind9-dnsutils"; \
	  $$SUDO apt-get install -y $$pkgs || { $$SUDO apt-get update && $$SUDO apt-get install -y $$pkgs; }; \
	  status=$$?; if [ -n "$$guard" ]; then $$SUDO rm -f /usr/sbin/policy-rc.d; fi; exit $$status; }

# Start the chosen configuration (release build) in the background and return once its UI
# answers: devel (default), frontend-only, test, production (Postgres, nginx, sync workers).
# `make showlogs` follows its log, `make stop` stops it; the bash configuration is `make bash`.
# It builds in stages and says what each is, roughly how long it takes on a cold machine
# (2 cores, measured 2026-12-07: 9 min 33 s in all) and how long it took.
run:
	@echo "make run 1/4: tools: the wasm target, wasm-bindgen-cli, npm packages (cold: about 2 min, compiling wasm-bindgen-cli)"
	@$(TIMED) tools $(MAKE) --no-print-directory toolchain web-deps
	@echo "make run 2/4: the browser bundle (cold: about 1.5 min)"
	@$(TIMED) frontend $(MAKE) --no-print-directory frontend
	@echo "make run 3/4: the server, release build (cold: about 6.5 min; cargo shows each crate)"
	@$(TIMED) server $(MAKE) --no-print-directory server
	@echo "make run 4/4: starting the $(CONFIG) configuration"
ifeq ($(CONFIG),openstack)
	@$(MAKE) --no-print-directory openstack
endif
ifeq ($(CONFIG),cdn)
	@$(MAKE) --no-print-directory nginx dns
endif
ifeq ($(CONFIG),storage)
	@$(MAKE) --no-print-directory garage
endif
ifeq ($(CONFIG),production)
	@$(MAKE) --no-print-directory nginx
	XOS_BIN=$(XOS_RELEASE) XOS_SITE_ROOT=$(SITE) configurations/production/run.sh start
else
	@scripts/xosctl start $(CONFIG) $(XOS_RELEASE)
endif

stop:
ifeq ($(CONFIG),production)
	@XOS_BIN=$(XOS_RELEASE) XOS_SITE_ROOT=$(SITE) configurations/production/run.sh stop
else
	@scripts/xosctl stop $(CONFIG) $(XOS_RELEASE)
endif

# The running configuration's log (FOLLOW=0: print the last lines and return).
FOLLOW ?= 1
showlogs:
ifeq ($(CONFIG),production)
	@if [ "$(FOLLOW)" = 1 ]; then tail -n 50 -F data/production/logs/*.log; else tail -n 50 data/production/logs/*.log; fi
else
	@scripts/xosctl logs $(CONFIG) $(if $(filter 1,$(FOLLOW)),follow,)
endif

# The bash configuration: a shell with `xos` on PATH and a populated database.
bash: server
	@configurations/bash/shell.sh $(XOS_RELEASE)

# Faster loop for UI work: debug server build, same wasm bundle.
dev: frontend
	cargo build $(CARGO_JOBS) -p server
	$(XOS_DEBUG) --config configurations/$(CONFIG)/xos.toml serve

# A real OpenStack (Keystone, Glance, Placement, Neutron, Nova with the fake virt driver) on
# 127.0.0.1 for the OpenStack backend: a venv from PyPI cached in ~/.cache/xos/openstack-venv,
# MariaDB and RabbitMQ from Debian, state in data/openstack (openrc: the admin's OS_* variables).
# A running stack is reused; openstack-stop stops it and drops its databases.
OPENSTACK_NICE ?=
openstack:
	@NICE="$(OPENSTACK_NICE)" configurations/openstack/stack/setup.sh
openstack-stop:
	@configurations/openstack/stack/stop.sh --purge

# 20 instances in 4 slices on the local OpenStack: time to ACTIVE, idle-pass calls, deletion.
bench-openstack: openstack
	cargo test $(CARGO_JOBS) -p server --test all openstack::twenty_instances_in_four_slices -- --ignored --nocapture

## ---- test ----------------------------------------------------------------------------------

test: deps chromium
	@rm -f $(CARGO_TARGET_DIR)/timings.txt
	@export XOS_TIMINGS=$(CARGO_TARGET_DIR)/timings.txt; \
	$(TIMED) fmt $(MAKE) --no-print-directory fmt-check && \
	$(TIMED) crates $(MAKE) --no-print-directory check-crates && \
	$(TIMED) clippy $(MAKE) --no-print-directory clippy && \
	$(TIMED) openstack $(MAKE) --no-print-directory openstack && \
	$(TIMED) unit+integration $(MAKE) --no-print-directory test-rust && \
	$(TIMED) frontend $(MAKE) --no-print-directory wasm-size && \
	$(TIMED) end2end $(MAKE) --no-print-directory test-browser && \
	$(TIMED) schemathesis $(MAKE) --no-print-directory test-api-fuzz && \
	$(TIMED) regression $(MAKE) --no-print-directory test-regression && \
	$(TIMED) configurations $(MAKE) --no-print-directory test-configurations
	@echo "all tests passed"; cat $(CARGO_TARGET_DIR)/timings.txt

fmt-check:
	cargo fmt --all -- --check

# Which crate may depend on which (the runtime on no backend, a backend on no web stack, …).
check-crates:
	scripts/check-crates.sh

clippy:
	cargo clippy $(CARGO_JOBS) $(HOST_CRATES) -p devtools --all-targets -- -D warnings
	cargo clippy $(CARGO_JOBS) -p frontend --target wasm32-unknown-unknown -- -D warnings

# Unit tests and the REST/store/session integration tests, each on SQLite and on Postgres
# (127.0.0.1:5432, database `test`; XOS_REQUIRE_POSTGRES=1 makes an unreachable server a failure),
# the EC2 backend's tests against moto_server (XOS_REQUIRE_MOTO=1: a missing one fails) and
# Syndicate storage's against a Garage node (XOS_REQUIRE_GARAGE=1).
test-rust: moto nginx dns garage
	cargo test $(CARGO_JOBS) $(HOST_CRATES)

# Browser tests: the debug `xos` binary the integration tests built, the release wasm bundle.
test-browser: node-deps chromium
	cargo build $(CARGO_JOBS) -p server
	cd end2end && XOS_BIN=$(XOS_DEBUG) XOS_SITE_ROOT=$(SITE) npm test

# schemathesis against /openapi.json: every operation, 10 examples each, a fixed seed (make fuzz:
# 100 examples, a random seed).
ST_EXAMPLES ?= 10
test-api-fuzz: schemathesis-venv
	cargo build $(CARGO_JOBS) -p server
	XOS_BIN=$(XOS_DEBUG) ST=$(ST_VENV)/bin/st ST_EXAMPLES=$(ST_EXAMPLES) ST_SEED=$(or $(ST_SEED),1) scripts/schemathesis.sh

# Coverage-guided fuzzing of the TOSCA parser and the model layer's JSON decoding (10 minutes
# each, at once), then schemathesis with 100 examples per operation and a random seed. Not part
# of `make test`.
FUZZ_SECONDS ?= 600
fuzz: schemathesis-venv
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh
	$(MAKE) --no-print-directory test-api-fuzz ST_EXAMPLES=100 ST_SEED=$$(date +%s)

# 30 minutes of mixed API traffic at half the measured capacity, with synchronizer work, against
# the release server (devel configuration, fresh SQLite database). Not part of `make test`.
SOAK_MINUTES ?= 30
soak: build devtools
	SOAK_MINUTES=$(SOAK_MINUTES) XOS_BIN=$(XOS_RELEASE) XOS_DEV_BIN=$(XOS_DEV) scripts/soak.sh

# The test configuration: the two-phase regression (TOSCA data-model tests, then synchronizer
# tests), on SQLite and, when it answers, Postgres.
test-regression:
	cargo build $(CARGO_JOBS) -p server
	XOS_BIN=$(XOS_DEBUG) configurations/test/regression.sh

# Every other configuration started as documented and exercised: devel and frontend-only
# (scripts/xosctl, as `make run` starts them), bash (commands on its standard input), production
# (nginx, two servers, sync workers, Postgres). Uses the debug binary the tests built.
test-configurations: nginx dns garage
	cargo build $(CARGO_JOBS) -p server
	XOS_BIN=$(XOS_DEBUG) scripts/test-configurations.sh devel frontend-only cdn storage
	@$(MAKE) --no-print-directory openstack
	XOS_BIN=$(XOS_DEBUG) scripts/test-configurations.sh openstack
	XOS_BIN=$(XOS_DEBUG) scripts/test-bash.sh
	XOS_BIN=$(XOS_DEBUG) XOS_SITE_ROOT=$(SITE) configurations/production/run.sh check

# Start the production configuration on this machine (release build), check it serves, stop it.
production-check: build nginx
	XOS_BIN=$(XOS_RELEASE) XOS_SITE_ROOT=$(SITE) configurations/production/run.sh check

## ---- benchmarks (not part of `make test`) ------------------------------------------------

wrk:
	@command -v wrk >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get install -y wrk || { $$SUDO apt-get update && $$SUDO apt-get install -y wrk; }; }

# REST throughput and latency on SQLite and Postgres against a no-database ceiling.
bench: frontend server devtools node-deps wrk chromium garage
	XOS_DEV_BIN=$(XOS_DEV) scripts/bench.sh
	cargo test $(CARGO_JOBS) -p server --test all syndicate::bench -- --ignored --nocapture 2>&1 | grep '^syndicate:'

clean:
	cargo clean
