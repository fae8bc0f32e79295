"""The README's quick start is what CI runs, and its examples name real things."""

from __future__ import annotations

import re
from pathlib import Path

import cellcast_async

ROOT = Path(__file__).resolve().parent.parent


def _quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- quick-start -->", 1)[1].split("```", 2)[1]
    return [line for line in block.splitlines()[1:] if line.strip()]


class TestQuickStart:
    """The quick start is exactly two commands, and CI runs the second verbatim."""

    def test_two_commands(self) -> None:
        """One runs the sandbox audit, one runs the tests."""
        commands = _quick_start()
        assert len(commands) == 2
        assert "cellcast-tokens --sandbox audit" in commands[0]
        assert "pytest" in commands[1]

    def test_ci_runs_the_readme_test_command(self) -> None:
        """`.ci/run` holds the README's test command line for line."""
        ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        assert _quick_start()[1] in ci


class TestDocumentedNames:
    """Every public name is documented in the README."""

    def test_every_public_name_appears(self) -> None:
        """Each name in __all__ (bar the version) is mentioned at least once."""
        text = (ROOT / "README.md").read_text(encoding="utf-8")
        missing = [
            name
            for name in cellcast_async.__all__
            if name != "__version__" and not re.search(rf"\b{re.escape(name)}\b", text)
        ]
        assert missing == []
