"""Fixtures for the reliability suite: no developer environment, a fresh sandbox per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cellcast_async.sandbox import Sandbox


@pytest.fixture(autouse=True)
def _no_cellcast_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own $CELLCAST_API_KEY / $CELLCAST_BASE_URL never reach a test."""
    monkeypatch.delenv("CELLCAST_API_KEY", raising=False)
    monkeypatch.delenv("CELLCAST_BASE_URL", raising=False)


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    """A started sandbox with 100 demo tokens (seed 5)."""
    async with Sandbox(seed=5, tokens=100) as sandbox:
        yield sandbox
