"""``--rate-limit`` and ``--rate-store`` on every API command; the sandbox's rate limit
options; the audit's progress line while the governor pauses for a 429."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cellcast_async._cli._audit_run import governor_status
from cellcast_async._governor import GovernorState

from ._support import TOKENS_PATH, LiveSandbox, run_cli


class TestGlobalOptions:
    """The rate options reach the session; misuse is a usage error, nothing sent."""

    def test_audit_under_a_rate_limit(self, live: LiveSandbox) -> None:
        result = live.cli("--rate-limit", "500", "--quiet", "--json", "audit", "--page-size", "50")
        assert result.code == 0, result.err
        assert json.loads(result.out)["total"] == len(live.items())

    @pytest.mark.parametrize("value", ["0", "-1", "fast"])
    def test_bad_rate_limit(self, live: LiveSandbox, value: str) -> None:
        result = live.cli("--rate-limit", value, "list")
        assert result.code == 2
        assert "--rate-limit" in result.err
        assert live.cli_requests() == []

    def test_bad_rate_store(self, live: LiveSandbox) -> None:
        result = live.cli("--rate-store", "memcached://user:pw123@127.0.0.1:1/0", "list")
        assert result.code == 2
        assert "rate_store must be None or a redis:// URL" in result.err
        assert "pw123" not in result.err
        assert live.cli_requests() == []

    def test_shown_in_help_with_defaults(self) -> None:
        result = run_cli("audit", "--help")
        assert result.code == 0
        assert "--rate-limit PER_SECOND" in result.out
        assert "no cap" in result.out
        assert "--rate-store URL" in result.out


class TestProgressStatus:
    """What the progress line says about the governor."""

    @staticmethod
    def state(**changes: object) -> GovernorState:
        base: dict[str, object] = {
            "paused_until": None,
            "rate": None,
            "reason": "none",
            "rate_limit": None,
            "burst": None,
            "store": "memory",
            "waiting": 0,
            "rate_limited": 0,
            "acquired": 0,
            "waited": 0.0,
        }
        return GovernorState(**{**base, **changes})  # type: ignore[arg-type]

    def test_paused(self) -> None:
        state = self.state(paused_until=12.5, rate=0.0, reason="paused", rate_limited=1234)
        assert governor_status(state) == "paused after a 429 (1,234 so far)"

    def test_resuming(self) -> None:
        assert (
            governor_status(self.state(reason="probing", rate=4.0))
            == "probing the server's rate after a 429"
        )

    @pytest.mark.parametrize("reason", ["none", "rate_limit", "learnt"])
    def test_nothing_to_say(self, reason: str) -> None:
        assert governor_status(self.state(reason=reason)) is None


class TestSandboxRateLimit:
    """``cellcast-tokens sandbox --rate-limit``: the server answers 429 past the rate."""

    def test_rate_limited_sandbox(self) -> None:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "cellcast_async.sandbox", "--port", "0"),
                *("--rate-limit", "1", "--burst", "1", "--rate-limit-headers", "--capacity", "2"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            key = info["api_key"]
            statuses: list[int] = []
            limits: list[str | None] = []
            retry_after: list[str | None] = []
            import urllib.request

            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            for _ in range(3):
                request = urllib.request.Request(info["url"] + TOKENS_PATH)
                request.add_header("Authorization", f"Bearer {key}")
                try:
                    with opener.open(request, timeout=10) as response:
                        statuses.append(response.status)
                        limits.append(response.headers.get("X-RateLimit-Limit"))
                except urllib.error.HTTPError as exc:
                    with exc:
                        statuses.append(exc.code)
                        limits.append(exc.headers.get("X-RateLimit-Limit"))
                        retry_after.append(exc.headers.get("Retry-After"))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        assert statuses[0] == 200
        assert 429 in statuses[1:]
        assert all(limit is not None for limit in limits)
        assert retry_after
        assert all(value is not None for value in retry_after)
