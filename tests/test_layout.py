"""README's Design section draws the layout the code has: every module is named there."""

from __future__ import annotations

from pathlib import Path

import pytest

import cellcast_async

PACKAGE = Path(cellcast_async.__file__).parent
README = PACKAGE.parent / "README.md"
# Not drawn: a package's own __init__/__main__, and the version string.
UNDRAWN = {"__init__.py", "__main__.py", "_version.py"}


def design_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Design\n")
    return text[start : text.index("\n## ", start + 1)]


@pytest.mark.parametrize(
    "module",
    sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name not in UNDRAWN and "schemas" not in p.parts
    ),
)
def test_every_module_is_drawn(module: str) -> None:
    assert Path(module).name in design_section(), f"README's Design section misses {module}"
