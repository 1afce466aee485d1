"""The rules of ARCHITECTURE.md, checked on the source: no private names across modules, no import cycles,
the engine never imports bpy and the add-on never torch, and what the add-on imports stays torch-free."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from support import REPO

PACKAGES = ("imfit_engine", "addon")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute (repository-relative) module a ``from ... import`` names."""
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    parts = package.split(".") if package else []
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str):
    """(target module, imported name or None, node) for every import in ``module``, nested ones included."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            for alias in node.names:
                yield target, alias.name, node


def _project_edges(module: str) -> set[str]:
    edges = set()
    for target, name, _ in _imports(module):
        sub = f"{target}.{name}" if name else target
        if sub in MODULES:
            edges.add(sub)  # ``from pkg import module``
        elif target in MODULES:
            edges.add(target)
    edges.discard(module)
    return edges


def test_no_module_imports_another_modules_private_names():
    found = []
    for module in MODULES:
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        bound = set()  # local names bound to project modules
        for target, name, node in _imports(module):
            sub = f"{target}.{name}" if name else target
            if name and name.startswith("_") and not name.startswith("__") and target in MODULES:
                found.append(f"{module}:{node.lineno} imports {target}.{name}")
            if sub in MODULES:
                alias = next(a for a in node.names if a.name == (name or target))
                bound.add(alias.asname or (name or target).split(".")[0])
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                found.append(f"{module}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_no_import_cycles():
    graph = {module: _project_edges(module) for module in MODULES}
    cycles, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    "package, forbidden", [("imfit_engine", {"bpy", "bpy_extras", "mathutils"}), ("addon", {"torch", "PIL"})]
)
def test_layers_keep_to_their_side(package, forbidden):
    found = [
        f"{module}:{node.lineno} imports {target}"
        for module in MODULES
        if module.startswith(package)
        for target, _, node in _imports(module)
        if target.split(".")[0] in forbidden
    ]
    assert not found, "\n".join(found)


def test_what_the_addon_imports_loads_neither_torch_nor_pillow():
    """Blender's Python has numpy but no torch or pillow: the engine modules the add-on imports (addon/engine.py)
    and the public package itself must not pull them in."""
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import tests.blender_util as u; "
        "u.package_module('addon.engine'); import imfit_engine; imfit_engine.WaveletSet; imfit_engine.FitConfig; "
        "print(json.dumps(sorted({'torch', 'PIL'} & set(sys.modules))))"
    )
    done = subprocess.run([sys.executable, "-c", script, str(REPO)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_one_version_string():
    import imfit_engine

    manifest = tomllib.loads((REPO / "blender_manifest.toml").read_text())
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "imfit_engine.__version__"}
    assert manifest["version"] == imfit_engine.__version__
    assert f"## {imfit_engine.__version__}" in (REPO / "CHANGELOG.md").read_text()


def test_public_api_is_what_all_says():
    import imfit_engine

    assert imfit_engine.__all__ == sorted(imfit_engine.__all__)
    for name in imfit_engine.__all__:
        assert getattr(imfit_engine, name) is not None
    for name in ("fit", "fit_file", "render_image", "load", "save"):
        doc = getattr(imfit_engine, name).__doc__
        assert doc and ("Args:" in doc or "Returns" in doc or "Raises" in doc), name
