# The few commands a newcomer needs. `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench chaos clean record-histories browser

# apt-get runs as root: through sudo when make does not.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## start the local stack, play the sample order, keep serving until Ctrl-C
	$(BIN)/orderflow dev --demo $(DEMO_ARGS)

browser:  ## Debian's Chromium for the browser tests (Playwright drives it; nothing is downloaded)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium with apt-get"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) browser  ## lint, then the whole suite against real Temporal dev servers, two files at a time
	$(BIN)/ruff check .
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy domain

bench: $(STAMP)  ## every bench at a size that fits ~10 minutes on 2 cores, then one summary table (BENCH_ARGS=--full for the full sizes)
	$(BIN)/python bench/all.py $(BENCH_ARGS)

chaos: $(STAMP)  ## 200 orders on 2 workers sharing the task queue while one at a time is SIGKILLed 5 times and SIGTERMed once, and the dev server SIGKILLed once
	$(BIN)/python bench/chaos.py --full

clean:
	rm -rf $(VENV) .orderflow .pytest_cache .ruff_cache .mypy_cache *.egg-info

record-histories: $(STAMP)  ## add this version's histories (tests/histories/<version>/); never overwrites
	ORDERFLOW_RECORD_HISTORIES=1 $(BIN)/pytest -n 2 --dist loadfile tests/workflows tests/stories tests/upgrade -q
