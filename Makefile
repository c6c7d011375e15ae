# triage: every target builds .venv first when it is missing.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo test bench lint typecheck schemas clean

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

test: $(STAMP)  ## run the whole suite (unit, streaming, integration on the embedded broker)
	$(BIN)/triage schemas check
	$(BIN)/python -m pytest

bench: $(STAMP)  ## print throughput and latency figures as JSON
	$(BIN)/triage bench

lint: $(STAMP)  ## ruff and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

schemas: $(STAMP)  ## regenerate schemas/ from the event models
	$(BIN)/triage schemas export

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
