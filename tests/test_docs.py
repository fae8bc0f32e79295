"""Every Python example in docs/ runs, as it is, against the sandbox.

The blocks of one page run in order in one namespace, with ``$CELLCAST_API_KEY`` and
``$CELLCAST_BASE_URL`` pointing at a sandbox of its own (seed 0, 300 tokens), as the docs'
index tells a reader to set them. Top-level ``await`` is allowed, as ``python -m asyncio``
allows it. A block whose first line is ``# test_<name>.py`` is a test file for the
package's pytest plugin: it is written under that name and run by pytest in a subprocess.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import sys
from pathlib import Path

import pytest

from ._subprocess import run_python
from ._threaded_sandbox import ThreadedSandbox

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_TEST_FILE = re.compile(r"\A# (test_\w+\.py)\n")


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


def blocks(page: Path) -> list[str]:
    return _BLOCK.findall(page.read_text(encoding="utf-8"))


PAGES = [page for page in _pages() if blocks(page)]


def _run_block(code: str, namespace: dict[str, object], where: str) -> None:
    compiled = compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if compiled.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(compiled, namespace))
    else:
        exec(compiled, namespace)


class TestDocExamples:
    """Each page's examples run without an error."""

    def test_there_are_examples(self) -> None:
        """The guide has runnable examples, and test files for the plugin among them."""
        every = [block for page in PAGES for block in blocks(page)]
        assert len(every) >= 15
        assert sum(bool(_TEST_FILE.match(block)) for block in every) >= 2

    def test_no_issue_numbers_or_outside_files(self) -> None:
        """The site cites the README and the repository's files, never the tracker."""
        for page in _pages():
            text = page.read_text(encoding="utf-8")
            assert not re.search(r"\bissues? \d|\bissue #", text, re.IGNORECASE), page
            assert "DESIGN.md" not in text, page
            assert "shared/" not in text, page

    @pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
    def test_page(
        self, page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: object
    ) -> None:
        """The blocks run in order, against a fresh sandbox; test files pass under pytest."""
        monkeypatch.chdir(tmp_path)
        test_files: list[str] = []
        with ThreadedSandbox(seed=0, tokens=300) as served:
            monkeypatch.setenv("CELLCAST_API_KEY", served.sb.api_key)
            monkeypatch.setenv("CELLCAST_BASE_URL", served.sb.url)
            namespace: dict[str, object] = {"__name__": "__docs__"}
            for number, code in enumerate(blocks(page), 1):
                test_file = _TEST_FILE.match(code)
                if test_file:
                    (tmp_path / test_file.group(1)).write_text(code, encoding="utf-8")
                    test_files.append(test_file.group(1))
                    continue
                _run_block(code, namespace, f"{page.relative_to(ROOT)}, block {number}")
        if test_files:
            self._pytest(tmp_path, test_files)

    @staticmethod
    def _pytest(where: Path, files: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
        env.pop("CELLCAST_API_KEY", None)
        env.pop("CELLCAST_BASE_URL", None)
        result = run_python(
            *("-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"),
            *files,
            cwd=where,
            env=env,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{len(files)} passed" in result.stdout
