# The two commands a user needs: `make run` and `make test`. Both build the venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config.toml

.PHONY: install install-test run test lint fmt bench browser clean simulator demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# A stamp per dependency set so a second `make` is instant and an edit to pyproject.toml reinstalls.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test browser

# Browser tests drive Debian's Chromium: Playwright cannot download its own browser offline.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian chromium for the browser tests"; \
			(apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "warning: /usr/bin/chromium missing and apt-get unavailable"; fi; \
	fi

run: install
	$(BIN)/python -m sora2api --config $(CONFIG)

test: install-test
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check sora2api tests
	$(BIN)/ruff format --check sora2api tests
	$(BIN)/mypy

fmt: install-test
	$(BIN)/ruff format sora2api tests
	$(BIN)/ruff check --fix sora2api tests

# `make bench BENCH="models startup"` runs only those targets (models polls cache many startup metrics).
bench: install-test
	$(BIN)/python -m sora2api.bench $(BENCH)

# The simulator alone, its accounts kept in data/simulator.json; it prints the `export` lines
# that point `make run` at it. SIM_PORT picks its port; SIM_ARGS adds flags (e.g. --access-log).
SIM_PORT ?= 8100
simulator: install
	$(BIN)/python -m sora2api.simulator --port $(SIM_PORT) --time-scale 0.05 --accounts 2 \
		--state data/simulator.json $(SIM_ARGS)

# The whole product against the simulator: no Sora account needed (Sora itself shut down in 2026).
# `make demo SIM_PORT=8200 PORT=8001` moves both; a taken port stops it with one line.
demo: install
	@$(BIN)/python scripts/demo.py --config $(CONFIG) --sim-port $(SIM_PORT) \
		$(if $(PORT),--port $(PORT)) $(SIM_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
