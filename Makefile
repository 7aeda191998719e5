# fairq — two commands: `make up` runs the system locally, `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# the browser assets the gateway serves (uPlot for the operator console), from npm;
# npm writes this file on every install: older than the lock file means stale
NODE_STAMP := node_modules/.package-lock.json
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: up test lint typecheck check bench rehearse system-deps test-deps install clean

up: install
	$(VENV)/bin/fairq up

test: install test-deps $(NODE_STAMP)
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy fairq gateway waitingroom allocator schemas loadtest tests

check: lint typecheck test

bench: install
	$(PY) -m loadtest.bench_allocator_core

# A launch rehearsal against a running fairq (`make up` in another terminal): the
# scenario SCENARIO (loadtest/scenarios; reference-small by default) driven by locust,
# every /metrics scraped, the log checked, a report written; the verdict is the exit
# code and the report's path the last line. LOCUST_HOST, FAIRQ_OPERATOR_KEY,
# FAIRQ_LOADTEST_KEY, KAFKA_BOOTSTRAP (make up prints it) from the environment; ARGS for more.
rehearse: install
	$(PY) -m loadtest.rehearse --scenario $${SCENARIO:-reference-small} $(ARGS)

install: system-deps $(STAMP) $(NODE_STAMP)

# Debian's packages, as command:package: redis-server to run fairq and npm for the
# console's chart library; for the tests also chromium (the pages, driven by
# Playwright) and prometheus (promtool checks deploy/prometheus, and a real Prometheus
# scrapes fairq in tests/deploy). Everything else comes from PyPI and npm.
RUN_PACKAGES := redis-server:redis-server npm:npm
TEST_PACKAGES := $(RUN_PACKAGES) chromium:chromium promtool:prometheus
APT_INSTALL_MISSING = missing=""; for pair in $(1); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair\#\#*:}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian's$$missing"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $$missing; fi

system-deps:
	@$(call APT_INSTALL_MISSING,$(RUN_PACKAGES))

test-deps:
	@$(call APT_INSTALL_MISSING,$(TEST_PACKAGES))

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

clean:
	rm -rf $(VENV) node_modules .fairq .pytest_cache .mypy_cache .ruff_cache .hypothesis test-artifacts rehearsals
