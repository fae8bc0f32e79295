"""Shared fixtures for the sandbox tests: a started sandbox and a plain aiohttp client.

These tests speak raw HTTP to the sandbox (never through the SDK), so they pin down the
server's own behaviour against the seeds.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from cellcast_async.sandbox import Sandbox

# `tests.seed_samples` and `tests.sandbox._support` import from the repository root whether
# pytest runs as `pytest` or `python -m pytest` (tests/ has no __init__.py of its own).
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.sandbox._support import Api  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    # The plugin normally arrives through the pytest11 entry point; register it when the
    # package is not installed, so the fixture tests still run from a plain checkout.
    from cellcast_async.sandbox import plugin

    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "cellcast_async")


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(seed=0, tokens=60) as sandbox:
        yield sandbox


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        # aiohttp (>= 3.10) silently resends a GET/PUT/DELETE once when the server drops the
        # connection; these tests must see each drop, so switch that off the way aiohttp's
        # own test client does (a private attribute: aiohttp.test_utils.TestClient).
        session._retry_connection = False
        yield session


@pytest.fixture
def api(sb: Sandbox, http: aiohttp.ClientSession) -> Api:
    return Api(http, sb)
