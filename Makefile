# Two commands: `make dev` (Dagster UI, demo emulator when no key is set) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 3000
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: dev test test-future lint format bench install

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

# The suite with the machine's clock a year ahead (Debian: apt-get install faketime), to prove no
# test depends on the real date: the suite pins its own (PENDO_TODAY, pendo_assets_tests/conftest.py).
# The monotonic clock stays real (faked, every timed thread wait hangs); see
# pendo_assets_tests/future/sitecustomize.py. FUTURE_TESTS narrows it, e.g. to one file.
FUTURE ?= +365d
test-future: $(VENV)/.installed
	FAKETIME_DONT_FAKE_MONOTONIC=1 PYTHONPATH=$(CURDIR)/pendo_assets_tests/future \
		faketime -f "$(FUTURE)" $(PY) -m pytest -q $(FUTURE_TESTS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check pendo_assets pendo_assets_tests bench

format: $(VENV)/.installed
	$(VENV)/bin/ruff format pendo_assets pendo_assets_tests bench
	$(VENV)/bin/ruff check --fix pendo_assets pendo_assets_tests bench

bench: $(VENV)/.installed
	$(PY) -m bench.run $(BENCH_ARGS)
