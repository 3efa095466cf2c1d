# The Autoencoders book: every set-up step a reader or CI needs.
#   make venv   - .venv with every Python package: from requirements.lock (exact versions, every
#                 package) on CPython 3.11 + Linux x86_64 as in CI, elsewhere from constraints.txt
#   make book   - create .venv if needed, execute every chapter, build the website: English at
#                 the root, Simplified Chinese under zh_CN/, Russian under ru/ (one execution)
#   make translations - after an English edit: update the catalogues of book/locales, list what
#                 needs translating (tests/test_translations.py fails until it is translated)
#   make test   - unit tests beside every notebook under nbval (quick mode, CPU, one thread each),
#                 warning-free book build,
#                 then the built site checked offline and in headless Chromium (tests/site) and
#                 the two runs compared, plus a third with another seed (tests/test_determinism.py)
#   make mathjax - the site's own copy of MathJax 3 (npm registry, pinned in package-lock.json)
#   make browser - Debian's chromium for the site test, installed when missing
#   make book-time - wall time of every chapter, quick and full mode (bench/book_time.py)
#   make assignments - student and instructor notebooks of every chapter in assignments/ (nbgrader)
#   make grade-check - the nbgrader course round trip (tests/test_nbgrader.py) on every chapter
#   make seeds  - the notebooks under nbval in quick mode for AELIB_SEED=0..4
#   make bench  - training-throughput benchmarks (each prints its ratio last)
#   make lock   - regenerate requirements.lock with uv (PyPI), keeping its pins where they still fit;
#                 make lock LOCK_FLAGS=--upgrade moves every package to its newest allowed version
#   make clean  - remove build outputs (keeps .venv)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard book/*.ipynb))
# make test runs the notebooks in two groups: NB_BACK after the unit tests in the background,
# NB_FRONT in front, so that the core the unit tests leave idle is used. NB_BACK trains no model
# that another chapter loads first; 07_representations (in front, last) loads chapter 6's models,
# and if chapter 6 has not finished them it trains or resumes them itself (load_or_fit: atomic
# checkpoints, bitwise resume), which costs time but not correctness.
NB_BACK := book/06_vae.ipynb book/07_anomaly.ipynb
NB_FRONT := $(filter-out $(NB_BACK),$(NOTEBOOKS))

# Paths handed to Jupyter kernels must be absolute: kernels start in book/.
AELIB_DATA_DIR ?= $(HOME)/.cache/aelib/data
export AELIB_DATA_DIR := $(abspath $(AELIB_DATA_DIR))
# Builds and CI draw no progress bars (the website would show dead widget output).
export AELIB_PROGRESS ?= 0
export PYTHONDONTWRITEBYTECODE := 1

# Quick, CPU-only, offline settings for tests and CI.
QUICK_ENV := AELIB_QUICK=1 AELIB_DATASET=digits AELIB_DEVICE=cpu
CELL_TIMEOUT ?= 1800

.PHONY: venv lock book test unit notebooks book-quick seeds bench book-time assignments grade-check mathjax \
    browser clean translations

venv: $(STAMP)

# requirements.lock: every Python package of .venv at an exact version, the installer tools
# included, for the interpreter CI uses (LOCK_PLATFORM, which tests/test_lock.py mirrors).
# make lock resolves it from pyproject.toml (base, book, test, instructor), constraints.txt
# and LOCK_TOOLS (pip, and setuptools and wheel for aelib's --no-build-isolation install).
LOCK := requirements.lock
LOCK_UV := uv>=0.13,<0.14
LOCK_TOOLS := pip 'setuptools>=68' wheel '$(LOCK_UV)'
LOCK_COMPILE := uv pip compile pyproject.toml - --extra book --extra test --extra instructor \
    -c constraints.txt --python-version 3.11 --python-platform x86_64-unknown-linux-gnu
