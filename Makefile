# The README's commands. Each target sets itself up from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock

.PHONY: setup demo test test-fast lint typecheck bench bench-scale lock clean azurite test-spark spark-setup bench-spark

setup: $(STAMP)

# A virtualenv $(1) holding exactly the packages, versions and hashes in the lock $(2)
# (pip installs the locked uv, which syncs the rest: removes what the lock lacks), then
# the project itself.
define locked_venv
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	sed -n '/^uv==/,/^    #/p' $(2) > $(1)/uv-requirement.txt
	$(1)/bin/python -m pip install --quiet --no-deps --require-hashes -r $(1)/uv-requirement.txt
	$(1)/bin/uv pip sync --quiet --require-hashes --python $(1)/bin/python $(2)
	$(1)/bin/uv pip install --quiet --no-deps --no-build-isolation --python $(1)/bin/python -e .
	$(1)/bin/uv pip check --quiet --python $(1)/bin/python \
		|| { echo "$(2) does not satisfy pyproject.toml: make lock"; exit 1; }
	touch $(1)/.installed
endef

$(STAMP): pyproject.toml $(LOCK)
	$(call locked_venv,$(VENV),$(LOCK))

# Azurite, the local Azure Blob server the ingest tests use, from npm into .tools/ (once).
AZURITE_VERSION := 3.37.0
AZURITE := .tools/node_modules/.bin/azurite-blob

azurite: $(AZURITE)

$(AZURITE):
	npm install --prefix .tools --no-save --no-audit --no-fund --loglevel=error \
		azurite@$(AZURITE_VERSION)

demo: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" bash scripts/demo.sh

test: setup
	$(BIN)/ruff check loader tests benchmarks scripts
	$(BIN)/ruff format --check loader tests benchmarks scripts
	$(BIN)/mypy
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/loader lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest $(PARALLEL)

# pytest-xdist: one worker a core; worksteal hands each worker a contiguous half of the
# tests (a file's module fixtures built once) and lets an idle worker take the rest of the
# other's queue, so a long file does not finish alone at the end. `make test PARALLEL=`
# runs the suite in one process; PARALLEL="-n auto --dist loadfile" keeps each file whole.
PARALLEL ?= -n auto --dist worksteal

# The unit tests alone (no dbt build, no server): seconds.
test-fast: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q tests/unit

lint: setup
	$(BIN)/ruff check --fix loader tests benchmarks scripts
	$(BIN)/ruff format loader tests benchmarks scripts

typecheck: setup
	$(BIN)/mypy

bench: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench_ingest_build.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench_push.py

# A backfill of N events end to end (ingest, dbt build, fix loop, dry run, push to the
# emulator): time and peak memory of each step into benchmarks/results/ and docs/performance.md.
N ?= 200000
bench-scale: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/bench_scale.py --events $(N)

# The dbt project on Spark (docs/spark.md): its own venv, .venv-spark, synced to
# requirements-spark.lock (requirements.lock plus the spark extra: dbt-spark, PySpark ~400 MB,
# kept out of `make setup`), then the Spark tests (tests/spark). Needs Java 17.
SPARK_VENV := .venv-spark
SPARK_BIN := $(SPARK_VENV)/bin
SPARK_LOCK := requirements-spark.lock
SPARK_STAMP := $(SPARK_VENV)/.installed

spark-setup: $(SPARK_STAMP)

$(SPARK_STAMP): pyproject.toml $(SPARK_LOCK)
	$(call locked_venv,$(SPARK_VENV),$(SPARK_LOCK))

test-spark:
	@command -v java >/dev/null || { echo "make test-spark needs Java 17 (PySpark runs on it):" \
		"apt-get install openjdk-17-jre-headless"; exit 1; }
	$(MAKE) spark-setup
	PATH="$(CURDIR)/$(SPARK_BIN):$$PATH" $(SPARK_BIN)/pytest -m spark tests/spark

# Wall time of a full dbt build on Spark local[2] and on DuckDB, same sample of N events.
bench-spark: spark-setup
	PATH="$(CURDIR)/$(SPARK_BIN):$$PATH" $(SPARK_BIN)/python benchmarks/bench_spark.py --events $(N)

# Re-resolve pyproject.toml's dependencies (with the dev extra and the build backend) to
# the newest allowed versions, for Python 3.11 on Linux x86_64; then `make setup`.
lock:
	test -x $(BIN)/uv || $(MAKE) setup || test -x $(BIN)/uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --group pyproject.toml:build \
		--generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--upgrade --quiet --output-file $(LOCK)
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra spark --group pyproject.toml:build \
		--generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--constraint $(LOCK) --quiet --output-file $(SPARK_LOCK)

clean:
	rm -rf target logs demo-output spark-warehouse metastore_db derby.log *.duckdb *.duckdb.wal *.duckdb.tmp
