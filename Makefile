# The README's commands. Each target sets itself up from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

test: setup
	$(BIN)/ruff check loader tests benchmarks scripts
	$(BIN)/ruff format --check loader tests benchmarks scripts
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/loader lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest

lint: setup
	$(BIN)/ruff check --fix loader tests benchmarks scripts
	$(BIN)/ruff format loader tests benchmarks scripts

bench: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench_ingest_build.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench_push.py

clean:
	rm -rf target logs demo-output *.duckdb *.duckdb.wal
