# Two commands: `make lab` (JupyterLab on notebooks/) and `make test` (every test).
# Both create .venv with Python 3.11 if it is missing and install gradlab (editable)
# with its pinned dependencies. GPU machines: `make lab EXTRAS=gpu,lab,test`.
PYTHON ?= python3.11
VENV   ?= .venv
EXTRAS ?= cpu,lab,test
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
comma  := ,
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install lab test lint bench gpu-check clean

install: $(STAMP)

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "gradlab needs $(PYTHON) (Python 3.11) on PATH, or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	@touch $@

# JupyterLab refuses to run as root without --allow-root (containers, CI machines).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: install
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(ALLOW_ROOT)

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check gradlab tests benchmarks
	$(BIN)/ruff format --check gradlab tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

bench: install
	$(BIN)/python benchmarks/bench_step.py

gpu-check:
	$(BIN)/python benchmarks/gpu_check.py
