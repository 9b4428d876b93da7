# The few commands everyone runs. Each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install test lint fmt bench bench-ingest bench-query bench-compare bench-http bench-worker bench-floor bench-serve demo ui browser node clean

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

test: lint browser node tests/node_client/node_modules
	$(BIN)/python -m pytest

browser:                               # Debian's chromium, for the UI tests in a real browser
	@command -v chromium >/dev/null || apt-get install -y -q chromium \
		|| (apt-get update -q && apt-get install -y -q chromium)

node:                                  # Debian's Node.js and npm, for the Node.js OTel SDK test
	@(command -v node && command -v npm) >/dev/null || apt-get install -y -q nodejs npm \
		|| (apt-get update -q && apt-get install -y -q nodejs npm)

tests/node_client/node_modules: tests/node_client/package-lock.json | node  # the Node.js OTel SDK
	cd tests/node_client && npm ci --no-audit --no-fund

ui: node                               # rebuild the UI into src/wideevents/serve/static/
	cd ui && npm ci --no-audit --no-fund && npm run build

bench: $(VENV)/.installed-bench        # the SDK's cost per event, against its peers (~1 min)
	$(BIN)/python benchmarks/bench_hot_path.py

bench-ingest: $(VENV)/.installed-bench # 1M events into the store (~2 min)
	$(BIN)/python benchmarks/bench_ingest.py

bench-query: $(VENV)/.installed-bench  # 10M events, against a JSON column and chdb (~10 min)
	$(BIN)/python benchmarks/bench_query.py --keep .bench-data

bench-compare: $(VENV)/.installed-bench # compare over 1M vs 1M events, vs pulling rows into SciPy
	$(BIN)/python benchmarks/bench_compare.py --keep .bench-data

bench-http: $(VENV)/.installed-bench   # Flask under gunicorn + wrk: plain, wideevents, OTel
	$(BIN)/python benchmarks/bench_http.py

bench-worker: $(VENV)/.installed-bench  # the same app's worker CPU per request, in one process (~15 s)
	$(BIN)/python benchmarks/bench_worker.py

bench-floor: $(VENV)/.installed-bench  # the same app under a hand-written prototype, feature by feature (~30 s)
	$(BIN)/python benchmarks/bench_floor.py

bench-serve: $(VENV)/.installed-bench  # OTLP spans/s into serve; UI API round trips on 10M events
	$(BIN)/python benchmarks/bench_serve.py --data .bench-data

demo: install
	$(BIN)/wideevents demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis ui/node_modules tests/node_client/node_modules
