# Everyday commands. Each one creates the virtualenv and installs requirements.txt when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev

.PHONY: help venv plan plan-json demo test lint format bench destroy clean

help:
	@echo "make demo              offline: render the dev stack, start the local pool, smoke it"
	@echo "make plan STACK=dev    offline: what 'pulumi up' would create for a stack (add JSON=1 for JSON)"
	@echo "make test              lint and the whole test suite, offline"
	@echo "make bench             benchmark the smoke client and the local pool"
	@echo "make destroy STACK=... tear a stack down (wraps 'pulumi destroy')"

# The stamp is newer than requirements.txt once they are installed.
$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m offline.demo --stack $(STACK)

plan: venv
	$(PY) -m offline.plan --stack $(STACK) $(if $(JSON),--json,)

plan-json: venv
	$(PY) -m offline.plan --stack $(STACK) --json

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: venv
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test: lint
	$(PY) -m pytest

bench: venv
	$(PY) bench/bench_plan.py
	$(PY) bench/bench_smoke.py

# STACK must be named on the command line (or in the environment): the dev default above does
# not count, so `make destroy` alone never picks a stack for you.
destroy: venv
	@STACK='$(if $(filter command line environment,$(origin STACK)),$(STACK))' CONFIRM='$(CONFIRM)' \
		bash scripts/destroy.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
