# fracskip: `make demo` runs the main job on the shipped default, `make test` runs the tests.
# Each sets itself up first: a virtual environment with the pinned packages, and the Fashion-MNIST dataset.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
FMNIST := /usr/share/datasets/fashion-mnist
PYTEST_ARGS ?=
# fracskip demo's options: a second `make demo` refuses to replace demo-out/ unless DEMO_ARGS=--force (or -o DIR)
DEMO_ARGS ?=

.PHONY: setup dataset test mutants demo bench clean

setup: $(VENV)/.installed

# torch first, alone: the build the index serves for 2.13.0 (CPU here) stays, nothing installed later pulls another; finn-plus without its
# brevitas==0.13.0 pin (incompatible with torch 2.13; FINN never imports brevitas): see README.
# Byte-compiled afterwards on every core (pip compiles one file at a time: 90 s of set-up became 77 s); the
# .pyc files matter where PYTHONDONTWRITEBYTECODE is set: each process would compile what it imports, 8 s for
# torch and FINN. torch's py312_intrinsics.py is Python 3.12 syntax (pip skips it too).
$(VENV)/.installed: requirements.txt requirements-finn.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 || { \
	  echo "make: fracskip needs Python 3.11 or newer; '$(PYTHON)' is not: install python3.11 or pass PYTHON=..." >&2; \
	  exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --no-compile torch==2.13.0
	$(BIN)/pip install -q --no-compile -r requirements.txt
	$(BIN)/pip install -q --no-compile --no-deps -r requirements-finn.txt
	$(BIN)/pip install -q --no-compile --no-deps --no-build-isolation -e .
	$(BIN)/python -m compileall -qq -j 0 -x py312_intrinsics $(VENV)/lib
	touch $@

# Debian's dataset-fashion-mnist: installed as root, or unpacked into .data/ without root.
dataset:
	@if [ -f $(FMNIST)/t10k-images-idx3-ubyte.gz ] || [ -f .data$(FMNIST)/t10k-images-idx3-ubyte.gz ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
	  mkdir -p .data && cd .data && apt-get download dataset-fashion-mnist && dpkg -x dataset-fashion-mnist_*.deb .; \
	fi

# The slowest ten tests are listed at the end (the CI budget is 15 minutes on 2 cores). Two pytest-xdist workers,
# taking the tests in the order tests/conftest.py gives (longest first); the tests of a module that share module
# fixtures form one xdist_group, and the tiny HDL build is shared by both workers (tests/hil.py). Without
# Verilator the run fails; FRACSKIP_ALLOW_NO_VERILATOR=1 skips the RTL tests instead.
TEST_WORKERS ?= 2
test: setup dataset
	$(BIN)/pytest -m "not vivado and not board" -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder \
	  --durations=10 $(PYTEST_ARGS)

# Hand-written mutants against the tests that should kill them (tests/mutation/run_mutants.py).
mutants: setup dataset
	$(BIN)/python tests/mutation/run_mutants.py --json mutants.json

demo: setup dataset
	$(BIN)/fracskip demo $(DEMO_ARGS)

bench: setup dataset
	$(BIN)/fracskip bench --json

clean:
	rm -rf $(VENV) .data demo-out
