# shortcutbench: the two promised commands are `make report` and `make test`.
# Everything they need is installed here, into .venv, from pinned files.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= 4
# Jobs find the venv's python, snakemake and pytest first.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: env test-env report test test-fast test-zoo test-cluster lint bench clean

## env: the runtime environment (.venv) with pinned dependencies
env: $(VENV)/.runtime-installed

$(VENV)/.runtime-installed: requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' || \
	  { echo "error: Python 3.11 or newer is needed; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	# The package itself, editable: scripts/ and every job import it like any package.
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

## test-env: env plus the test tools and headless Chromium
test-env: $(VENV)/.test-installed
	bash tests/setup_browser.sh

$(VENV)/.test-installed: $(VENV)/.runtime-installed requirements-test.txt
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

## report: run the default sweep and build report/index.html
# On a terminal, progress shows as live bars per rule (snakemake-logger-plugin-rich);
# piped or in CI, Snakemake's plain log.
report: env
	if [ -t 1 ]; then logger="--logger rich"; else logger=""; fi; \
	snakemake --cores $(CORES) $$logger
	@echo "Report: $(CURDIR)/report/index.html"

## test: the linters, then the test suite (unit tests, the real workflow, the report in Chromium)
test: test-env
	$(MAKE) --no-print-directory lint
	pytest

## test-fast: the unit tests only
test-fast: test-env
	pytest -m "not slow"

## test-zoo: the tests that build transformers and timm models (config/zoo.yaml's families through the real workflow)
test-zoo: test-env
	SHORTCUTBENCH_ZOO_TESTS=1 pytest -n 0 -m zoo

## test-cluster: bring up a three-node SLURM cluster here (root), run sweeps through it (one loses a node), stop it
test-cluster: test-env
	bash tests/cluster/run.sh -n 0

## lint: snakemake's own linter, snakefmt and ruff, all clean
lint: test-env
	snakemake --lint
	snakefmt --check Snakefile workflow
	ruff check .

## bench: the performance benchmarks, ~20 minutes (prints figures; see docs/benchmarks.md)
bench: env
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/analysis_scale.py
	$(BIN)/python benchmarks/families.py
	$(BIN)/python benchmarks/gpt_stacking.py
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/zoo.py

clean:
	rm -rf results report logs .snakemake
