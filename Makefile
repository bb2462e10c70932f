# Postmortem Lab. `make report` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE := data/sample/auth_events.jsonl
PYTEST_ARGS ?=

.PHONY: help venv sample report test lint format bench fuzz lab clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

venv: $(STAMP)  ## create .venv/ with the exact versions of requirements.lock

$(SAMPLE): $(STAMP) analysis/sample.py
	$(BIN)/postmortem sample --out data/sample

sample: $(SAMPLE)  ## generate the sample incident under data/sample/

report: $(SAMPLE)  ## write reports/2024-01-19-auth/ for the sample
	$(BIN)/postmortem report

test: $(STAMP)  ## run the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)  ## ruff (lint and format) and notebooks without outputs
	$(BIN)/ruff check analysis tests
	$(BIN)/ruff format --check analysis tests
	$(BIN)/python -m analysis.nbcheck notebooks/*.ipynb

format: $(STAMP)  ## fix what ruff can fix
	$(BIN)/ruff check --fix analysis tests
	$(BIN)/ruff format analysis tests

clean:  ## remove generated data, reports and the virtual environment
	rm -rf $(VENV) data/sample data/bench data/*.duckdb data/*.duckdb.wal reports
