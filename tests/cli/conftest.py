"""Fixtures for the CLI tests: a clean environment and a sandbox on a background thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._support import LiveSandbox


@pytest.fixture(autouse=True)
def _no_cellcast_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own $CELLCAST_API_KEY / $CELLCAST_BASE_URL never reach a test."""
    monkeypatch.delenv("CELLCAST_API_KEY", raising=False)
    monkeypatch.delenv("CELLCAST_BASE_URL", raising=False)


@pytest.fixture
def live() -> Iterator[LiveSandbox]:
    """A fresh demo sandbox (seed 0, 300 tokens) for one test; it starts in milliseconds."""
    with LiveSandbox(seed=0, tokens=300) as sandbox:
        yield sandbox
