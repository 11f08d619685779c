# One command each, on a fresh clone: the venv is created and the project installed on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/rig demo

# Benchmarks on the paced simulated station (QUICK=1: smaller transfers, under ~2 minutes).
bench: $(STAMP)
	$(BIN)/python bench/run.py $(if $(QUICK),--quick)

lint: $(STAMP)
	$(BIN)/ruff check rig tests bench conftest.py
	$(BIN)/ruff format --check rig tests bench conftest.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
