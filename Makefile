# make demo: everything on the embedded default.  make test: lint, types, the whole suite.
# The first of python3.11, python3.12, python3 that runs and is 3.11 or 3.12 (or PYTHON=...).
ifeq ($(origin PYTHON), undefined)
PYTHON := $(shell for p in python3.11 python3.12 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' 2>/dev/null \
	&& { command -v $$p; break; }; done)
endif
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck unit fuzz clean docs compiled pure test-compiled

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "cxstream needs Python 3.11 or 3.12: none found (set PYTHON=/path/to/python3.12)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cxstream demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

# The hot operators compiled with mypyc, in place (needs a C compiler; the first build of a
# checkout 7-8 minutes, mypy reading the dependencies' stubs; later ones about 30 s).
# Python loads them before the .py files: after editing an operator, run it again or
# `make pure` (the suite and `cxstream run` refuse a compiled module built from another source).
# mypyc 2.4's incremental build fails once a compiled module has changed (its cache forgets
# that the model step's classes are Python classes): the C is then made again from scratch
# (mypy's cache kept, about a minute and a quarter on two cores).
compiled: $(STAMP)
	CX_COMPILE=1 $(BIN)/python setup.py --quiet build_ext --inplace -j 2 || { \
	  echo "compiled: the build failed; making the C again from scratch (a type or C error fails again)"; \
	  rm -rf build && CX_COMPILE=1 $(BIN)/python setup.py --quiet build_ext --inplace -j 2; }

pure:
	rm -f operators/*.so operators/compiled.json
	rm -rf build

# The suite on the compiled build, then back to the Python source (CI runs both).
test-compiled: compiled
	CX_EXPECT_BUILD=compiled $(BIN)/pytest; status=$$?; $(MAKE) --no-print-directory pure; exit $$status

# Coverage-guided fuzzing of the event parser and the WebSocket protocol (not in `test`).
FUZZ_RUNS ?= 200000
fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[fuzz]'
	$(BIN)/python -m tests.fuzz_inputs -atheris_runs=$(FUZZ_RUNS)

clean: pure
	rm -rf $(VENV) .cxstream .mypy_cache .ruff_cache .pytest_cache

docs: $(STAMP)
	$(BIN)/python -m cxstream.settings > docs/settings.md
