# Two commands matter: `make up` (run the product locally) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup setup-bench up down test lint typecheck imports docs bench audit

help:
	@echo "make up     set up .venv if needed, start Chroma + Airflow + search API, ingest the sample batch"
	@echo "make test   the whole test suite (sets up .venv if needed)"
	@echo "make setup  only create .venv and install the pinned requirements, no torch (idempotent)"
	@echo "make setup-bench  add torch + sentence-transformers (requirements-torch.txt): the benchmarks' stock"
	@echo "            baseline, scripts/build_onnx_model.py, LOCAL_EMBEDDER=torch"
	@echo "make down   stop a stack started by 'make up' (by the PIDs in .pids/)"
	@echo "make lint   ruff, make typecheck, make imports and the module-size check (all run, then one verdict)"
	@echo "make typecheck  mypy over plugins/ and search_api/ (pyproject.toml says which modules are strict)"
	@echo "make imports    import contracts (lint-imports), no import cycle, thin DAG files"
	@echo "make docs   the documentation site, mkdocs build --strict into site/ (settings, CLI and API pages generated)"
	@echo "make bench  the benchmarks under bench/ (JSON to stdout and bench/out/)"
	@echo "make audit  pip-audit of the pinned requirements (needs pypi.org JSON API or OSV; docs/contributing/dependencies.md)"

setup:
	@scripts/setup.sh

setup-bench:
	@scripts/setup.sh bench

up: setup
	@scripts/up.sh

down:
	@scripts/down.sh

# -p no:cacheprovider: a clean clone stays clean; pytest's last line is the summary.
test: setup
	@scripts/install_browser.sh
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# make lint runs every check even when one fails, then names the failed ones: fix them in any order.
RUFF := $(VENV)/bin/ruff check .
MYPY := $(VENV)/bin/mypy
IMPORTS := PYTHONPATH=plugins:. $(VENV)/bin/lint-imports --no-cache --no-logo && $(PY) scripts/check_imports.py
MODULE_SIZE := $(PY) scripts/check_module_size.py

lint: setup
	@failed=""; \
	echo "== ruff"; $(RUFF) || failed="$$failed ruff"; \
	echo "== typecheck (mypy)"; $(MYPY) || failed="$$failed typecheck"; \
	echo "== imports"; { $(IMPORTS); } || failed="$$failed imports"; \
	echo "== module size"; $(MODULE_SIZE) || failed="$$failed module-size"; \
	if [ -n "$$failed" ]; then echo "make lint: FAILED:$$failed (their errors are above; make typecheck or make imports reruns one)" >&2; exit 1; fi; \
	echo "make lint: ruff, typecheck, imports and module size pass"

typecheck: setup
	$(MYPY)

imports: setup
	$(IMPORTS)

# The settings, CLI and API reference pages are generated from the code (scripts/docs_hooks.py),
# so the package and the search API must be importable. NO_MKDOCS_2_WARNING: the theme's end-of-life
# banner on every build (docs/contributing/docs.md notes it).
docs: setup
	PYTHONPATH=plugins:. NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# the benchmarks compare against stock sentence-transformers on torch: make setup-bench
bench: setup-bench
	@scripts/bench.sh

# Known vulnerabilities in every pinned set. pip-audit reads advisories from pypi.org's JSON API: where
# that is unreachable it lists each package as "could not be audited" and exits 1 (never a false pass).
audit: setup
	$(VENV)/bin/pip-audit --progress-spinner off --disable-pip --no-deps --strict \
	    -r requirements-torch.txt -r requirements.txt -r search_api/requirements.txt -r requirements-dev.txt
