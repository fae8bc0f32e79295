"""README "Testing your code": its flaky-API example retries for sure, and its pytest
configuration draws no warning from pytest-asyncio. Both run as a user would, in a
pytest of their own on a project holding only the README's two snippets."""

from __future__ import annotations

from pathlib import Path

from tests._subprocess import run_python

ROOT = Path(__file__).resolve().parents[2]


def block(marker: str) -> str:
    """The fenced code block right after ``<!-- marker -->`` in the README."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text.split(f"<!-- {marker} -->", 1)[1]
    body = after.split("```", 2)[1]
    return body.split("\n", 1)[1]


class TestFlakyExample:
    """The example, run by pytest with the README's configuration."""

    def test_it_passes_with_no_warning(self, tmp_path: Path) -> None:
        (tmp_path / "pyproject.toml").write_text(block("pytest-config"), encoding="utf-8")
        (tmp_path / "test_flaky.py").write_text(block("flaky-example"), encoding="utf-8")
        done = run_python(
            "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", cwd=tmp_path
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 passed" in done.stdout
        assert "warning" not in done.stdout.lower()
        assert "asyncio_default_fixture_loop_scope" not in done.stdout + done.stderr
