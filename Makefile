# The two commands of the README: `make run` starts the whole stack, `make test` passes the tests.
# Both install what is missing first (venv, Python dependencies, the pinned OPA, redis-server).
SHELL := /bin/bash
.DEFAULT_GOAL := help

OPA_VERSION   := v1.22.3
VEGETA_VERSION := v12.13.0
CACHE_DIR     ?= $(HOME)/.cache/controlplane
OPA_BIN       := $(CACHE_DIR)/opa-$(OPA_VERSION)/opa
VEGETA_BIN    := $(CACHE_DIR)/vegeta-$(VEGETA_VERSION)/vegeta
PYTHON        ?= python3
VENV          := .venv
VENV_STAMP    := $(VENV)/.installed
BIN           := $(VENV)/bin
SUDO          := $(if $(filter 0,$(shell id -u)),,sudo)
export CONTROLPLANE_OPA_BIN ?= $(OPA_BIN)

.PHONY: help run test lint fmt rego-check rego-test bench deps opa redis tools clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: deps ## start Redis, OPA and the control plane in the foreground (Ctrl-C stops all)
	$(BIN)/controlplane up

test: deps lint rego-check ## lint, types, Rego checks and tests, unit and integration (real OPA, Redis)
	$(BIN)/pytest

lint: deps ## ruff and mypy strict
	$(BIN)/ruff check controlplane tests bench examples
	$(BIN)/ruff format --check controlplane tests bench examples
	$(BIN)/mypy

fmt: deps ## format Python and Rego in place
	$(BIN)/ruff format controlplane tests bench examples
	$(BIN)/ruff check --fix controlplane tests bench examples
	$(OPA_BIN) fmt --write rego

# --bundle: tests see the data a bundle ships (data.json), not the JSON schemas beside the policies.
rego-check: opa ## opa fmt (no diff), opa check --strict with the input schema, opa test, coverage >= 90%
	@test -z "$$($(OPA_BIN) fmt --list rego)" || { echo "opa fmt would change:"; $(OPA_BIN) fmt --list rego; exit 1; }
	$(OPA_BIN) check --strict --bundle --schema rego/schemas rego
	$(OPA_BIN) test --bundle rego -v --fail-on-empty
	$(OPA_BIN) test --bundle rego --coverage --threshold 90 >/dev/null

bench: deps tools ## benchmarks (not part of make test); see bench/README.md
	$(BIN)/python bench/decide.py
	$(BIN)/python bench/authorize.py

deps: $(VENV_STAMP) opa redis

$(VENV_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

opa: $(OPA_BIN)
$(OPA_BIN):
	@echo "building OPA $(OPA_VERSION) into $(dir $@) (once per machine)"
	GOBIN=$(dir $@) GOFLAGS=-mod=mod go install github.com/open-policy-agent/opa@$(OPA_VERSION)

redis:
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y redis-server; }

tools: $(VEGETA_BIN) ## load generators for bench/: wrk (Debian) and vegeta (Go module)
	@command -v wrk >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y wrk; }
$(VEGETA_BIN):
	GOBIN=$(dir $@) go install github.com/tsenart/vegeta/v12@$(VEGETA_VERSION)

clean: ## remove the venv and local state (not the OPA cache)
	rm -rf $(VENV) .controlplane .mypy_cache .ruff_cache .pytest_cache
