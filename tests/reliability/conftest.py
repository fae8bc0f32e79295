"""Fixtures for the reliability suite: a fresh sandbox per test (the clean environment is
the whole suite's, ``tests/_env.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cellcast_async.sandbox import Sandbox


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    """A started sandbox with 100 demo tokens (seed 5)."""
    async with Sandbox(seed=5, tokens=100) as sandbox:
        yield sandbox
