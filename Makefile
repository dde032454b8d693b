# Two commands: `make dev` (Dagster UI, demo emulator when no key is set) and `make test` (the
# whole suite, what CI runs). `make test-quick` is the edit-test loop: no browser, PostgreSQL,
# bench or CLI-subprocess tests (those modules are marked `slow`; docs/development.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 3000
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: dev test test-quick test-future lint format bench install

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
	$(PY) -m pytest -q --durations=25

test-quick: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

# The suite with the machine's clock a year ahead (Debian: apt-get install faketime), to prove no
# test depends on the real date: the suite pins its own (PENDO_TODAY, pendo_assets_tests/conftest.py).
# The monotonic clock stays real (faked, every timed thread wait hangs; see
# pendo_assets_tests/future/sitecustomize.py); libfaketime re-reads its settings from the
# environment only once a day (re-reading races with tests' setenv: a segfault); Chromium and
# Playwright's node driver keep the real clock. FUTURE_TESTS narrows it, e.g. to one file.
FUTURE ?= +365d
# Every module whose outcome could follow the date: the emulator's data, ranges, checks,
# freshness, automation, settings, the CLI, `dagster dev` (UI) and the PostgreSQL deployment.
# The whole suite (FUTURE_TESTS=pendo_assets_tests) crashes inside libfaketime 0.9.10's
# select() interception in long emulator runs, and Chromium under it fails the browser test.
FUTURE_TESTS ?= $(addprefix pendo_assets_tests/,test_checks.py test_freshness.py \
	test_automation.py test_dev.py test_settings.py test_clock.py test_readme_sql.py test_cli.py \
	test_marts.py test_assets_integration.py test_ui_e2e.py test_deploy_run.py)
test-future: $(VENV)/.installed
	FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_CACHE_DURATION=86400 FAKETIME_SKIP_CMDS=chromium,node \
		PYTHONPATH=$(CURDIR)/pendo_assets_tests/future \
		faketime -f "$(FUTURE)" $(PY) -m pytest -q $(FUTURE_TESTS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check pendo_assets pendo_assets_tests bench

format: $(VENV)/.installed
	$(VENV)/bin/ruff format pendo_assets pendo_assets_tests bench
	$(VENV)/bin/ruff check --fix pendo_assets pendo_assets_tests bench

bench: $(VENV)/.installed
	$(PY) -m bench.run $(BENCH_ARGS)