LOCK_FLAGS ?=
LOCK_PLATFORM := import platform, sys; sys.exit(not (platform.python_implementation() == "CPython" \
    and sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64"))
CPU_TORCH := from importlib.metadata import version; import sys; sys.exit("+cpu" not in version("torch"))
PYTHON_HERE := import platform as p; print(p.python_implementation(), p.python_version(), "on", \
    p.system(), p.machine())

# MathJax is served by the site itself (html_extra_path), so math renders with no network.
MATHJAX := .mathjax/mathjax/tex-chtml.js
mathjax: $(MATHJAX)

$(MATHJAX): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make: npm not found. The website serves its own copy of MathJax, \
	installed from the npm registry: install Node.js with npm (e.g. 'apt-get install nodejs npm'), then run make again." >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	rm -rf .mathjax && mkdir -p .mathjax/mathjax/output .mathjax/mathjax/input
	src=node_modules/mathjax/es5
	cp -r $$src/tex-chtml.js $$src/a11y $$src/ui $$src/sre $$src/adaptors .mathjax/mathjax/
	cp -r $$src/output/chtml .mathjax/mathjax/output/
	cp -r $$src/input/tex .mathjax/mathjax/input/

# Headless Chromium for tests/site. Installs Debian's package when it is missing and apt-get
# can run; under CI=true a browser that cannot be installed fails the build.
FIND_CHROMIUM := $${CHROMIUM:-$$(command -v chromium || command -v chromium-browser || true)}
browser:
	@if [ -n "$(FIND_CHROMIUM)" ]; then exit 0; fi
	if [ "$$(id -u)" = 0 ]; then as_root=; else as_root="sudo -n"; fi
	if command -v apt-get >/dev/null && $$as_root true 2>/dev/null; then
	  $$as_root apt-get update -qq
	  $$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
	elif [ "$${CI:-}" = true ]; then
	  echo "make browser: chromium is missing and cannot be installed here (needs apt-get as root)." >&2; exit 1
	else
	  echo "make browser: chromium is missing; the browser checks of tests/site will be skipped." \
	       "Install it (Debian/Ubuntu: apt-get install chromium) or set CHROMIUM=/path/to/chromium." >&2
	fi

$(STAMP): pyproject.toml constraints.txt $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$$(grep -m1 '^pip==' $(LOCK))"
	if $(BIN)/python -c '$(LOCK_PLATFORM)'; then
	  lock=$(LOCK)
	  if $(BIN)/python -c '$(CPU_TORCH)' 2>/dev/null; then  # the README's CPU-only laptop set-up
	    echo "make venv: torch is a CPU-only build; leaving out the CUDA libraries of $(LOCK)." >&2
	    lock=$$(mktemp); grep -vE '^(nvidia-|cuda-|triton==)' $(LOCK) > $$lock
	  fi
	  $(BIN)/python -m pip install --quiet -r $$lock
	  $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	  if ! broken=$$($(BIN)/python -m pip check); then
	    echo "$$broken" >&2
	    echo "make venv: $(LOCK) does not satisfy pyproject.toml any more; run 'make lock'." >&2; exit 1
	  fi
	else
	  here=$$($(BIN)/python -c '$(PYTHON_HERE)')
	  echo "make venv: $(LOCK) is for CPython 3.11 on Linux x86_64, not $$here:" \
	       "installing with constraints.txt (only its pins are exact)." >&2
	  $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[book,test,instructor]"
	fi
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Regenerates requirements.lock (needs PyPI); uv comes into .venv at the version the lock pins.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if ! test -x $(BIN)/uv; then
	  $(BIN)/python -m pip install --quiet "$$(grep -m1 '^uv==' $(LOCK) 2>/dev/null || echo '$(LOCK_UV)')"
	fi
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT
	cp $(LOCK) $$tmp/lock 2>/dev/null || true  # uv keeps the pins of its output file where they fit
	printf '%s\n' $(LOCK_TOOLS) | $(BIN)/$(LOCK_COMPILE) $(LOCK_FLAGS) --quiet --no-header -o $$tmp/lock
	{ printf '%s\n' \
	    "# requirements.lock: every Python package of .venv at an exact version (transitive ones and the" \
	    "# installer tools included) for CPython 3.11 on Linux x86_64, where \`make venv\` installs it;" \
	    "# elsewhere make venv falls back to constraints.txt. Do not edit by hand: \`make lock\` made it" \
	    "# with $$($(BIN)/uv --version | cut -d' ' -f1,2), running" \
	    "#   printf '%s\n' $(LOCK_TOOLS) |" \
	    "#     $(strip $(LOCK_COMPILE) $(LOCK_FLAGS)) -o $(LOCK)"
	  cat $$tmp/lock; } > $$tmp/new
	if cmp -s $$tmp/new $(LOCK); then state=unchanged; else state=written; cp $$tmp/new $(LOCK); fi
	echo "make lock: $(LOCK) $$state, $$(grep -c '^[A-Za-z0-9]' $(LOCK)) packages" \
	     "($$(grep -E '^(torch|torchvision)==' $(LOCK) | paste -sd' '))"

book: $(STAMP) $(MATHJAX)
	@cache=$${AELIB_CACHE_DIR:-$$HOME/.cache/aelib/checkpoints}
	# --all: every page is read and every notebook executed again, so a change of dataset, mode,
	# seed, device or aelib never leaves another run's pages in _build (tests/test_book_build.py)
	AELIB_CACHE_DIR=$$cache $(BIN)/jupyter-book build . --warningiserror --keep-going --all
	# the Chinese and Russian editions, from the outputs of the run above (nothing runs again)
	$(BIN)/python book/_ext/editions.py
	echo "The book is at file://$(CURDIR)/_build/html/index.html" \
	     "(中文 zh_CN/book/intro.html, Русский ru/book/intro.html)"

# After an edit of the English text: extract its messages, merge them into the catalogues of
# book/locales (one per page and language, and phrases.po for the say(...) phrases of the
# code), and list what needs translating. tests/test_translations.py fails until it is done.
translations: $(STAMP)
	@$(BIN)/python book/_ext/translations.py update

# make test = unit tests beside every notebook under nbval (two pytest runs at once; the notebooks
# from an empty model cache, recording the glued numbers), then a quick-mode book build with
# warnings as errors that loads the models nbval trained, then the checks of that same site
# (tests/site: offline references, headless Chromium) and tests/test_determinism.py (trained or
# loaded, same numbers; seed 1, other numbers). tests/offline/sitecustomize.py on PYTHONPATH
# refuses any connection that leaves this machine.
test: $(STAMP) $(MATHJAX) browser
	@cache=$$(mktemp -d)
	trap 'rm -rf "$$cache"' EXIT
	export AELIB_CACHE_DIR=$$cache $(QUICK_ENV)
	export PYTHONPATH=$(CURDIR)/tests/offline$${PYTHONPATH:+:$$PYTHONPATH}  # offline guard, every process
	rm -rf _build/glue _build/html _build/jupyter_execute _build/screenshots
	# Two processes side by side, one thread each, so they share CI's two cores without contending
	# for them (two-thread processes side by side slowed each other several-fold): the unit tests
	# and then the NB_BACK notebooks in the background, the NB_FRONT notebooks in front. Every
	# stage runs with one thread, so the nbval and build numbers compare.
	export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
	back_log=$$(mktemp); trap 'rm -rf "$$cache" "$$back_log"' EXIT
	export AELIB_GLUE_RECORD=$(CURDIR)/_build/glue/nbval  # one file per notebook
	nbval="-p glue_values --nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT)"
	( unit_rc=0; back_rc=0
	  $(BIN)/python -m pytest tests --ignore=tests/site --ignore=tests/test_determinism.py \
	      -p no:cacheprovider --durations=10 || unit_rc=$$?
	  PYTHONPATH=$(CURDIR)/tests:$$PYTHONPATH $(BIN)/python -m pytest $$nbval $(NB_BACK) \
	      -p no:cacheprovider --durations=5 || back_rc=$$?
	  echo "unit tests exit $$unit_rc, notebooks $(notdir $(NB_BACK)) exit $$back_rc"
	  [ $$unit_rc = 0 ] && [ $$back_rc = 0 ] ) > "$$back_log" 2>&1 & back_pid=$$!
	front_rc=0
	PYTHONPATH=$(CURDIR)/tests:$$PYTHONPATH $(BIN)/python -m pytest $$nbval $(NB_FRONT) \
	    -p no:cacheprovider --durations=10 || front_rc=$$?
	back_rc=0; wait $$back_pid || back_rc=$$?
	echo "=== unit tests, then $(notdir $(NB_BACK)) (run beside the notebooks above)"; cat "$$back_log"
	if [ $$front_rc != 0 ] || [ $$back_rc != 0 ]; then
	  echo "make test: notebooks in front exit $$front_rc, background (see above) exit $$back_rc" >&2
	  exit 1
	fi
	# the build executes every notebook a second time; its models come from nbval's cache, so the
	# page shows what a reader who loads a saved model sees (test_determinism: the same numbers)
	tests_done=$$SECONDS
	$(BIN)/jupyter-book build . --warningiserror --keep-going --all
	$(BIN)/python book/_ext/editions.py  # zh_CN/ and ru/, from the same executed notebooks
	echo "quick-mode book built at _build/html/index.html, with zh_CN/ and ru/"
	build_done=$$SECONDS
	CHROMIUM="$(FIND_CHROMIUM)" $(BIN)/python -m pytest tests/site tests/test_determinism.py \
	    -p no:cacheprovider --durations=10
	echo "make test: unit tests and nbval $$tests_done s, book build $$(( build_done - tests_done )) s," \
	     "site and determinism $$(( SECONDS - build_done )) s"

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
	AELIB_CACHE_DIR=$$cache $(BIN)/python bench/conv_layout.py

# Wall time of every chapter with an empty cache, quick and full mode; writes book/_generated/runtime.md.
book-time: $(STAMP)
	@$(BIN)/python bench/book_time.py

# Course assignments: the chapters with solutions stubbed out (student) and as they are (instructor).
assignments: $(STAMP)
	@$(BIN)/python -m aelib.assignments --book book --out assignments

# What make test does for one short chapter, for every chapter: an nbgrader course, three
# submissions autograded with the CI settings, feedback, scores from the gradebook.
grade-check: $(STAMP)
	@export $(QUICK_ENV) GRADE_CHAPTERS=all
	export PYTHONPATH=$(CURDIR)/tests/offline$${PYTHONPATH:+:$$PYTHONPATH}  # offline guard
	start=$$(date +%s)
	$(BIN)/python -m pytest tests/test_nbgrader.py -p no:cacheprovider -q
	cat _build/grading/scores.md
	echo "make grade-check: every chapter graded in $$(( $$(date +%s) - start )) s"

clean:
	@rm -rf _build .pytest_cache .mathjax
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
