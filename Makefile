# The few commands everyone runs. Each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install test lint fmt bench bench-ingest bench-query bench-http demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@

install: $(VENV)/.installed-dev

lint: install
	$(BIN)/ruff check src tests benchmarks examples scripts
	$(BIN)/ruff format --check src tests benchmarks examples scripts
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format src tests benchmarks examples scripts
	$(BIN)/ruff check --fix src tests benchmarks examples scripts

test: lint
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-bench        # the SDK's cost per event, against its peers (~1 min)
	$(BIN)/python benchmarks/bench_hot_path.py

bench-ingest: $(VENV)/.installed-bench # 1M events into the store (~2 min)
	$(BIN)/python benchmarks/bench_ingest.py

bench-query: $(VENV)/.installed-bench  # 10M events, against a JSON column and chdb (~10 min)
	$(BIN)/python benchmarks/bench_query.py --keep .bench-data

bench-http: $(VENV)/.installed-bench   # Flask under gunicorn + wrk: plain, wideevents, OTel
	$(BIN)/python benchmarks/bench_http.py

demo: install
	$(BIN)/wideevents demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
