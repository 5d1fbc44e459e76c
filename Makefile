# Realtime events and presence on AWS serverless.
# `make up` brings the stack up on the local emulator; `make test` runs every suite.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Python 3.12 matches the Lambda python3.12 runtime (pyenv has it on these machines).
PYTHON312 ?= $(shell p="$$(pyenv root 2>/dev/null)/versions/3.12.1/bin/python3.12"; \
	[ -x "$$p" ] && echo "$$p" || command -v python3.12)
VENV          := .venv
MINISTACK_ENV := .venv-ministack
CHECKOV_ENV   := .venv-checkov
LOAD_ENV      := .venv-load
PY            := $(VENV)/bin/python
MINISTACK_VERSION := 1.5.33
MINISTACK_BOTO3_VERSION := 1.43.106
CHECKOV_VERSION   := 3.3.30
LOCUST_VERSION    := 2.47.0

ARCH       ?= arm64
LOCAL_PORT ?= 4566
DEMO_PORT  ?= 8765
KEEPALIVE_SOCKETS ?= 1000
KEEPALIVE_MINUTES ?= 10
CHROMIUM   ?= /usr/bin/chromium
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
# Where the Python packages live besides the repository root (`scripts`); pyproject.toml
# gives pytest the same list.
PACKAGE_PATH := functions:clients/python
# The browser client: its sources, and the bundle esbuild makes of them (git-ignored, never committed).
JS_SOURCES := $(wildcard clients/js/src/*.js)
JS_BUNDLE  := clients/js/dist/realtime.js

# Terraform uses the machine's provider mirror only (see terraform.rc).
export TF_CLI_CONFIG_FILE := $(CURDIR)/terraform.rc
export TF_IN_AUTOMATION := 1

.PHONY: help install build build-js release up status logs down demo bench bench-broadcast chaos soak soak-keepalive storm aws-smoke test test-offline test-unit test-tooling test-clients test-tf validate \
	test-integration test-browser test-upgrade lint lint-python lint-terraform lint-docs lint-ci docs fmt clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# --- environments -----------------------------------------------------------

$(VENV)/.installed: requirements-dev.txt functions/requirements.txt clients/python/requirements.txt
	@echo "==> Creating $(VENV) (Python 3.12: tests, lint, build)"
	@[ -n "$(PYTHON312)" ] || { echo "Python 3.12 not found (pyenv install 3.12.1)"; exit 1; }
	$(PYTHON312) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@# The Python clients' dependencies as wheels: the packaging test installs the clients from them, offline.
	$(VENV)/bin/pip download --quiet --disable-pip-version-check --only-binary=:all: \
		-d $(VENV)/wheelhouse -r clients/python/requirements.txt
	@# The repository's packages on the venv's path: `.venv/bin/python -m scripts.lab.cost_model` (and every
	@# other command the docs give) runs as written, without PYTHONPATH.
	printf '%s\n' "$(CURDIR)" "$(CURDIR)/functions" "$(CURDIR)/clients/python" \
		> "$$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/realtime-events-dev.pth"
	@touch $@

# ministack pins botocore exactly, so it gets a venv of its own. Its interpreter
# also runs the Lambda handlers, so it stands in for the python3.12 runtime:
# Python 3.12, plus the boto3 that the runtime provides (matching its botocore).
$(MINISTACK_ENV)/.installed:
	@echo "==> Creating $(MINISTACK_ENV) (ministack $(MINISTACK_VERSION), the local AWS emulator)"
	$(PYTHON312) -m venv $(MINISTACK_ENV)
	$(MINISTACK_ENV)/bin/pip install --quiet --disable-pip-version-check \
		ministack==$(MINISTACK_VERSION) boto3==$(MINISTACK_BOTO3_VERSION)
	@touch $@

# locust pins gevent and its own requests: a venv of its own, for make storm only.
$(LOAD_ENV)/.installed:
	@echo "==> Creating $(LOAD_ENV) (locust $(LOCUST_VERSION), the load tool of make storm)"
	$(PYTHON312) -m venv $(LOAD_ENV)
	$(LOAD_ENV)/bin/pip install --quiet --disable-pip-version-check locust==$(LOCUST_VERSION)
	@touch $@

$(CHECKOV_ENV)/.installed:
	@echo "==> Creating $(CHECKOV_ENV) (checkov $(CHECKOV_VERSION))"
	$(PYTHON312) -m venv $(CHECKOV_ENV)
	$(CHECKOV_ENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	@touch $@

# The npm devDependencies: esbuild (the browser client's bundle), playwright-core (the browser
# tests drive Debian's Chromium; no browser download), typescript (the npm package's type check).
node_modules/.installed: package.json package-lock.json
	@echo "==> npm ci (esbuild, playwright-core, typescript)"
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(CHROMIUM):
	@echo "==> Installing Debian's chromium"
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq chromium >/dev/null

install: $(VENV)/.installed $(MINISTACK_ENV)/.installed $(CHECKOV_ENV)/.installed node_modules/.installed $(CHROMIUM) ## Create the venvs (dev tools, emulator, checkov), npm packages, Chromium

# --- build and local stack --------------------------------------------------

build: $(VENV)/.installed ## Build the Lambda code and layer zips for ARCH (default arm64) into dist/
	$(PY) -m scripts.release.build --arch $(ARCH)

build-js: $(JS_BUNDLE) ## Bundle the browser client (clients/js/src) with esbuild into clients/js/dist/realtime.js

# One ES module for browsers and the npm package. The leading comment of src/index.js heads it
# (esbuild keeps no other comments); written beside and then moved, so that a test reading it
# meanwhile never sees half a file.
$(JS_BUNDLE): $(JS_SOURCES) node_modules/.installed
	@echo "==> esbuild: $@"
	node_modules/.bin/esbuild clients/js/src/index.js --bundle --format=esm --target=es2020 \
		--banner:js="$$(sed -n '/^\/\//!q;p' clients/js/src/index.js)" --log-level=warning --outfile=$@.tmp
	mv $@.tmp $@

release: $(VENV)/.installed $(JS_BUNDLE) ## Every artifact of VERSION in release/<version>/ with SHA256SUMS (RELEASE_ALLOW_DIRTY=1 for a trial)
	$(PY) -m scripts.release.release $(if $(RELEASE_ALLOW_DIRTY),--allow-dirty)

up: $(VENV)/.installed $(MINISTACK_ENV)/.installed $(JS_BUNDLE) ## Start the emulator, build, apply examples/local, print the endpoints
	$(PY) -m scripts.local.local_stack up --port $(LOCAL_PORT) --demo-port $(DEMO_PORT)

status: ## What of the local stack is running, and where
	@[ -x $(PY) ] && $(PY) -m scripts.local.local_stack status || python3 -m scripts.local.local_stack status

logs: $(VENV)/.installed ## Follow the functions' logs on the local stack (FUNCTION=process-events, CORRELATION_ID=..., SINCE=10m)
	@$(PY) -m scripts.local.logs $(FUNCTION) $(if $(CORRELATION_ID),--correlation-id $(CORRELATION_ID)) --since $(or $(SINCE),10m)

demo: $(VENV)/.installed $(JS_BUNDLE) ## Scripted walkthrough in the terminal: two users, three sessions (after make up)
	PYTHONPATH=$(PACKAGE_PATH) $(PY) -m scripts.local.demo

down: ## Stop the local stack and remove its state
	@[ -x $(PY) ] && $(PY) -m scripts.local.local_stack down || python3 -m scripts.local.local_stack down

bench: $(VENV)/.installed $(MINISTACK_ENV)/.installed ## Benchmarks against a floor on the emulator, cold starts, costs: writes docs/benchmarks.md (BENCH_SCALE=large: long cases; REALTIME_STACK_ENDPOINTS=.local/endpoints.json reuses a stack)
	PYTHONPATH=$(PACKAGE_PATH) $(PY) -m scripts.lab.bench

bench-broadcast: $(VENV)/.installed $(MINISTACK_ENV)/.installed ## On the emulator: broadcasts to 1k, 10k and 100k simulated connections in one run; the model fitted on 1k and 10k against the 100k measured, and the 1M broadcast on AWS's quotas (writes docs/benchmarks/broadcast.json; about 10 min)
	PYTHONPATH=$(PACKAGE_PATH) $(PY) -m scripts.lab.bench_broadcast

chaos: $(VENV)/.installed $(MINISTACK_ENV)/.installed ## Fault injection on the emulator (failing posts, DynamoDB throttling and conflicts, a crash, lost $disconnects, a network drop): writes docs/reliability.md, fails on a lost or duplicated event
	PYTHONPATH=$(PACKAGE_PATH) $(PY) -m scripts.lab.chaos

soak: $(VENV)/.installed $(MINISTACK_ENV)/.installed ## Bounded soak run on the emulator (SOAK_MINUTES=20): latency percentiles and memory over time, tables before and after maintenance
	PYTHONPATH=$(PACKAGE_PATH) $(PY) -m scripts.lab.soak

storm: $(VENV)/.installed $(MINISTACK_ENV)/.installed $(LOAD_ENV)/.installed ## On the emulator: STORM_USERS (1200) fallback clients at STORM_RATE (20) a second with locust, without and with a ceiling on events-api (STORM_CEILING, 4): answered, refused, timed out, recovery; writes test-artifacts/fallback-storm.md (about 15 min)
	PYTHONPATH=$(PACKAGE_PATH) $(PY) -m scripts.lab.fallback_storm

aws-smoke: $(VENV)/.installed ## On a sandbox AWS account (REALTIME_STACK_ENDPOINTS=endpoints.json): what the emulator cannot show, each assumption PASS/FAIL/INFO (docs/environments.md; never run by make test)
	$(PY) -m scripts.lab.aws_smoke $(AWS_SMOKE_ARGS)

soak-keepalive: $(VENV)/.installed $(MINISTACK_ENV)/.installed ## KEEPALIVE_SOCKETS (1000) raw WebSockets pinging every 60 s for KEEPALIVE_MINUTES (10) on the emulator: no event lost, no invocation from keepalives; writes test-artifacts/keepalive-soak.md
	PYTHONPATH=$(PACKAGE_PATH) $(PY) -m scripts.lab.keepalive_soak --sockets $(KEEPALIVE_SOCKETS) --minutes $(KEEPALIVE_MINUTES)

# --- tests -------------------------------------------------------------------

# The stack suite mostly waits on the emulator: the other suites run beside it, one at a time.
test: ## Run every suite: integration + browser on the emulator, beside lint, unit, tooling, clients and terraform
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-integration test-offline

test-offline: lint test-unit test-tooling test-clients test-tf ## Every suite that needs no emulator (lint, unit, tooling, clients, terraform)

test-unit: $(VENV)/.installed node_modules/.installed $(JS_BUNDLE) ## Unit tests (moto) and packaging tests (zips, release, npm and wheels in clean environments)
	@echo "==> Unit and packaging tests"
	$(PY) -m pytest tests/unit tests/build -q $(PYTEST_ARGS)

test-tooling: $(VENV)/.installed ## Tests of the scripts: module defaults, bench report, simulators, fault proxies, local loop
	@echo "==> Tooling tests"
	$(PY) -m pytest tests/tooling -q $(PYTEST_ARGS)

test-clients: $(VENV)/.installed $(JS_BUNDLE) ## Client unit tests: browser client (node:test) and Python client
	@echo "==> Client unit tests"
	node --test clients/js/test/*.test.js
	$(PY) -m pytest tests/clients/unit -q $(PYTEST_ARGS)

test-tf: validate ## Terraform validate and terraform test (offline, mock provider)
	@echo "==> terraform test"
	terraform -chdir=terraform test

validate: ## terraform validate: the module and each example (offline)
	@echo "==> terraform validate"
	@for dir in terraform terraform/examples/*/; do \
		terraform -chdir=$$dir init -backend=false -input=false >/dev/null; \
		printf '  %-30s ' "$$dir"; terraform -chdir=$$dir validate -no-color; \
	done

# One pytest session, so the pipeline, client and browser suites share one stack.
test-integration: $(VENV)/.installed $(MINISTACK_ENV)/.installed node_modules/.installed $(CHROMIUM) $(JS_BUNDLE) ## Whole stack on the emulator (free port): pipeline, clients, browser, the key fault scenarios
	@echo "==> Integration tests: ministack on a free loopback port, real module, real zips"
	$(PY) -m pytest tests/integration tests/clients/stack tests/browser tests/chaos -q $(PYTEST_ARGS)

test-browser: $(VENV)/.installed $(MINISTACK_ENV)/.installed node_modules/.installed $(CHROMIUM) $(JS_BUNDLE) ## Only the demo page in headless Chromium on the emulator
	$(PY) -m pytest tests/browser -q $(PYTEST_ARGS)

test-upgrade: $(VENV)/.installed $(MINISTACK_ENV)/.installed ## On the emulator: UPGRADE_FROM_REF (default 71d7b89, the last landed main) applied, then this tree applied under traffic: nothing replaced, no event lost
	$(PY) -m pytest tests/upgrade -q -s $(PYTEST_ARGS)

# .pre-commit-config.yaml runs these same targets (tests/build/test_hygiene.py keeps them in step).
lint: lint-python lint-terraform lint-docs lint-ci ## ruff, import cycles, terraform fmt, checkov, README module tables, Terraform contract and refused-input tests, CI workflow

lint-python: $(VENV)/.installed
	@echo "==> ruff"
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@echo "==> import cycles"
	PYTHONPATH=$(PACKAGE_PATH) $(VENV)/bin/lint-imports --no-logo

lint-terraform: $(CHECKOV_ENV)/.installed
	@echo "==> terraform fmt"
	terraform fmt -check -recursive terraform
	@echo "==> checkov"
	$(CHECKOV_ENV)/bin/checkov --config-file .checkov.yaml

lint-docs: $(VENV)/.installed
	@echo "==> README module reference"
	$(PY) -m scripts.docs.tf_docs --check
	@echo "==> Terraform contract test (terraform/tests/contract.tftest.hcl)"
	$(PY) -m scripts.docs.tf_contract --check
	@echo "==> Refused-input corpus: docs table, Terraform test, module messages (contract/vectors/refused.json)"
	$(PY) -m scripts.docs.refused --check
	@echo "==> README's costs (the cost model on the last make bench's request counts)"
	$(PY) -m scripts.lab.readme_costs --check
	@echo "==> Docs: cited paths, make targets, module inputs and defaults exist and match"
	$(PY) -m scripts.docs.docs_truth
	@echo "==> Examples: outputs from the module; the emulator only in terraform/examples/local"
	$(PY) -m scripts.docs.examples_check

lint-ci: $(VENV)/.installed
	@echo "==> CI workflow (GitHub's workflow schema) and pre-commit configuration"
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(VENV)/bin/pre-commit validate-config .pre-commit-config.yaml

docs: $(VENV)/.installed ## Regenerate the README's module tables and costs, the Terraform contract test and the refused-input table and test
	$(PY) -m scripts.docs.tf_docs
	$(PY) -m scripts.lab.readme_costs
	$(PY) -m scripts.docs.tf_contract
	$(PY) -m scripts.docs.refused

fmt: $(VENV)/.installed ## Format Python and Terraform
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	terraform fmt -recursive terraform

clean: ## Remove build outputs (dist/, clients/js/dist/, release/) and Terraform working dirs
	rm -rf dist clients/js/dist release .pytest_cache .ruff_cache .import_linter_cache test-artifacts
	find terraform -name .terraform -type d -prune -exec rm -rf {} +
