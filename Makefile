# Set-up and the two everyday commands. Everything installs into .venv; nothing global.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Base install plus the training, serving and replay extras the demo needs.
$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[train,serve,demo]'
	touch $@

# Dev install: everything the test suite needs (PostgreSQL driver, pytest, ruff).
$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/tidal demo --data $(DATA)

# The dashboard's browser tests drive Debian's Chromium (Playwright comes with the dev
# extra); without it they are skipped (and fail under CI=true), so install it here.
$(VENV)/.browser-installed: | $(BIN)/python
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	    echo "could not install chromium: the browser tests will say so"
	touch $@

test: $(VENV)/.dev-installed $(VENV)/.browser-installed
	$(BIN)/python -m pytest -q

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check tidal tests benchmarks

bench: $(VENV)/.dev-installed
	$(BIN)/python benchmarks/tracking.py

clean:
	rm -rf $(VENV) .tidal .pytest_cache
