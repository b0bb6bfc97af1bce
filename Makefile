# Two commands: `make lab` (JupyterLab on notebooks/) and `make test` (every test).
# Both create .venv with a Python 3.11-3.13 if it is missing and install gradlab (editable)
# with the exact versions of $(LOCK). GPU machines: `make lab EXTRAS=gpu,lab,test`.
# `make test-oldest`: the unit tests against the oldest supported set ($(OLDEST_PINS)).
# `make docs`: the documentation site in docs/_build/html, built offline from the repository.
#
# Which Python: PYTHON=/path/to/python when given; else `python3` if it is 3.11-3.13, else the
# first of python3.13, python3.12, python3.11 on PATH (pyproject's requires-python: >=3.11,<3.14).
PYTHON_IN_RANGE := import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))
find_python = $(firstword $(foreach p,python3 python3.13 python3.12 python3.11,$(shell command -v $(p) >/dev/null 2>&1 && $(p) -c '$(PYTHON_IN_RANGE)' 2>/dev/null && echo $(p))))
PYTHON ?= $(find_python)
# Fails with what to do when no Python in range was found (or PYTHON= is out of range); else says which.
define check_python
@test -n "$(PYTHON)" || { echo "gradlab needs Python 3.11, 3.12 or 3.13: none of python3, python3.13, python3.12, python3.11 on PATH is one; run make PYTHON=/path/to/python3.x"; exit 1; }
@$(PYTHON) -c '$(PYTHON_IN_RANGE)' || { echo "gradlab needs Python 3.11, 3.12 or 3.13; PYTHON=$(PYTHON) is $$($(PYTHON) -V 2>&1)"; exit 1; }
@echo "make: using $(PYTHON) ($$($(PYTHON) -V 2>&1)) for $(1)"
endef
VENV   ?= .venv
EXTRAS ?= cpu,lab,test
BIN    := $(VENV)/bin
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
LOCK   ?= requirements/lock-cpu.txt
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install lab test check test-oldest lint bench profile gpu-check clean docs which-python

install: $(STAMP)

$(BIN)/python:
	$(call check_python,$(VENV))
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(LOCK) -e ".[$(EXTRAS)]"
	@touch $@

# The oldest supported versions, in their own virtualenv: unit tests and doctests only
# (no notebooks, no browser), with gradlab[cpu,lab] (the unit tests draw figures and build the lab).
# The test tools come from the same constraints file.
OLDEST      ?= .venv-oldest
OLDEST_PINS ?= requirements/oldest.txt
UNIT_TESTS  := tests gradlab $(addprefix --ignore=tests/,test_notebooks.py test_browser.py test_browser_lab.py browser.py)

$(OLDEST)/bin/python:
	$(call check_python,$(OLDEST))
	$(PYTHON) -m venv $(OLDEST)

$(OLDEST)/.installed: pyproject.toml $(OLDEST_PINS) | $(OLDEST)/bin/python
	$(OLDEST)/bin/python -m pip install -q --upgrade pip
	$(OLDEST)/bin/python -m pip install -q -c $(OLDEST_PINS) -e ".[cpu,lab]" pytest hypothesis psutil pytest-xdist
	@touch $@

test-oldest: $(OLDEST)/.installed
	$(OLDEST)/bin/python -m pip check
	$(OLDEST)/bin/python -m pytest -n 2 --dist loadfile -o addopts="-p no:cacheprovider --durations=10" --doctest-modules $(UNIT_TESTS)

# Which Python `make` would create a virtualenv with (PYTHON= or the first 3.11-3.13 found).
which-python:
	$(call check_python,new virtualenvs)

# JupyterLab refuses to run as root without --allow-root (containers, CI machines).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: install
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(ALLOW_ROOT)

# Two workers (pytest-xdist, one test file per worker at a time: a notebook's cells stay in one
# kernel), then the browser tests on their own: their latency bounds assume nothing else runs.
# tools/chromium.sh installs Debian's Chromium for them where it is missing and it can.
test: install
	tools/chromium.sh
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not browser"
	$(BIN)/python -m pytest -m browser tests/test_browser.py tests/test_browser_lab.py

# The fast loop: unit tests and doctests, without notebooks, browsers, subprocesses or XLA compiles.
check: install
	$(BIN)/python -m pytest tests gradlab -m "not slow" -n 2 --dist loadfile -o addopts="--doctest-modules -p no:cacheprovider --durations=10"

lint: install
	$(BIN)/ruff check gradlab tests benchmarks
	$(BIN)/ruff format --check gradlab tests benchmarks

clean:
	rm -rf $(VENV) $(OLDEST) .pytest_cache build *.egg-info docs/_build docs/api/generated docs/notebooks

bench: install
	$(BIN)/python benchmarks/bench_step.py
	$(BIN)/python benchmarks/bench_fit.py
	$(BIN)/python benchmarks/bench_advise.py
	$(BIN)/python benchmarks/bench_per_example.py

# Where the step's time goes: the Trainer's step beside a hand-written one, timed and profiled op by op.
profile: install
	$(BIN)/python benchmarks/profile_step.py

# The documentation site, offline, from the repository: the guide (docs/guide), the API reference
# from the docstrings, the notebooks with their stored outputs (not executed), in docs/_build/html.
# Any warning (a broken cross-reference included) fails the build.
docs:
	$(MAKE) install EXTRAS=$(EXTRAS),docs
	$(BIN)/python -m sphinx -E -b html -W --keep-going -n -q docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

gpu-check:
	$(BIN)/python benchmarks/gpu_check.py

# Execute every notebook in place for committing (outputs, static PNGs of the figures,
# notebooks/RESOURCES.md), with the `notebooks` extra (kaleido) and a Chromium (apt-get install chromium).
# One notebook: make notebooks RUN_ARGS=notebooks/05_live_lab.ipynb; images only: RUN_ARGS=--images-only
.PHONY: notebooks
notebooks:
	$(MAKE) install EXTRAS=$(EXTRAS),notebooks
	$(BIN)/python tools/run_notebooks.py $(RUN_ARGS)
