"""The pytest plugin: cellcast_sandbox / cellcast_session fixtures and the marker."""

from __future__ import annotations

import os
import textwrap
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from cellcast_async.sandbox import Faults, Sandbox
from tests._subprocess import run_python

ROOT = Path(__file__).resolve().parents[2]


class TestFixtures:
    """The fixtures as this suite sees them (the plugin is loaded by its entry point)."""

    async def test_default_sandbox(self, cellcast_sandbox: Sandbox) -> None:
        assert cellcast_sandbox.url.startswith("http://127.0.0.1:")
        assert cellcast_sandbox.token_count() == 60
        assert cellcast_sandbox.api_key == Sandbox(seed=0).api_key

    @pytest.mark.cellcast_sandbox(tokens=7, seed=3, faults=Faults(latency=0.001))
    async def test_marker_customises_it(self, cellcast_sandbox: Sandbox) -> None:
        assert cellcast_sandbox.token_count() == 7
        assert cellcast_sandbox.api_key == Sandbox(seed=3, tokens=0).api_key
        assert cellcast_sandbox.faults == Faults(latency=0.001)

    async def test_session_talks_to_the_sandbox(
        self, cellcast_sandbox: Sandbox, cellcast_session: Any
    ) -> None:
        page = await cellcast_session.tokens.list(limit=5)
        assert (page.total, len(page.items)) == (60, 5)
        assert (
            cellcast_sandbox.requests[-1]
            .headers["authorization"]
            .endswith(cellcast_sandbox.api_key)
        )


def run_pytest(tmp_path: Path, test_source: str, *, block_pytest_asyncio: bool) -> str:
    """Run pytest on one file in a fresh interpreter, outside this project's config."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent(test_source))
    plugin_args: list[str] = []
    installed = any(
        ep.value == "cellcast_async.sandbox.plugin" for ep in entry_points(group="pytest11")
    )
    if block_pytest_asyncio or not installed:
        plugin_args = ["-p", "cellcast_async.sandbox.plugin"]
    argv = ["-q", "-p", "no:cacheprovider", *plugin_args, "test_user.py"]
    code = (
        "import sys\n"
        + ("sys.modules['pytest_asyncio'] = None\n" if block_pytest_asyncio else "")
        + f"import pytest\nsys.exit(pytest.main({argv!r}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if block_pytest_asyncio:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # its entry point would fail to import
    done = run_python("-c", code, cwd=tmp_path, env=env, timeout=60)
    return done.stdout + done.stderr


class TestInAUsersProject:
    """What a user of the package gets: strict-mode pytest-asyncio, or none at all."""

    def test_strict_mode_project(self, tmp_path: Path) -> None:
        output = run_pytest(
            tmp_path,
            """
            import aiohttp
            import pytest

            @pytest.mark.asyncio
            async def test_default(cellcast_sandbox):
                headers = {"Authorization": f"Bearer {cellcast_sandbox.api_key}"}
                url = cellcast_sandbox.url + "/api/v1/apiClient/token"
                async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as r:
                    assert (await r.json())["data"]["total"] == 60

            @pytest.mark.asyncio
            @pytest.mark.cellcast_sandbox(tokens=3)
            async def test_marker(cellcast_sandbox):
                assert cellcast_sandbox.token_count() == 3
            """,
            block_pytest_asyncio=False,
        )
        assert "2 passed" in output, output
        assert "PytestUnknownMarkWarning" not in output

    def test_without_pytest_asyncio(self, tmp_path: Path) -> None:
        output = run_pytest(
            tmp_path,
            """
            def test_needs_it(cellcast_sandbox):
                pass
            """,
            block_pytest_asyncio=True,
        )
        assert "1 error" in output, output  # at setup, with the message below
        assert "pip install pytest-asyncio" in output
