# halo-exchange: the two commands a newcomer needs are `make run` and `make test`.
# Each creates .venv on first use, so a fresh machine needs only Python 3.11 and make.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Stamps record which install is current; editing setup.py reinstalls.
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test

.PHONY: run test lint bench conformance peg-oracle-given clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): setup.py pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): setup.py pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_RUN)

# The main job: the devnet node with exchange mode on; its control RPC listens on 127.0.0.1:55780.
DATADIR ?= data/devnet
run: $(STAMP_RUN)
	$(BIN)/halo-exchange devnet --datadir $(DATADIR)

# The linter first (ruff: pyflakes, pycodestyle, pep8-naming, isort; configured in pyproject.toml), then the
# whole suite. `$(BIN)/python -m pytest tests -m "not slow"` runs the fast tests alone.
test: lint
	$(BIN)/python -m pytest tests

lint: $(STAMP_TEST)
	$(BIN)/ruff check .

bench: $(STAMP_TEST)
	$(BIN)/python -m tests.bench

# Differential run of halo_exchange.peg against bitbay-core's own peg code (docs/conformance.md). Not part of
# `make test`: it needs PEG_ORACLE, a JSON-lines driver executable around bitbay-core's src/peg that is built
# and kept outside this repository (bitbay-core's code and builds of it are not committed here). This target
# builds nothing but the usual .venv. CONFORMANCE_ARGS passes options, e.g. CONFORMANCE_ARGS="--cases 5000".
conformance: peg-oracle-given $(STAMP_RUN)
	PEG_ORACLE="$(PEG_ORACLE)" $(BIN)/python -m tests.conformance $(CONFORMANCE_ARGS)

peg-oracle-given:
	@if [ -z "$(PEG_ORACLE)" ]; then \
		echo "make conformance needs PEG_ORACLE=/path/to/peg-oracle: an executable that answers the JSON-lines"; \
		echo "protocol of docs/conformance.md, built from bitbay-core's src/peg outside this repository."; \
		exit 2; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
