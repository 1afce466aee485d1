# Everything a fresh machine with python3.11 needs: the first `make demo` or `make test` creates .venv.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# torch's CPU threads: the test machine has 2 cores
export OMP_NUM_THREADS ?= 2

.PHONY: venv demo test test-matrix test-slow lint format bench extension clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

demo: $(STAMP)
	$(PY) tools/demo.py

# Blender versions besides the pinned bpy 5.0.1 whose node-group and path tests run too (each in a cached venv,
# tools/bpy_venv.sh); `make test MATRIX=` skips them on a machine where a few extra minutes don't pay
MATRIX ?= 4.2.23 4.5.15
MATRIX_TESTS := tests/blender/test_node_tree.py tests/blender/test_operator.py::test_fit_square_photo_builds_group_text_plane_and_metrics \
	tests/blender/test_operator.py::test_rebuild_recreates_the_group_from_the_text \
	tests/blender/test_paths.py::test_large_fits_render_in_eevee_on_the_automatic_path \
	tests/blender/test_paths.py::test_engine_switch_changes_path_and_stays_exact

test: $(STAMP)
	sh tools/setup_gl.sh
	bash tools/blender_ui/setup_root.sh || echo "make test: no Blender UI root; the ui tests will say why they skip"
	$(PY) -m pytest -q -rs tests
	$(MAKE) test-matrix

test-matrix:
	@for v in $(MATRIX); do \
	  echo "bpy $$v: $(MATRIX_TESTS)"; \
	  py=$$(sh tools/bpy_venv.sh $$v) && $$py -m pytest -q -p no:cacheprovider $(MATRIX_TESTS) || exit 1; \
	done

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
	$(PY) bench/kodak_bench.py --quick
	$(PY) bench/nodes_bench.py
	$(PY) bench/resynth_bench.py
