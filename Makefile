# The Autoencoders book: every set-up step a reader or CI needs.
#   make book   - create .venv if needed, execute every chapter, build the website
#   make test   - unit tests, every notebook under nbval (quick mode, CPU), warning-free book build
#   make seeds  - the notebooks under nbval in quick mode for AELIB_SEED=0..4
#   make bench  - training-throughput benchmark (ratio printed last)
#   make clean  - remove build outputs (keeps .venv)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard book/*.ipynb))

# Paths handed to Jupyter kernels must be absolute: kernels start in book/.
AELIB_DATA_DIR ?= $(HOME)/.cache/aelib/data
export AELIB_DATA_DIR := $(abspath $(AELIB_DATA_DIR))
# Builds and CI draw no progress bars (the website would show dead widget output).
export AELIB_PROGRESS ?= 0
export PYTHONDONTWRITEBYTECODE := 1

# Quick, CPU-only, offline settings for tests and CI.
QUICK_ENV := AELIB_QUICK=1 AELIB_DATASET=digits AELIB_DEVICE=cpu
CELL_TIMEOUT ?= 1800

.PHONY: venv book test unit notebooks book-quick seeds bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[book,test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

book: $(STAMP)
	@cache=$${AELIB_CACHE_DIR:-$$HOME/.cache/aelib/checkpoints}
	AELIB_CACHE_DIR=$$cache $(BIN)/jupyter-book build . --warningiserror --keep-going
	echo "The book is at file://$(CURDIR)/_build/html/index.html"

# make test = unit tests + every notebook under nbval (one pytest run), then a
# quick-mode book build with warnings as errors. Fresh checkpoint cache each time.
test: $(STAMP)
	@cache=$$(mktemp -d)
	trap 'rm -rf "$$cache"' EXIT
	export AELIB_CACHE_DIR=$$cache $(QUICK_ENV)
	$(BIN)/python -m pytest tests $(NOTEBOOKS) --nbval-lax --nbval-current-env \
	    --nbval-cell-timeout=$(CELL_TIMEOUT) -p no:cacheprovider
	rm -rf _build/html _build/jupyter_execute
	$(BIN)/jupyter-book build . --warningiserror --keep-going
	echo "quick-mode book built at _build/html/index.html"

seeds: $(STAMP)
	@for seed in 0 1 2 3 4; do
	  cache=$$(mktemp -d)
	  echo "=== AELIB_SEED=$$seed"
	  AELIB_SEED=$$seed AELIB_CACHE_DIR=$$cache $(QUICK_ENV) $(BIN)/python -m pytest $(NOTEBOOKS) \
	      --nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) -p no:cacheprovider -q
	  rm -rf "$$cache"
	done

bench: $(STAMP)
	@cache=$$(mktemp -d)
	trap 'rm -rf "$$cache"' EXIT
	AELIB_CACHE_DIR=$$cache $(BIN)/python bench/throughput.py

clean:
	@rm -rf _build .pytest_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
