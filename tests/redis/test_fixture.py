"""The redis-server fixture itself: skipped on a workstation without it, never in CI."""

from __future__ import annotations

import shutil

import pytest

from .. import _redis_server


class TestMissingServer:
    """Without redis-server: skip locally, fail under CI=true."""

    def test_skips_outside_ci(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """No CI variable: the test is skipped, with the package to install."""
        monkeypatch.setattr(shutil, "which", lambda name: None)
        monkeypatch.delenv("CI", raising=False)
        with pytest.raises(pytest.skip.Exception, match=r"apt-get install redis-server"):
            _redis_server._executable()

    @pytest.mark.parametrize("value", ["true", "1", "True"])
    def test_fails_in_ci(self, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
        """CI=true: the test fails rather than passing without Redis."""
        monkeypatch.setattr(shutil, "which", lambda name: None)
        monkeypatch.setenv("CI", value)
        with pytest.raises(pytest.fail.Exception, match=r"CI must run the Redis tests"):
            _redis_server._executable()


class TestServer:
    """A private server starts on loopback and is gone after its context."""

    def test_stopped_after_use(self) -> None:
        """The process has exited once the context closes."""
        with _redis_server.running_redis() as server:
            assert server.url.startswith("redis://127.0.0.1:")
            assert server.process.poll() is None
        assert server.process.poll() is not None
