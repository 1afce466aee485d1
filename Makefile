# Everything a fresh machine with python3.11 needs: the first `make demo` or `make test` creates .venv.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch's CPU threads: the test machine has 2 cores
export OMP_NUM_THREADS ?= 2

.PHONY: venv demo test test-slow lint format bench extension clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

demo: $(STAMP)
	$(PY) tools/demo.py

test: $(STAMP)
	sh tools/setup_gl.sh
	$(PY) -m pytest -q tests

test-slow: $(STAMP)
	sh tools/setup_gl.sh
	$(PY) -m pytest -q -m slow tests

# ruff: lint rules and the formatter's style are in pyproject.toml ([tool.ruff])
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf out dist .pytest_cache

extension: $(STAMP)
	$(PY) tools/build_extension.py --output-dir dist

bench: $(STAMP)
	$(PY) bench/fit_bench.py
	$(PY) bench/nodes_bench.py
	$(PY) bench/resynth_bench.py
