# Two entry points for a fresh machine with Python 3.11: `make run` and `make test`.
# Both create .venv, install the locked dependency set with uv, and install this project into it.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= standard
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup run smoke test lock clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv

$(VENV)/.installed: $(BIN)/uv requirements/requirements.lock setup.py
	$(BIN)/uv pip install --python $(BIN)/python --quiet -r requirements/requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

run: setup
	$(BIN)/digits run --profile $(PROFILE)

smoke: setup
	$(BIN)/digits run --profile smoke

test: setup
	$(BIN)/python -m pytest

lock: $(BIN)/uv
	$(BIN)/uv pip compile requirements/requirements.in --python-version 3.11 -o requirements/requirements.lock

clean:
	rm -rf $(VENV) output
