# toko — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export TOKO_ENV ?= development
export DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/toko
# Each service connects as its own least-privilege role (migration 0002); `toko migrate` as the owner.
export TOKO_DB_ROLES ?= on

.DEFAULT_GOAL := help
.PHONY: help install lock run test test-cluster screenshots fuzz lint load bench bench-stack docs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

# Every dependency, transitive ones too, at the version and hash requirements.lock names; then toko
# itself (which finds its pins satisfied; a pin added to setup.cfg since the last `make lock` still
# installs, and a test says the lock is stale).
$(BIN)/toko: setup.cfg pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $@

install: $(BIN)/toko ## create .venv and install toko with the exact dependencies of requirements.lock

lock: install ## regenerate requirements.lock from setup.cfg's pins: every transitive dependency, with hashes
	$(BIN)/pip-compile --quiet --generate-hashes --extra test --extra dev --strip-extras --allow-unsafe \
	  --no-emit-index-url --no-emit-find-links --output-file requirements.lock setup.cfg

NGINX_MISSING := nginx is not installed: it owns every port toko serves (services and gateway). Debian: apt-get install nginx

run: install ## check the ports, migrate, seed demo data when empty, run everything under supervisord (Ctrl-C stops)
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { echo "$(NGINX_MISSING)" >&2; exit 1; }
	@$(BIN)/toko preflight
	scripts/pg-up
	$(BIN)/toko db-ensure
	$(BIN)/toko migrate
	$(BIN)/toko seed-demo --if-empty
	@exec $(BIN)/toko supervise

test: install ## run the whole test suite against a throwaway PostgreSQL database
	scripts/pg-up
	$(BIN)/pytest $(PYTEST_ARGS)

test-cluster: install ## as root: 3 service hosts (network namespaces), gateway, PgBouncer, a replica, tested
	TOKO_CLUSTER_TESTS=1 $(BIN)/pytest tests/cluster $(PYTEST_ARGS)

screenshots: install ## the storefront's browser tests, writing their screenshots into docs/ for the README
	scripts/pg-up
	TOKO_SCREENSHOTS=docs $(BIN)/pytest tests/e2e/test_storefront.py

FUZZ_EXAMPLES ?= 100
fuzz: install ## a longer schemathesis pass over every service's OpenAPI document (FUZZ_EXAMPLES per operation)
	scripts/pg-up
	TOKO_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/fuzz

LOAD_SECONDS ?= 30
LOAD_USERS ?= 8
load: install ## Locust, headless, against the running stack (`make run` first); any error fails; LOAD_SECONDS=30 LOAD_USERS=8
	$(BIN)/locust -f bench/locustfile.py --headless --only-summary --users $$(( $(LOAD_USERS) + 1 )) \
	  --spawn-rate $$(( $(LOAD_USERS) + 1 )) --run-time $(LOAD_SECONDS)s --stop-timeout 10

BENCH_ARGS ?=
bench: install ## 1M items + 1M lines in toko_bench, every comparison against its floor, the table into docs/benchmarks.md (BENCH_ARGS="--reuse --keep")
	scripts/pg-up
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

bench-stack: install ## the stack as `make run` starts it (supervisord, the edge) against the floors; into docs/benchmarks.md
	scripts/pg-up
	$(BIN)/python bench/stack.py $(BENCH_ARGS)

docs: install ## write docs/api.md from the services' OpenAPI documents
	TOKO_ENV=test $(BIN)/toko api-docs

lint: install ## ruff check, ruff format --check (common/, svc_*/, toko/) and mypy (common/, svc_*/)
	$(BIN)/ruff check common svc_* toko
	$(BIN)/ruff format --check common svc_* toko
	$(BIN)/mypy common $(wildcard svc_*)

clean: ## remove the virtualenv and runtime files
	rm -rf $(VENV) var
