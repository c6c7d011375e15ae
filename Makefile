# triage: every target builds .venv first when it is missing.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo test bench soak lint typecheck schemas clean promtool chromium

help:  ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-10s %s\n",$$1,$$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -e . --group test --group lint
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install triage with its pinned dependencies

demo: $(STAMP)  ## run the main job: embedded broker, worker, a synthetic week, summary
	$(BIN)/triage demo

# promtool and prometheus (alert-rule tests, the real-Prometheus test) come from
# Debian's `prometheus` package, Alertmanager (the page-latency test) from
# `prometheus-alertmanager`; both are installed once, when one is missing. The
# packages' services are not needed: the tests start their own servers.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

promtool:  ## install Debian's prometheus and prometheus-alertmanager packages if missing
	@{ command -v promtool && command -v prometheus-alertmanager; } >/dev/null 2>&1 || { \
	  echo "installing Debian's prometheus and prometheus-alertmanager packages"; \
	  $(SUDO) apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager >/dev/null; }

# The console's browser tests drive Debian's chromium through Playwright (never a
# browser downloaded by `playwright install`); installed once, when missing.
chromium:  ## install Debian's chromium package if missing (console browser tests)
	@command -v /usr/bin/chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium package"; \
	  $(SUDO) apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    chromium >/dev/null; }

test: $(STAMP) promtool chromium  ## run the whole suite (unit, streaming, integration on the embedded broker)
	$(BIN)/triage schemas check
	@promtool check config deploy/prometheus/prometheus.yml >/dev/null 2>&1 || \
	  promtool check config deploy/prometheus/prometheus.yml
	@promtool test rules deploy/prometheus/alerts.test.yml >/dev/null 2>&1 || \
	  promtool test rules deploy/prometheus/alerts.test.yml
	$(BIN)/python -m pytest

bench: $(STAMP)  ## print throughput and latency figures as JSON
	$(BIN)/triage bench

soak: $(STAMP)  ## replay generated logs through killed, frozen and poisoned workers; prints JSON
	$(BIN)/triage soak --fault all --events 20000 --other-events 5000 --faults 3
	$(BIN)/python -m pytest -m long

lint: $(STAMP)  ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

schemas: $(STAMP)  ## regenerate schemas/ from the event models
	$(BIN)/triage schemas export

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
