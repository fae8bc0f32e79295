"""Each private module's ``__all__`` says what the rest of the package takes from it.

Every name in it is bound in the module, and every name another module of the package
imports from it is in it (a name with a leading underscore is private to the module and
says so itself). Read with ``ast``, like the import graph: nothing is imported.
"""

from __future__ import annotations

import ast
import functools

import pytest

from .test_import_graph import MODULES, _resolve


def _bound(tree: ast.Module) -> set[str]:
    """The names a module binds at its top level (under an ``if`` too)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _declared(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(name) for name in value]
    return None


TREES = {name: ast.parse(path.read_text()) for name, path in MODULES.items()}
PRIVATE = sorted(
    name
    for name in MODULES
    if name.rsplit(".", 1)[-1].startswith("_")
    and not name.endswith(("__init__", "__main__"))
    and MODULES[name].name != "__init__.py"
)


@functools.cache
def _taken() -> dict[str, dict[str, set[str]]]:
    """For each module, each public-looking name the package's other modules import from
    it, and who (the whole package read once)."""
    taken: dict[str, dict[str, set[str]]] = {}
    for name, tree in TREES.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = _resolve(name, node)
            for alias in node.names:
                if not alias.name.startswith("_") and f"{source}.{alias.name}" not in MODULES:
                    taken.setdefault(source, {}).setdefault(alias.name, set()).add(name)
    return taken


def _taken_from(module: str) -> dict[str, set[str]]:
    return _taken().get(module, {})


@pytest.mark.parametrize("module", PRIVATE)
def test_all_is_what_the_package_takes(module: str) -> None:
    declared = _declared(TREES[module])
    assert declared is not None, f"{module} has no __all__"
    unbound = sorted(set(declared) - _bound(TREES[module]))
    assert not unbound, f"{module}.__all__ names what it does not define: {unbound}"
    unlisted = {n: sorted(w) for n, w in _taken_from(module).items() if n not in declared}
    assert not unlisted, f"{module}.__all__ leaves out what others import: {unlisted}"


def test_a_stale_list_is_found() -> None:
    """The check itself sees a name taken but not listed (so a pass means something)."""
    assert "register" in _taken_from("cellcast_async._redact")
    assert "token_values" in _bound(TREES["cellcast_async._redact"])
