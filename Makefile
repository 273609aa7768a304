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
.PHONY: help install install-dev lock run test test-cluster screenshots lighthouse fuzz lint load bench bench-stack docs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

# Every dependency, transitive ones too, at the version and hash the lock files name; then toko itself
# (which finds its pins satisfied; a pin added to setup.cfg since the last `make lock` still installs,
# and a test says the lock is stale). `make run` needs only the services' own dependencies
# (requirements.lock); the tests and the developers' tools come on top (requirements-dev.lock).
DEV := $(VENV)/.dev-installed

$(BIN)/toko: setup.cfg pyproject.toml requirements.lock
	@test -x $(BIN)/python || { PYTHON=$(PYTHON) scripts/need venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV): $(BIN)/toko requirements-dev.lock
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $@

install: $(BIN)/toko ## create .venv with what the services need at run time, as requirements.lock pins it

install-dev: $(DEV) ## add the tests and the developers' tools, as requirements-dev.lock pins them

LOCK_FLAGS := --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links
lock: install-dev ## regenerate both lock files from setup.cfg's pins: every transitive dependency, with hashes
	$(BIN)/pip-compile $(LOCK_FLAGS) --output-file requirements.lock setup.cfg
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra test --extra dev --constraint requirements.lock \
	  --output-file requirements-dev.lock setup.cfg

run: install ## check the ports, migrate, seed demo data when empty, run everything under supervisord (Ctrl-C stops)
	@scripts/need nginx
	@$(BIN)/toko preflight
	scripts/pg-up
	$(BIN)/toko db-ensure
	$(BIN)/toko migrate
	$(BIN)/toko seed-demo --if-empty
	@exec $(BIN)/toko supervise

# Workers of pytest-xdist, each with its own throwaway database; a file, and the tests on the run's one
# stack, each run on one worker (tests/conftest.py).
TEST_WORKERS ?= 2
test: install-dev ## run the whole test suite against a throwaway PostgreSQL database
	@scripts/need nginx chromium
	scripts/pg-up
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --durations=15 $(PYTEST_ARGS)

test-cluster: install-dev ## as root: 3 service hosts (network namespaces), gateway, PgBouncer, a replica, tested
	@scripts/need nginx pgbouncer ip
	TOKO_CLUSTER_TESTS=1 $(BIN)/pytest tests/cluster $(PYTEST_ARGS)

screenshots: install-dev ## the storefront's browser tests, writing their screenshots into docs/ for the README
	@scripts/need nginx chromium
	scripts/pg-up
	TOKO_SCREENSHOTS=docs $(BIN)/pytest tests/e2e/test_storefront.py

# Lighthouse as tools/lighthouse/package-lock.json pins it, on a stack of its own (LIGHTHOUSE_ARGS="--url
# http://127.0.0.1:8080/" scores the running `make run` instead). Not part of `make test`.
lighthouse: install-dev ## Lighthouse's performance, accessibility and best-practices scores of the catalogue and an item page; into docs/lighthouse.md
	@scripts/need nginx chromium
	scripts/pg-up
	@test -f tools/lighthouse/node_modules/lighthouse/package.json || npm ci --prefix tools/lighthouse --no-audit --no-fund
	$(BIN)/python bench/lighthouse.py $(LIGHTHOUSE_ARGS)

FUZZ_EXAMPLES ?= 100
fuzz: install-dev ## a longer schemathesis pass over every service's OpenAPI document (FUZZ_EXAMPLES per operation)
	scripts/pg-up
	TOKO_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/fuzz

LOAD_SECONDS ?= 30
LOAD_USERS ?= 8
load: install-dev ## Locust, headless, against the running stack (`make run` first); any error fails; LOAD_SECONDS=30 LOAD_USERS=8
	$(BIN)/locust -f bench/locustfile.py --headless --only-summary --users $$(( $(LOAD_USERS) + 1 )) \
	  --spawn-rate $$(( $(LOAD_USERS) + 1 )) --run-time $(LOAD_SECONDS)s --stop-timeout 10

BENCH_ARGS ?=
bench: install-dev ## 1M items + 1M lines in toko_bench, every comparison against its floor, the table into docs/benchmarks.md (BENCH_ARGS="--reuse --keep")
	scripts/pg-up
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

bench-stack: install-dev ## the stack as `make run` starts it (supervisord, the edge) against the floors; into docs/benchmarks.md
	scripts/pg-up
	$(BIN)/python bench/stack.py $(BENCH_ARGS)

docs: install ## write docs/api.md from the services' OpenAPI documents
	TOKO_ENV=test $(BIN)/toko api-docs

lint: install-dev ## ruff check, ruff format --check (common/, svc_*/, toko/) and mypy (common/, svc_*/)
	$(BIN)/ruff check common svc_* toko
	$(BIN)/ruff format --check common svc_* toko
	$(BIN)/mypy common $(wildcard svc_*)

clean: ## remove the virtualenv and runtime files
	rm -rf $(VENV) var
