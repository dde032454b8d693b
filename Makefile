# Two commands: `make dev` (Dagster UI, demo emulator when no key is set) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 3000
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: dev test lint format bench install

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.installed
	mkdir -p "$(DAGSTER_HOME)"
	$(PY) -m pendo_assets.dev --port $(PORT)

test: $(VENV)/.installed
	$(VENV)/bin/ruff check pendo_assets pendo_assets_tests bench
	$(VENV)/bin/ruff format --check pendo_assets pendo_assets_tests bench
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check pendo_assets pendo_assets_tests bench

format: $(VENV)/.installed
	$(VENV)/bin/ruff format pendo_assets pendo_assets_tests bench
	$(VENV)/bin/ruff check --fix pendo_assets pendo_assets_tests bench

bench: $(VENV)/.installed
	$(PY) -m bench.run $(BENCH_ARGS)
