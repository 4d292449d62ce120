# Two commands matter: `make run` and `make test`. Each builds .venv on first use.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint fmt native

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint requirements.lock --editable '.[dev,loadtest,memory]'
	touch $(STAMP)

# The request path compiled to C by mypyc (service/native.py); a no-op while it matches
# the sources. Both commands below compile first, so they run what the image runs.
native: $(STAMP)  ## compile the request path; `make native` again after editing it
	$(BIN)/python -m service.native_build

run: $(STAMP) native  ## run the service (embedded Redis unless REDIS_URL is set); make run PORT=8001
	$(BIN)/slotlock serve --host $(HOST) --port $(PORT)

test: $(STAMP) native  ## run the whole test suite, slow fault tests included
	$(BIN)/pytest

lint: $(STAMP)  ## ruff and mypy, both strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
