# fedheads: two commands on a fresh machine.
#   make run   - install everything, then run the demo experiment
#   make test  - install everything, then run the whole test suite
# Each creates .venv if missing, installs torch==2.13.0 first (an open range
# pulls a multi-GB CUDA build), then the project, then the offline assets.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fedheads-installed

.PHONY: install assets browser run test test-unit lint typecheck clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

assets: install
	$(VENV)/bin/fedheads assets

run: assets
	$(VENV)/bin/fedheads run --preset demo

# Browser tests drive Debian's chromium package (never a downloaded browser).
browser:
	command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }

test: assets browser
	$(PY) -m pytest -q

test-unit: install
	$(PY) -m pytest -q -m "not integration" tests/fedcore

lint: install
	$(PY) -m ruff check app worker fedcore tests bench

typecheck: install
	$(PY) -m mypy fedcore app worker

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
