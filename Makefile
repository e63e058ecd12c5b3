# Everyday commands. Each one creates the virtualenv and installs requirements.txt when needed.
# A target's `## ` comment is its line in `make help`: document a new target there.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev
# Recipes read the stack name from the environment ("$$STACK"), so no name is ever spliced into a
# shell command; the programs themselves refuse a name that is not a stack name.
export STACK
# `make demo CONTAINER_TYPE=PythonLTS` runs the demo's local pool as that type instead of the
# stack's containerType (the demo refuses a type it does not know, naming the ones it runs).
export CONTAINER_TYPE
# The suite waits far more than it computes (sandboxes starting, deadlines running out): four
# workers keep two cores busy. Each test file runs whole on one worker (--dist loadfile), so a
# module's shared pool stays one pool. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 4
export TEST_WORKERS

# JSON=1 asks `make plan` for JSON; JSON=0 or no JSON gives text. Anything else is a mistake.
ifneq ($(filter-out 0 1,$(JSON)),)
$(error JSON must be 1 (JSON) or 0 (text), not '$(JSON)')
endif

.PHONY: help prerequisites venv demo plan plan-json test lint format bench destroy clean

help: ## list these targets
	@echo "usage: make <target> [STACK=<stack>] [JSON=1] [CONTAINER_TYPE=NodeLTS|PythonLTS|Shell]"
	@awk -F ':.*## ' '/^[a-z][a-z-]*:.*## / { printf "  make %-14s %s\n", $$1, $$2 }' $(firstword $(MAKEFILE_LIST))

prerequisites: ## check for Node.js (and the local pool's sandbox) before anything else
	@bash scripts/check-prerequisites.sh

# The stamp is newer than requirements.txt once they are installed. Messages go to stderr so
# that the first `make plan JSON=1 | ...` still prints only JSON on stdout.
$(VENV)/.installed: requirements.txt
	@if [ -x $(PY) ]; then \
		echo "make: requirements.txt changed: installing it into $(VENV)" >&2; \
	else \
		echo "make: creating $(VENV) and installing requirements.txt (about 2 minutes, once)" >&2; \
		$(PYTHON) -m venv $(VENV) >&2; \
	fi
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt >&2
	@touch $@
	@echo "make: $(VENV) is ready" >&2

venv: $(VENV)/.installed ## create .venv and install requirements.txt (Pulumi.yaml points at it)

demo: prerequisites venv ## offline: render the dev stack, start the local pool, smoke it
	$(PY) -m offline.demo --stack "$$STACK" $${CONTAINER_TYPE:+--container-type "$$CONTAINER_TYPE"}

# `@`: with JSON=1, stdout carries nothing but the plan, ready for `| .venv/bin/python -m json.tool`.
plan: venv ## offline: what 'pulumi up' would create for STACK (default dev); JSON=1 for JSON
	@$(PY) -m offline.plan --stack "$$STACK" $(if $(filter 1,$(JSON)),--json)

plan-json: venv ## the same as make plan JSON=1
	@$(PY) -m offline.plan --stack "$$STACK" --json

test: prerequisites lint ## lint and the whole test suite, offline
	$(PY) -m pytest -n "$$TEST_WORKERS" --dist loadfile

lint: venv ## ruff check and ruff format --check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv ## format the code and apply ruff's safe fixes
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: venv ## benchmark the offline plan, the smoke client and the local pool
	$(PY) bench/bench_plan.py
	$(PY) bench/bench_smoke.py
	$(PY) bench/bench_localpool.py
	$(PY) bench/bench_files.py

# STACK must be named on the command line (or in the environment): the dev default above does
# not count, so `make destroy` alone never picks a stack for you. The cheap checks (STACK is a stack
# name, the Pulumi CLI is installed) come before the virtualenv is installed; then the stack's
# protection and lock are checked, all before anyone is asked to confirm.
destroy: export DESTROY_STACK := $(if $(filter command line environment,$(origin STACK)),$(STACK))
destroy: export CONFIRM := $(CONFIRM)
destroy: ## tear STACK down (wraps 'pulumi destroy'; CONFIRM=<stack> skips the question)
	@STACK="$$DESTROY_STACK" bash scripts/destroy.sh --preflight
	@$(MAKE) --no-print-directory venv
	@STACK="$$DESTROY_STACK" bash scripts/destroy.sh

clean: ## remove .venv and the tools' caches
	rm -rf $(VENV) .pytest_cache .ruff_cache
