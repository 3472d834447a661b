# mtrec workbook: set-up, execution and tests.
#
#   make workbook            set up, fetch data, execute every notebook (PROFILE=auto)
#   make workbook PROFILE=smoke|cpu|gpu
#   make test                set up, fetch data, lint, then unit + notebook tests (smoke)
#   make lint                ruff, notebook checks, import layers (lint-imports), mypy: via pre-commit
#   make lab                 JupyterLab on the notebooks with the workbook's kernel
#   make browser-deps        Debian's Chromium for the browser test (run by make test)
#
# Overridable: PYTHON (the interpreter that creates .venv), VENV, PROFILE, PYTEST_ARGS (default: one
# pytest-xdist worker per core; PYTEST_ARGS= runs serially), MYPY_CACHE_DIR, and
# TORCH_SPEC, the pip arguments that install PyTorch first (e.g.
# TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu121"). An installed torch
# that satisfies the package's range is kept; it is never reinstalled.

PYTHON      ?= python3
VENV        ?= .venv
PROFILE     ?= auto
TORCH_SPEC  ?= torch==2.13.0
PYTEST_ARGS ?= -n auto --dist worksteal
KERNEL_NAME ?= mtrec

PY    := $(VENV)/bin/python
STAMP := $(VENV)/.mtrec-installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
# mypy's incremental cache outside the clone (validated by file hashes, shared by every checkout on
# this machine): a fresh clone's lint re-checks only what changed, 3 s instead of about 50.
export MYPY_CACHE_DIR ?= $(HOME)/.cache/mtrec/mypy

.PHONY: setup data workbook test lint lab clean help browser-deps

help:
	@sed -n '2,14p' Makefile

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	@if $(PY) -c "import torch" 2>/dev/null; then \
		echo "torch $$($(PY) -c 'import torch; print(torch.__version__)') already installed: kept"; \
	else \
		echo "installing PyTorch first: pip install $(TORCH_SPEC)"; \
		$(PY) -m pip install --quiet $(TORCH_SPEC); \
	fi
	$(PY) -m pip install --quiet -e ".[test]"
	@$(PY) -m pip install --quiet -e ".[baselines]" || \
		echo "note: scikit-surprise did not install; notebook 03 quotes its published numbers instead"
	$(PY) -m ipykernel install --user --name $(KERNEL_NAME) --display-name "Python (mtrec)" >/dev/null
	@touch $(STAMP)

setup: $(STAMP)

data: setup
	$(PY) -m mtrec_utils.data

workbook: data
	$(PY) -m mtrec_utils.run --profile $(PROFILE)

# Debian's Chromium for the browser test (Playwright's own browser download does not work offline).
browser-deps:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "note: the browser test needs Chromium: sudo apt-get install -y chromium"; \
	fi

# ruff, ruff format, the notebooks' storage check, the import layers and mypy: .pre-commit-config.yaml
lint: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/pre-commit run --all-files --show-diff-on-failure

test: data lint browser-deps
	$(PY) -m pytest $(PYTEST_ARGS)

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf outputs .pytest_cache .ruff_cache
