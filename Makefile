# fedheads: two commands on a fresh machine.
#   make run   - install everything, then serve the dashboard on http://127.0.0.1:8000
#   make test  - install everything, then run the whole test suite
# Each creates .venv if missing, installs torch==2.13.0 first (an open range
# pulls a multi-GB CUDA build), then the project, then the offline assets.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fedheads-installed

.PHONY: install assets browser compose run test test-unit lint typecheck docs docs-check clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

assets: install
	$(VENV)/bin/fedheads assets

# The dashboard on its embedded defaults: SQLite under ./var and a local executor.
run: assets
	$(VENV)/bin/fedheads serve

# Browser tests drive Debian's chromium package (never a downloaded browser).
browser:
	command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }

# tests/app/test_docs.py validates docker-compose.yml with a compose client (the docker CLI's compose
# plugin if present, else Debian's docker-compose package); tests/deploy builds and runs the stack with
# Debian's docker.io (dockerd, which .ci/run starts) and debootstrap (deploy/base-image.sh).
compose:
	pkgs=""; \
	command -v dockerd >/dev/null 2>&1 || pkgs="$$pkgs docker.io"; \
	command -v debootstrap >/dev/null 2>&1 || pkgs="$$pkgs debootstrap"; \
	docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || pkgs="$$pkgs docker-compose"; \
	[ -z "$$pkgs" ] || { apt-get update -qq && apt-get install -y -qq $$pkgs; }

test: assets browser compose
	$(PY) -m pytest -q

test-unit: install
	$(PY) -m pytest -q -m "not integration" tests/fedcore

lint: install
	$(PY) -m ruff check app worker fedcore tests bench

typecheck: install
	$(PY) -m mypy fedcore app worker

# Regenerate the generated docs (docs/openapi.json, the settings table, .env.example), or check them.
docs: install
	$(VENV)/bin/fedheads openapi --out docs/openapi.json
	$(VENV)/bin/fedheads docs-config

docs-check: install
	$(VENV)/bin/fedheads openapi --out docs/openapi.json --check
	$(VENV)/bin/fedheads docs-config --check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
