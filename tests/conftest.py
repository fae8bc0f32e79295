"""Shared fixtures: a clean environment, aioresponses on today's aiohttp, and a clock that
never sleeps."""

from __future__ import annotations

import socket
import time

import pytest

from . import _aioresponses_compat

# The developer's own Cellcast settings never reach a test (autouse, every test).
from ._env import no_cellcast_env  # noqa: F401

# A real redis-server for the shared rate store's tests: the `redis_url` and `redis_factory`
# fixtures.
from ._redis_server import redis_factory, redis_url  # noqa: F401

_aioresponses_compat.install()


class FakeSleep:
    """The default sleep and clock of sessions made without ``clock=``/``sleep=``.

    Each wait is recorded and moves :meth:`clock` forward instead of waiting, so the
    retry loop and the rate governor see time pass consistently, and nothing sleeps.
    """

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.offset = 0.0

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.offset += max(0.0, delay)

    def clock(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture(autouse=True)
def fake_sleep(monkeypatch: pytest.MonkeyPatch) -> FakeSleep:
    """Retries back off on a fake clock: the suite never really sleeps between attempts."""
    fake = FakeSleep()
    monkeypatch.setattr("cellcast_async._options._sleep", fake)
    monkeypatch.setattr("cellcast_async._options._clock", fake.clock)
    return fake


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port that nothing listens on (bound, then closed): connection refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
