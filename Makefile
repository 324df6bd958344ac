# Two commands do all set-up on a fresh machine:
#   make run    venv + install + the main job on the embedded default (offline, CPU)
#   make test   venv + install (+ Debian chromium for the report's browser test) + the test suite (what CI runs)
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: setup run test lint slow browser

setup: $(VENV)/.installed

# The compare report's browser test needs Debian's chromium: installed here when missing and we are root.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }; \
	  else echo "chromium missing: run 'sudo apt-get install -y chromium' (tests/test_compare.py needs it)"; fi; }

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: here it is a local CPU wheel; unpinned it would pull GBs of CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# bitsandbytes for the QLoRA test only (its CPU backend quantizes NF4), beside site-packages: installed there,
	# every `import peft` would import it and torch's compiler with it (seconds a process, in every CLI test).
	$(PY) -m pip install -q --no-deps --target $(VENV)/bnb 'bitsandbytes==0.50.2'
	touch $@

run: setup
	$(PY) -m medqa.train $(ARGS)

test: setup browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	# two workers; the files that share a training-run fixture stay on one (tests/conftest.py, _WorkerGroups)
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup

slow: setup
	$(PY) -m pytest -q -m slow
