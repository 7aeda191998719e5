# fairq — two commands: `make up` runs the system locally, `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# the browser assets the gateway serves (uPlot for the operator console), from npm;
# npm writes this file on every install: older than the lock file means stale
NODE_STAMP := node_modules/.package-lock.json
# Apache Kafka's broker jars, from Maven Central (deploy/kafka/pom.xml): the tests'
# second broker, and `FAIRQ_BROKER=kafka make up`; Maven writes this file last
KAFKA_LIBS := .fairq/kafka-libs
KAFKA_STAMP := $(KAFKA_LIBS)/.resolved
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: up test lint typecheck check bench rehearse system-deps test-deps kafka-libs install clean

up: install
	@if [ "$${FAIRQ_BROKER:-tansu}" = kafka ]; then $(MAKE) --no-print-directory kafka-libs; fi
	$(VENV)/bin/fairq up

# Both brokers: Tansu, and Apache Kafka (one node for the quick tier, three for the
# durability tests); `-m "not kafka"` in ARGS leaves the Apache Kafka tier out.
test: install test-deps $(NODE_STAMP) $(KAFKA_STAMP)
	$(PY) -m pytest $(ARGS)

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
# scrapes fairq in tests/deploy) and haproxy (checks deploy/haproxy/haproxy.cfg, the
# compose file's load balancer). Everything else comes from PyPI, npm and Maven Central
# (the deployment files' other checkers, hadolint, kubernetes-validate and
# check-jsonschema, are in pyproject.toml's dev extras).
RUN_PACKAGES := redis-server:redis-server npm:npm
TEST_PACKAGES := $(RUN_PACKAGES) chromium:chromium promtool:prometheus haproxy:haproxy
# Apache Kafka (the tests' second broker, `FAIRQ_BROKER=kafka make up`): Java 17+ to
# run it, Maven to resolve its jars from Maven Central.
KAFKA_PACKAGES := java:openjdk-17-jre-headless mvn:maven
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

kafka-libs: $(KAFKA_STAMP)

$(KAFKA_STAMP): deploy/kafka/pom.xml
	@$(call APT_INSTALL_MISSING,$(KAFKA_PACKAGES))
	rm -rf $(KAFKA_LIBS)
	mvn -q -B -Dstyle.color=never -f deploy/kafka/pom.xml dependency:copy-dependencies
	touch $(KAFKA_STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

clean:
	rm -rf $(VENV) node_modules .fairq .pytest_cache .mypy_cache .ruff_cache .hypothesis test-artifacts rehearsals
