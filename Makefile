# gpu.ops — self-installing entry points. `make demo` and `make test` are all a new user needs.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
# pip.conf on some machines names index dirs that do not exist; keep installs readable
# ansible-test --requirements echoes every pip step; show its test lines and errors only
ATFILTER := grep -v -E "^(Collecting|Downloading|Installing|Successfully|Requirement already|  (Downloading|Using cached|Attempting|Found existing|Uninstalling|Successfully|Building|Created|Stored|Preparing|Getting|━)|Attempting uninstall|Found existing|Uninstalling|WARNING: Location|Looking in|Processing|Obtaining|Building|Created wheel|Stored in|Preparing|Getting requirements)" || true
QUIETPIP := grep -v -e "is ignored: it is neither a file nor a directory" -e "BuildBackendWarning" -e "_filter_existing_files" || true
.DEFAULT_GOAL := help

# Newest Python >= 3.11 that really runs (pyenv shims can exist for versions that are not installed).
PYTHON ?= $(shell scripts/find-python)
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# ansible-test lives in its own venv: `--requirements` pins and downgrades packages in the venv it runs from.
ATVENV := .venv-at
ATSTAMP := $(ATVENV)/.installed
COLL := collections/ansible_collections/gpu/ops
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: help sysdeps venv demo test pytest sanity units lint bench clean sim-start sim-stop

help:
	@echo "make demo    full run on the local GPU-cloud simulator (no account, no cost)"
	@echo "make test    everything CI runs: pytest suites, ansible-test sanity + units, lint"
	@echo "make bench   benchmarks (table printed, JSON in benchmarks/results/)"
	@echo "make venv | sanity | units | lint | clean"

venv: $(STAMP)

$(STAMP): pyproject.toml scripts/find-python
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.11 found (PATH or ~/.pyenv/versions)" >&2; exit 1; }
	@if [ ! -x $(VPY) ] || ! $(VPY) -c 'import sys' 2>/dev/null; then \
	  echo "creating $(VENV) with $(PYTHON) ($$($(PYTHON) -V))"; rm -rf $(VENV); $(PYTHON) -m venv $(VENV); fi
	@CORE=$$($(VPY) -c 'import sys; print("ansible-core>=2.21,<2.22" if sys.version_info >= (3, 12) else "ansible-core>=2.19,<2.20")'); \
	  { $(VPY) -m pip install -q --upgrade pip && \
	    $(VPY) -m pip install -q -e '.[test]' "$$CORE"; } 2>&1 | { $(QUIETPIP); }
	@touch $(STAMP)

$(ATSTAMP): pyproject.toml scripts/find-python
	@if [ ! -x $(ATVENV)/bin/python ] || ! $(ATVENV)/bin/python -c 'import sys' 2>/dev/null; then \
	  rm -rf $(ATVENV); $(PYTHON) -m venv $(ATVENV); fi
	@CORE=$$($(ATVENV)/bin/python -c 'import sys; print("ansible-core>=2.21,<2.22" if sys.version_info >= (3, 12) else "ansible-core>=2.19,<2.20")'); \
	  $(ATVENV)/bin/python -m pip install -q "$$CORE" 2>&1 | { $(QUIETPIP); }
	@scripts/ansible-test-offline-pip $(ATVENV)/bin/python
	@touch $(ATSTAMP)

# system packages first: a fresh machine gets them installed, or one command to run and exit 2 (no traceback)
sysdeps:
	@scripts/system-deps

demo: sysdeps venv
	@$(VPY) -m gpuops.demo

# The README's test command. Runs every suite; fails if any fails.
test: venv
	@$(MAKE) --no-print-directory pytest
	@$(MAKE) --no-print-directory sanity
	@$(MAKE) --no-print-directory lint

pytest: sysdeps venv
	$(VPY) -m pytest -n $${GPUOPS_TEST_WORKERS:-2} $(PYTEST_ARGS)

sanity: venv $(ATSTAMP)
	@cd $(COLL) && ../../../../$(ATVENV)/bin/ansible-test sanity --local --python $$(../../../../$(ATVENV)/bin/python -c 'import sys;print("%d.%d"%sys.version_info[:2])') --requirements --color no 2>&1 | { $(ATFILTER); }
	@$(MAKE) --no-print-directory units

units: venv $(ATSTAMP)
	@cd $(COLL) && ../../../../$(ATVENV)/bin/ansible-test units --local --python $$(../../../../$(ATVENV)/bin/python -c 'import sys;print("%d.%d"%sys.version_info[:2])') --requirements --color no 2>&1 | { $(ATFILTER); }

lint: venv
	@$(VENV)/bin/ruff check src tests benchmarks
	@$(VENV)/bin/ruff check $(COLL)
	@$(VENV)/bin/ansible-lint --offline --profile production
	@cd $(COLL) && ../../../../$(VENV)/bin/antsibull-changelog lint

bench: venv
	@mkdir -p benchmarks/results
	@$(VPY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(ATVENV) .sim runs tests/output $(COLL)/tests/output .pytest_cache
