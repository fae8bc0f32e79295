"""A clean environment for every test: the developer's own Cellcast settings never reach
one. ``tests/conftest.py`` makes the fixture autouse for the whole suite."""

from __future__ import annotations

import pytest

__all__ = ["no_cellcast_env"]


@pytest.fixture(autouse=True)
def no_cellcast_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own $CELLCAST_API_KEY / $CELLCAST_BASE_URL never reach a test."""
    monkeypatch.delenv("CELLCAST_API_KEY", raising=False)
    monkeypatch.delenv("CELLCAST_BASE_URL", raising=False)
