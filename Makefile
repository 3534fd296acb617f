# halo-exchange: the two commands a newcomer needs are `make run` and `make test`.
# Each creates .venv on first use, so a fresh machine needs only Python 3.11 and make.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Stamps record which install is current; editing setup.py reinstalls.
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
# setuptools' "Editable installation ... be careful with folders in your working directory" box, printed by
# every editable install: nothing a user can act on, so filtered (pip hands the variable to the build backend).
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

.PHONY: run test lint bench fuzz conformance conformance-peg conformance-transfer clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): setup.py pyproject.toml | $(BIN)/python
	$(QUIET_EDITABLE) $(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): setup.py pyproject.toml | $(BIN)/python
	$(QUIET_EDITABLE) $(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_RUN)

# The main job: the devnet node with exchange mode on; its control RPC listens on 127.0.0.1:55780.
# DATADIR is relative to this directory (the repository's data/devnet, ignored by git); ARGS are more flags:
#   make run DATADIR=/srv/halo ARGS="--api-port 56779 --mine-every 5"
DATADIR ?= data/devnet
ARGS ?=
run: $(STAMP_RUN)
	$(BIN)/halo-exchange devnet --datadir $(DATADIR) $(ARGS)

# The linter first (ruff: pyflakes, pycodestyle, pep8-naming, isort; configured in pyproject.toml), then the
# whole suite. `$(BIN)/python -m pytest tests -m "not slow"` runs the fast tests alone.
test: lint
	$(BIN)/python -m pytest tests

lint: $(STAMP_TEST)
	$(BIN)/ruff check .

bench: $(STAMP_TEST)
	$(BIN)/python -m tests.bench

# The issue-14 fuzz (tests/fuzz) of a fresh devnet's two ports: 100,000 hostile requests, progress on stderr;
# `make test` runs it at 600. FUZZ_SEED picks the draw (default 14), FUZZ_REQUESTS the size.
FUZZ_SEED ?= 14
FUZZ_REQUESTS ?= 100000
fuzz: $(STAMP_TEST)
	FUZZ_SEED=$(FUZZ_SEED) $(BIN)/python -m tests.fuzz --requests $(FUZZ_REQUESTS)

# Differential runs against bitbay-core's own C++ (docs/conformance.md). Not part of `make test`: each needs a
# JSON-lines driver executable around bitbay-core's code, built and kept outside this repository (bitbay-core's
# code and builds of it are not committed here); these targets build nothing but the usual .venv.
#   PEG_ORACLE=/path/peg-oracle TRANSFER_ORACLE=/path/transfer-oracle make conformance
#   CONFORMANCE_ARGS="--cases 5000" (peg library), TRANSFER_ARGS="--cases 20000 --seed 2" (transfer rule)
conformance: conformance-peg conformance-transfer

conformance-peg: $(STAMP_RUN)
	@if [ -z "$(PEG_ORACLE)" ]; then \
		echo "conformance-peg: set PEG_ORACLE to a driver of the peg-library protocol (docs/conformance.md)" >&2; \
		exit 2; fi
	PEG_ORACLE="$(PEG_ORACLE)" $(BIN)/python -m tests.conformance $(CONFORMANCE_ARGS)

TRANSFER_ARGS ?= --cases 10000
conformance-transfer: $(STAMP_RUN)
	@if [ -z "$(TRANSFER_ORACLE)" ]; then \
		echo "conformance-transfer: set TRANSFER_ORACLE to the transfer-oracle driver (docs/conformance-transfer.md)" >&2; \
		exit 2; fi
	TRANSFER_ORACLE="$(TRANSFER_ORACLE)" $(BIN)/python -m tests.conformance.transfer $(TRANSFER_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
