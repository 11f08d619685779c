# One command each, on a fresh clone: the venv is created and the project installed on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test demo bench lint clean soak

# Python caches compiled modules, and pytest the modules whose asserts it rewrites (the tests and
# every module of a pytest plugin's distribution: the rig, labgrid, hypothesis), in __pycache__.
# With PYTHONDONTWRITEBYTECODE set (some CI images and shells set it), every process compiled
# them again: each pytest run of the suite (the xdist workers, ~20 pytester runs) spent ~2 s on
# it and each `rig` subprocess ~0.5 s. __pycache__ is ignored by git.
unexport PYTHONDONTWRITEBYTECODE

# pyserial and labgrid's pyserial-labgrid (the labgrid extra, in dev) install the same serial/
# files and the last one installed wins: the fork is reinstalled last, so the venv runs it
# whatever order pip chose (docs/lab.md "pyserial"). A copy of each goes to $(SERIALS) for
# tests/labgrid/test_serial_packages.py, which runs the rig's RFC 2217 paths with either.
SERIALS := $(VENV)/serial-packages
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps pyserial-labgrid
	rm -rf $(SERIALS)
	$(BIN)/python -m pip install --quiet --no-deps --target $(SERIALS)/pyserial 'pyserial==3.5'
	$(BIN)/python -m pip install --quiet --no-deps --target $(SERIALS)/pyserial-labgrid 'pyserial-labgrid==3.5.0.2'
	touch $(STAMP)

# -n 4 on 2 cores: many tests wait (serial timeouts, relay sequences, paced boot logs), so more
# workers than cores overlap the waits. -n 6 was faster on a quiet machine (149 s vs 170 s before
# the farm stayed on one worker) but under a CPU hog it starved a simulated chip past esptool's
# 0.2 s MEM_END deadline (1 run in 7): a real chip has its own CPU, a simulated one shares ours.
# conftest.py keeps each module that shares a costly fixture (ONE_WORKER_MODULES: the lab farm,
# the rig serve and simulator RFC 2217 benches) whole on one worker.
test: $(STAMP)
	$(BIN)/python -m pytest -n 4 --dist load $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/rig demo

# The full fault matrix (docs/faults.md): every fault kind x RIG_SOAK_SEEDS seeds (default 20),
# then a deeper run of the config fuzzer. Prints the table; fails on any invariant violation.
soak: $(STAMP)
	RIG_SOAK=1 $(BIN)/python -m pytest -n 2 -p no:cacheprovider tests/soak $(PYTEST_ARGS)
	RIG_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),1000) $(BIN)/python -m pytest -n 2 -q tests/config/test_config_fuzz.py

# Benchmarks on the paced simulated station, rig and stock esptool side by side (QUICK=1:
# smaller transfers and fewer contenders, about 3 minutes; the full run about 6).
bench: $(STAMP)
	$(BIN)/python bench/run.py $(if $(QUICK),--quick)

# ruff, then the import contracts of pyproject.toml (the layers; who may import the simulator).
lint: $(STAMP)
	$(BIN)/ruff check rig tests bench conftest.py
	$(BIN)/ruff format --check rig tests bench conftest.py
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
