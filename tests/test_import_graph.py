"""The package's import graph: no circle anywhere, and the command line's arrows one way.

Every module of ``cellcast_async`` (the SDK, ``sandbox/`` and ``_cli/``) is read with
``ast``; an import inside a function counts (it runs sooner or later), one under
``if TYPE_CHECKING:`` does not (README "Design").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cellcast_async

PACKAGE = Path(cellcast_async.__file__).parent
ROOT = "cellcast_async"


def module_name(path: Path) -> str:
    parts = [ROOT, *path.relative_to(PACKAGE).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute name a ``from ... import`` names, seen from ``module``."""
    if node.level == 0:
        return node.module or ""
    here = module.split(".")
    if not _is_package(module):
        here.pop()  # a plain module's relative imports start at its package
    base = here[: len(here) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_import_module(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and ast.unparse(node.func) in ("importlib.import_module", "import_module")
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def imports_of(module: str) -> set[str]:
    """The package's modules ``module`` imports at run time."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            # ``from . import _audit``: a name may be a module itself; any other name
            # comes from ``base``'s own body.
            submodules = {f"{base}.{a.name}" for a in node.names} & MODULES.keys()
            found.update(submodules)
            if base in MODULES and (node.module or len(submodules) < len(node.names)):
                found.add(base)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
        elif _is_import_module(node):
            # ``importlib.import_module("._cli", __package__)``: cli.py's way in to _cli.
            assert isinstance(node, ast.Call)
            assert isinstance(node.args[0], ast.Constant)
            name = str(node.args[0].value)
            level = len(name) - len(name.lstrip("."))
            relative = ast.ImportFrom(module=name[level:] or None, names=[], level=level)
            found.add(_resolve(module, relative) if level else name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(MODULES[module].read_text()))
    found.discard(module)
    return found


GRAPH: dict[str, set[str]] = {name: imports_of(name) for name in MODULES}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle in ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, str] = {}

    def walk(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                circle = walk(nxt, [*path, nxt])
                if circle is not None:
                    return circle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            circle = walk(start, [start])
            if circle is not None:
                return circle
    return None


class TestImportGraph:
    """The import graph of the whole package has no circle."""

    def test_every_part_is_read(self) -> None:
        for name in ("cellcast_async._session", "cellcast_async.sandbox._server"):
            assert name in GRAPH
        assert "cellcast_async._cli._context" in GRAPH["cellcast_async._cli._audit"]
        assert "cellcast_async._session" in GRAPH["cellcast_async._cli._context"]
        # A lazy import counts: --sandbox imports the sandbox inside a function.
        assert "cellcast_async.sandbox" in GRAPH["cellcast_async._cli._context"]
        # So does importlib's: the entry point reaches the command line only that way.
        assert GRAPH["cellcast_async.cli"] == {"cellcast_async._cli"}
        assert GRAPH["cellcast_async._cli"] >= {"cellcast_async._cli._main"}

    def test_no_circle(self) -> None:
        circle = find_circle(GRAPH)
        assert circle is None, "import circle: " + " -> ".join(circle or [])

    def test_a_circle_is_found(self) -> None:
        """The search itself finds one when there is one (so a pass means something)."""
        graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
        assert find_circle(graph) == ["a", "b", "c", "a"]


CLI = "cellcast_async._cli"
# The command modules: only the group (_main) imports them (README "Design").
COMMANDS = {
    f"{CLI}._audit",
    f"{CLI}._commands",
    f"{CLI}._diff",
    f"{CLI}._remediate",
    f"{CLI}._rotate",
    f"{CLI}._sandbox",
}
BOTTOM = {f"{CLI}._context", f"{CLI}._options", f"{CLI}._errors"}


class TestCommandLineLayers:
    """The command line's arrows: entry point -> group -> commands -> the bottom."""

    def test_only_the_group_imports_a_command(self) -> None:
        for name, imported in GRAPH.items():
            if name in (f"{CLI}._main", CLI):
                continue
            assert not imported & COMMANDS, f"{name} imports {sorted(imported & COMMANDS)}"

    def test_the_group_registers_every_command(self) -> None:
        assert GRAPH[f"{CLI}._main"] >= COMMANDS
        from cellcast_async._cli import cli

        assert sorted(cli.commands) == [
            "apply",
            "audit",
            "create",
            "delete",
            "diff",
            "get",
            "list",
            "plan",
            "rotate",
            "sandbox",
            "show",
            "undo",
            "update",
        ]

    @pytest.mark.parametrize("bottom", sorted(BOTTOM))
    def test_the_bottom_imports_no_command_and_not_the_group(self, bottom: str) -> None:
        assert not GRAPH[bottom] & (COMMANDS | {f"{CLI}._main", CLI})

    def test_the_record_format_has_one_home(self) -> None:
        """The record's field list is spelt in _records alone."""
        for name, path in MODULES.items():
            if name.startswith(CLI) and name != f"{CLI}._records":
                assert '"sub_account_name",\n' not in path.read_text(), name
