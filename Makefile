# Postmortem Lab. `make report` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE := data/sample/auth_events.jsonl
PYTEST_ARGS ?=
# the .venv as a Jupyter kernel; the notebooks name it, so JupyterLab and papermill agree
KERNEL := postmortem-lab
# make lab: the port, extra `jupyter lab` options, and with DATABASE=file.duckdb, papermill
# options for the notebook (LAB_PARAMS='-f incident.yaml' or '-p incident_start …')
LAB_PORT ?= 8888
LAB_ARGS ?=
LAB_PARAMS ?=
# Jupyter refuses to run as root unless told; these machines and CI run as root
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: help venv spark sample report test lint docs format bench fuzz lab lab-data hooks chromium \
	pgbadger postgresql prometheus java clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) \
		--display-name "Postmortem Lab (.venv)"
	touch $@

venv: $(STAMP)  ## create .venv/ with the exact versions of requirements.lock

# --engine spark: PySpark (the optional extra "spark", exact versions of the lock) and Java 17
SPARK_STAMP := $(VENV)/.installed-spark
$(SPARK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev,spark]'
	touch $@

spark: $(SPARK_STAMP) java  ## install PySpark into .venv/ and Java 17 (for --engine spark)

$(SAMPLE): $(STAMP) analysis/sample.py
	$(BIN)/postmortem sample --out data/sample

sample: $(SAMPLE)  ## generate the sample incident under data/sample/

report: $(SAMPLE)  ## write reports/2024-01-19-auth/ for the sample
	$(BIN)/postmortem report --explore

test: $(STAMP) lint chromium postgresql prometheus spark  ## lint, then run the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) docs  ## ruff, the import contract, notebooks without outputs, function sizes, docs
	$(BIN)/ruff check analysis tests tools notebooks
	$(BIN)/ruff format --check analysis tests tools notebooks
	$(BIN)/lint-imports
	$(BIN)/python -m tools.nbcheck notebooks/*.ipynb
	$(BIN)/python -m tools.long_functions

# the documentation site from docs/ (a broken link or anchor fails the build)
docs: $(STAMP)  ## build the documentation site into site/ (mkdocs build --strict)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

format: $(STAMP)  ## fix what ruff can fix
	$(BIN)/ruff check --fix analysis tests tools notebooks
	$(BIN)/ruff format analysis tests tools notebooks

# $(call debian,CHECK,PACKAGE,WHAT NEEDS IT): Debian's PACKAGE, installed here (as root) when
# the shell test CHECK fails; elsewhere what needs it skips with a reason (and fails in CI)
define debian
	@$(1) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2)) \
	      || echo "make: could not install $(2); $(3) will say so"; \
	  else \
	    echo "make: $(2) is missing (install it as root: apt-get install $(2)); $(3) will skip"; \
	  fi; }
endef

# the browser test renders the HTML report in headless Chromium
chromium:
	$(call debian,command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1,chromium,the browser test)

# the real-server test (tests/ingest/test_pg_server.py) starts a private PostgreSQL cluster; Debian
# keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin
postgresql:
	$(call debian,command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1,postgresql,the real-server test)

# the alert rules' tests run Prometheus's promtool on a report's alerts/
prometheus:  ## install promtool (Debian's prometheus package) when it is missing
	$(call debian,command -v promtool >/dev/null 2>&1,prometheus,the promtool tests)

# Spark runs on a JVM: Java 17
java:
	$(call debian,command -v java >/dev/null 2>&1,openjdk-17-jre-headless,the Spark tests)

# the bench's peer for PostgreSQL logs
pgbadger:
	$(call debian,command -v pgbadger >/dev/null 2>&1,pgbadger,the bench's pgbadger comparison)

ifdef DATABASE
# your database, all of it: a copy of the exploration notebook with `database` set and no
# input files (papermill --prepare-only; -b has the lowest precedence, so LAB_PARAMS wins)
LAB_NOTEBOOK := data/lab/explore-$(basename $(notdir $(DATABASE))).ipynb
lab-data: $(STAMP)
	@test -f "$(DATABASE)" || { echo "make lab: no database file $(DATABASE)" >&2; exit 1; }
	@mkdir -p data/lab
	$(BIN)/papermill --prepare-only --log-level WARNING notebooks/explore.ipynb $(LAB_NOTEBOOK) \
		-b "$$(printf '%s' '{auth_logs: "", query_logs: "", timeline: ""}' | base64 | tr -d '\n')" \
		-r database "$(abspath $(DATABASE))" $(LAB_PARAMS)
else
# the sample, loaded into data/incident.duckdb (a file loaded before is found by its hash)
LAB_NOTEBOOK := notebooks/explore.ipynb
lab-data: $(SAMPLE)
	$(BIN)/postmortem load --database data/incident.duckdb --auth $(SAMPLE) \
		--queries data/sample/db_queries.jsonl --timeline data/sample/timeline.yaml
endif

lab: lab-data  ## JupyterLab on 127.0.0.1 with the sample loaded (or DATABASE=file.duckdb)
	@echo "JupyterLab: $(LAB_NOTEBOOK) on http://127.0.0.1:$(LAB_PORT)/ (the URL with its token follows)"
	$(BIN)/jupyter lab $(ALLOW_ROOT) --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) \
		--ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/$(LAB_NOTEBOOK) \
		$(LAB_ARGS)

bench: $(STAMP) pgbadger  ## time and memory against the floor and pandas (QUICK=1: one small size)
	$(BIN)/python -m tools.bench $(if $(QUICK),--quick)

fuzz: $(STAMP)  ## the loader fuzz tests with many more examples than CI runs
	POSTMORTEM_FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-2000} $(BIN)/python -m pytest -q -k fuzz tests/ingest/test_bad_input.py

hooks: $(STAMP)  ## install the git pre-commit hooks (ruff, nbstripout, large files)
	$(BIN)/pre-commit install

clean:  ## remove generated data, reports and the virtual environment
	rm -rf $(VENV) data/sample data/bench data/lab data/*.duckdb data/*.duckdb.wal reports site
