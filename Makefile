# Everything a fresh machine with python3.11 needs: the first `make demo` or `make test` creates .venv.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch's CPU threads: the test machine has 2 cores
export OMP_NUM_THREADS ?= 2

.PHONY: venv demo test test-slow bench extension clean

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
	bash tools/blender_ui/setup_root.sh || echo "make test: no Blender UI root; the ui tests will say why they skip"
	$(PY) -m pytest -q -rs tests

test-slow: $(STAMP)
	sh tools/setup_gl.sh
	$(PY) -m pytest -q -m slow tests

clean:
	rm -rf out dist .pytest_cache

extension: $(STAMP)
	$(PY) tools/build_extension.py --output-dir dist

bench: $(STAMP)
	$(PY) -m imfit_engine.bench
	$(PY) bench/nodes_bench.py
