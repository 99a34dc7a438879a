# Two commands matter: `make up` (run the product locally) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup up down test lint docs bench audit

help:
	@echo "make up     set up .venv if needed, start Chroma + Airflow + search API, ingest the sample batch"
	@echo "make test   the whole test suite (sets up .venv if needed)"
	@echo "make setup  only create .venv and install the pinned requirements (idempotent)"
	@echo "make down   stop a stack started by 'make up' (by the PIDs in .pids/)"
	@echo "make lint   ruff"
	@echo "make docs   the documentation site, mkdocs build --strict into site/ (settings, CLI and API pages generated)"
	@echo "make bench  the benchmarks under bench/ (JSON to stdout and bench/out/)"
	@echo "make audit  pip-audit of the pinned requirements (needs pypi.org JSON API or OSV; docs/contributing/dependencies.md)"

setup:
	@scripts/setup.sh

up: setup
	@scripts/up.sh

down:
	@scripts/down.sh

# -p no:cacheprovider: a clean clone stays clean; pytest's last line is the summary.
test: setup
	@scripts/install_browser.sh
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

# The settings, CLI and API reference pages are generated from the code (scripts/docs_hooks.py),
# so the package and the search API must be importable. NO_MKDOCS_2_WARNING: the theme's end-of-life
# banner on every build (docs/contributing/docs.md notes it).
docs: setup
	PYTHONPATH=plugins:. NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

bench: setup
	@scripts/bench.sh

# Known vulnerabilities in every pinned set. pip-audit reads advisories from pypi.org's JSON API: where
# that is unreachable it lists each package as "could not be audited" and exits 1 (never a false pass).
audit: setup
	$(VENV)/bin/pip-audit --progress-spinner off --disable-pip --no-deps --strict \
	    -r requirements-torch.txt -r requirements.txt -r search_api/requirements.txt -r requirements-dev.txt
