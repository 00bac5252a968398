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

# `make bench BENCH="models startup"` runs only those targets (models polls cache many startup).
bench: install-test
	$(BIN)/python -m sora2api.bench $(BENCH)

simulator: install
	$(BIN)/python -m sora2api.simulator --port 8100 --time-scale 0.05 --accounts 2

# The whole product against the simulator: no Sora account needed (Sora itself shut down in 2026).
SIM := http://127.0.0.1:8100
demo: install
	@$(BIN)/python -m sora2api.simulator --port 8100 --time-scale 0.05 --accounts 2 & sim=$$!; \
	trap 'kill $$sim 2>/dev/null' EXIT INT TERM; sleep 1; \
	SORA2API_UPSTREAM_BASE_URL=$(SIM)/backend \
	SORA2API_UPSTREAM_SESSION_URL=$(SIM)/api/auth/session \
	SORA2API_UPSTREAM_OAUTH_URL=$(SIM)/oauth/token \
	SORA2API_UPSTREAM_THIRD_PARTY_URL='$(SIM)/thirdparty/MP4/{post_id}.mp4' \
	SORA2API_STORAGE_DB_PATH=data/demo.db SORA2API_STORAGE_MEDIA_DIR=data/demo-media \
	$(BIN)/python -m sora2api --config $(CONFIG)

clean:
	rm -rf $(VENV) build *.egg-info
