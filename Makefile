# Two commands: `make lab` (JupyterLab on notebooks/) and `make test` (every test).
# Both create .venv with Python 3.11 if it is missing and install gradlab (editable)
# with the exact versions of $(LOCK). GPU machines: `make lab EXTRAS=gpu,lab,test`.
# `make test-oldest`: the unit tests against the oldest supported set ($(OLDEST_PINS)).
PYTHON ?= python3.11
VENV   ?= .venv
EXTRAS ?= cpu,lab,test
BIN    := $(VENV)/bin
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
LOCK   ?= requirements/lock-cpu.txt
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install lab test check test-oldest lint bench profile gpu-check clean

install: $(STAMP)

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "gradlab needs $(PYTHON) (Python 3.11) on PATH, or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(LOCK) -e ".[$(EXTRAS)]"
	@touch $@

# The oldest supported versions, in their own virtualenv: unit tests and doctests only
# (no notebooks, no browser). The test tools come from the same constraints file.
OLDEST      ?= .venv-oldest
OLDEST_PINS ?= requirements/oldest.txt
UNIT_TESTS  := tests gradlab $(addprefix --ignore=tests/,test_notebooks.py test_browser.py test_browser_lab.py browser.py)

$(OLDEST)/.installed: pyproject.toml $(OLDEST_PINS)
	@command -v $(PYTHON) >/dev/null || { echo "gradlab needs $(PYTHON) (Python 3.11) on PATH"; exit 1; }
	test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install -q --upgrade pip
	$(OLDEST)/bin/python -m pip install -q -c $(OLDEST_PINS) -e ".[cpu]" pytest hypothesis psutil pytest-xdist
	@touch $@

test-oldest: $(OLDEST)/.installed
	$(OLDEST)/bin/python -m pip check
	$(OLDEST)/bin/python -m pytest -n 2 --dist loadfile -o addopts="-p no:cacheprovider --durations=10" --doctest-modules $(UNIT_TESTS)

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
	rm -rf $(VENV) $(OLDEST) .pytest_cache build *.egg-info

bench: install
	$(BIN)/python benchmarks/bench_step.py
	$(BIN)/python benchmarks/bench_fit.py
	$(BIN)/python benchmarks/bench_advise.py
	$(BIN)/python benchmarks/bench_per_example.py

# Where the step's time goes: the Trainer's step beside a hand-written one, timed and profiled op by op.
profile: install
	$(BIN)/python benchmarks/profile_step.py

gpu-check:
	$(BIN)/python benchmarks/gpu_check.py

# Execute every notebook in place for committing (outputs, static PNGs of the figures,
# notebooks/RESOURCES.md), with the `notebooks` extra (kaleido) and a Chromium (apt-get install chromium).
# One notebook: make notebooks RUN_ARGS=notebooks/05_live_lab.ipynb; images only: RUN_ARGS=--images-only
.PHONY: notebooks
notebooks:
	$(MAKE) install EXTRAS=$(EXTRAS),notebooks
	$(BIN)/python tools/run_notebooks.py $(RUN_ARGS)
