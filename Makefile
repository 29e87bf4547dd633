# lenslab: `make demo` runs the whole pipeline on the embedded synthetic data; `make test` runs the
# test suite. Both create the virtual environment first if it is missing.
SHELL := /bin/bash
VENV := .venv
SYSTEM_PATH := $(PATH)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export DAGSTER_HOME := $(CURDIR)/dagster_home

.PHONY: env demo test test-fast ui repro lint dvc-yaml bench help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/' | column -t -s $$'\t'

env:  ## create .venv if missing and install everything (idempotent)
	@PATH="$(SYSTEM_PATH)" bash scripts/setup_env.sh

demo: env  ## run the pipeline on the embedded synthetic data: every asset that changed (all, at first)
	python -m orchestration.launch --changed
	@echo "what the pipeline wrote, and where: python -m orchestration.summary"

test: env  ## the full test suite, slow end-to-end tests included (what CI runs), a worker per core
	python -m pytest -n auto --dist loadfile

test-fast: env  ## the test suite without the slow end-to-end tests
	python -m pytest -m "not slow"

ui: env  ## open the Dagster UI on http://127.0.0.1:3000
	dg dev --host 127.0.0.1 --port 3000

repro: env  ## reproduce the pipeline with DVC (stages derived from the asset graph)
	dvc repro

dvc-yaml: env  ## regenerate dvc.yaml from the asset graph
	python -m orchestration.dvc_stages --write

lint: env  ## ruff
	ruff check .

bench: env  ## ingestion benchmark (see BENCHMARKS.md)
	python bench/ingest/run.py
