# One command each, on a fresh clone: the venv is created and the project installed on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo bench lint clean soak

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# -n 4 on 2 cores: many tests wait on esptool's serial timeouts, so 4 workers overlap them.
test: $(STAMP)
	$(BIN)/python -m pytest -n 4 --dist loadgroup $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/rig demo

# The full fault matrix (docs/faults.md): every fault kind x RIG_SOAK_SEEDS seeds (default 20),
# then a deeper run of the config fuzzer. Prints the table; fails on any invariant violation.
soak: $(STAMP)
	RIG_SOAK=1 $(BIN)/python -m pytest -n 2 -p no:cacheprovider tests/soak $(PYTEST_ARGS)
	RIG_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),1000) $(BIN)/python -m pytest -n 2 -q tests/config/test_config_fuzz.py

# Benchmarks on the paced simulated station (QUICK=1: smaller transfers, under ~2 minutes).
bench: $(STAMP)
	$(BIN)/python bench/run.py $(if $(QUICK),--quick)

# ruff, then the import contracts of pyproject.toml (the layers; who may import the simulator).
lint: $(STAMP)
	$(BIN)/ruff check rig tests bench conftest.py
	$(BIN)/ruff format --check rig tests bench conftest.py
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
