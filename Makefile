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
.PHONY: help install run test test-cluster screenshots fuzz lint load bench bench-stack docs clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

$(BIN)/toko: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/toko ## create .venv and install toko with its pinned dependencies

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
load: install ## a realistic mix against the running stack (`make run` first); LOAD_SECONDS=30 LOAD_USERS=8
	$(BIN)/python bench/load.py --seconds $(LOAD_SECONDS) --users $(LOAD_USERS)

BENCH_ARGS ?=
bench: install ## 1M items + 1M lines in toko_bench, every comparison against its floor, the table into docs/benchmarks.md (BENCH_ARGS="--reuse --keep")
	scripts/pg-up
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

bench-stack: install ## the stack as `make run` starts it (supervisord, the edge) against the floors; into docs/benchmarks.md
	scripts/pg-up
	$(BIN)/python bench/stack.py $(BENCH_ARGS)

docs: install ## write docs/api.md from the services' OpenAPI documents
	TOKO_ENV=test $(BIN)/toko api-docs

lint: install ## compile-check every module
	$(BIN)/python -m compileall -q common svc_* migrations tests

clean: ## remove the virtualenv and runtime files
	rm -rf $(VENV) var
