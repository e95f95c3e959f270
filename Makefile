# Two entry points for a fresh machine with Python 3.11: `make run` and `make test`.
# Both create .venv, install the locked dependency set with uv, and install this project into it.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= standard
export TF_USE_LEGACY_KERAS := 1

.PHONY: setup browser run smoke check docs test test-fast lock clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv

$(VENV)/.installed: $(BIN)/uv requirements/requirements.lock setup.py
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements/requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/digits run --profile $(PROFILE)

smoke: setup
	$(BIN)/digits run --profile smoke

# Debian's chromium, for the drawing-page test (the machine cannot download a browser of its own).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed (as root: apt-get install chromium); the drawing-page test will be skipped"; fi; }

# Lint, format and types of the package code (configured in pyproject.toml); BENCHMARKS.md and the
# README's results table as the records in benchmarks/results/ give them; the docs site, where a broken
# link or anchor fails the build.
check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m benchmarks.results --check
	$(BIN)/python -m mkdocs build --strict --quiet

# The documentation site, served with live reload on 127.0.0.1:8000 (`make check` builds it into build/site/).
docs: setup
	$(BIN)/python -m mkdocs serve --dev-addr 127.0.0.1:8000

# The unit tests only: no pipeline run, no trained model (under a minute).
test-fast: setup
	$(BIN)/python -m pytest -m "not component and not e2e"

# Everything CI runs: the checks, then every test.
test: setup browser check
	$(BIN)/python -m pytest

lock: $(BIN)/uv
	$(BIN)/uv pip compile requirements/requirements.in --python-version 3.11 -o requirements/requirements.lock

clean:
	rm -rf $(VENV) output build
