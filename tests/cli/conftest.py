"""Fixtures for the CLI tests: a clean environment and a sandbox on a background thread."""

from __future__ import annotations

import socket
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
    sandbox = LiveSandbox(seed=0, tokens=300)
    try:
        yield sandbox
    finally:
        sandbox.close()


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port that nothing listens on (bound, then closed): connection refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
