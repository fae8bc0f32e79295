"""The sandbox's limiter kinds, Retry-After styles and header styles; the storm and the challenge.

The arithmetic runs on a fake clock (exact admit/deny sequences); each kind also gets one
short run over HTTP against a real sandbox, bounded so a loaded machine cannot flip it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from cellcast_async import CellcastSession
from cellcast_async.sandbox import Faults, Sandbox, _faults, _state
from cellcast_async.sandbox.__main__ import main
from cellcast_async.sandbox._faults import FaultAction, FaultPlan
from cellcast_async.sandbox._state import RateDecision, RateLimiter, format_retry_after_style
from tests._wire import TOKENS_PATH
from tests.sandbox._support import Api

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run(limiter: RateLimiter, clock: FakeClock, times: list[float]) -> list[bool]:
    """Admit (True) or deny (False) for one request at each of `times`."""
    verdicts = []
    for when in times:
        clock.now = when
        verdicts.append(limiter.take("k").allowed)
    return verdicts


class TestTokenBucket:
    """The bucket at burst 1, burst 10 and burst = rate."""

    def test_burst_one_admits_one_per_interval(self) -> None:
        """Burst 1 at 10/s: one request per 100 ms, the bucket never saves more."""
        clock = FakeClock()
        limiter = RateLimiter(10, 1, clock)
        times = [0.0, 0.0, 0.05, 0.1, 0.1, 0.35, 0.36, 0.45, 0.46]
        assert run(limiter, clock, times) == [
            True, False, False, True, False, True, False, True, False,
        ]  # fmt: skip

    def test_burst_one_retry_after(self) -> None:
        """A refusal says when the next token is whole: 0.1 s, then 0.04 s later on."""
        clock = FakeClock()
        limiter = RateLimiter(10, 1, clock)
        assert limiter.take("k").allowed
        assert limiter.take("k").retry_after == pytest.approx(0.1)
        clock.now = 0.06
        assert limiter.take("k").retry_after == pytest.approx(0.04)

    def test_burst_ten(self) -> None:
        """Burst 10 at 100/s: ten at once, then one per 10 ms."""
        clock = FakeClock()
        limiter = RateLimiter(100, 10, clock)
        assert run(limiter, clock, [0.0] * 11) == [True] * 10 + [False]
        assert run(limiter, clock, [0.01, 0.01, 0.015, 0.02]) == [True, False, False, True]

    def test_burst_equal_to_rate_is_the_default(self) -> None:
        """No burst: one second's worth; 50 at once, the 51st refused, 50 more a second on."""
        clock = FakeClock()
        limiter = RateLimiter(50, clock=clock)
        assert limiter.burst == 50.0
        assert run(limiter, clock, [0.0] * 51) == [True] * 50 + [False]
        assert run(limiter, clock, [1.0] * 51) == [True] * 50 + [False]


class TestFixedWindow:
    """At most `rate` per clock second, counted afresh at each whole second."""

    def test_window_admits_rate_then_refuses_until_it_ends(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(3, clock=clock, kind="fixed-window")
        times = [0.2, 0.3, 0.4, 0.5, 0.99, 1.0, 1.0, 1.0, 1.0]
        assert run(limiter, clock, times) == [
            True, True, True, False, False, True, True, True, False,
        ]  # fmt: skip

    def test_retry_after_is_the_window_end(self) -> None:
        clock = FakeClock(5.25)
        limiter = RateLimiter(1, clock=clock, kind="fixed-window")
        assert limiter.take("k").allowed
        assert limiter.take("k") == RateDecision(False, 0.75, 1, 0, 1)
        clock.now = 5.9
        assert limiter.take("k").retry_after == pytest.approx(0.1)

    def test_two_windows_back_to_back_hold_twice_the_rate(self) -> None:
        """Its known weakness, imitated on purpose: 2R within 0.1 s across a boundary."""
        clock = FakeClock()
        limiter = RateLimiter(2, clock=clock, kind="fixed-window")
        assert run(limiter, clock, [0.95, 0.95, 1.05, 1.05, 1.06]) == [
            True, True, True, True, False,
        ]  # fmt: skip

    def test_refusals_cost_nothing_and_keys_are_separate(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(1, clock=clock, kind="fixed-window")
        assert [limiter.take("a").allowed for _ in range(5)] == [True] + [False] * 4
        assert limiter.take("b").allowed
        clock.now = 1.0
        assert limiter.take("a").allowed


class TestSlidingLog:
    """At most `rate` admitted requests in any 1-second span; refusals are not logged."""

    def test_admits_as_old_entries_leave(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(3, clock=clock, kind="sliding-log")
        times = [0.0, 0.3, 0.6, 0.9, 0.99, 1.0, 1.0, 1.29, 1.3, 1.6, 1.6]
        assert run(limiter, clock, times) == [
            True, True, True, False, False, True, False, False, True, True, False,
        ]  # fmt: skip

    def test_retry_after_is_when_the_oldest_leaves(self) -> None:
        clock = FakeClock()
        limiter = RateLimiter(2, clock=clock, kind="sliding-log")
        assert run(limiter, clock, [0.0, 0.4]) == [True, True]
        clock.now = 0.5
        assert limiter.take("k") == RateDecision(False, 0.5, 2, 0, 1)

    def test_no_window_boundary_to_exploit(self) -> None:
        """Where the fixed window lets 2R through, the log lets R."""
        clock = FakeClock()
        limiter = RateLimiter(2, clock=clock, kind="sliding-log")
        assert run(limiter, clock, [0.95, 0.95, 1.05, 1.05, 1.95, 1.95]) == [
            True, True, False, False, True, True,
        ]  # fmt: skip


class TestHeaderStyles:
    """What X-RateLimit-* say in each style, for each kind."""

    def test_window_style_is_unchanged_for_the_bucket(self) -> None:
        """The historical 1-second view: rate + burst, what the next second takes, 1."""
        clock = FakeClock()
        limiter = RateLimiter(2, 3, clock)
        assert limiter.take("k") == RateDecision(True, 0.0, 5, 4, 1)

    @pytest.mark.parametrize(("style", "reset"), [("whole", 3), ("fractional", 2.25)])
    def test_bucket_reset_is_time_until_full(self, style: str, reset: float) -> None:
        """Burst 10 at 4/s after 9 requests: 1 left, full again in 9/4 s."""
        clock = FakeClock()
        limiter = RateLimiter(4, 10, clock, header_style=style)
        for _ in range(8):
            limiter.take("k")
        assert limiter.take("k") == RateDecision(True, 0.0, 10, 1, reset)

    @pytest.mark.parametrize(("style", "reset"), [("whole", 1), ("fractional", 0.6)])
    def test_fixed_window_reset_is_the_window_end(self, style: str, reset: float) -> None:
        clock = FakeClock(7.4)
        limiter = RateLimiter(5, clock=clock, kind="fixed-window", header_style=style)
        assert limiter.take("k") == RateDecision(True, 0.0, 5, 4, reset)

    @pytest.mark.parametrize(("style", "reset"), [("whole", 1), ("fractional", 1.0)])
    def test_sliding_log_reset_is_when_the_newest_leaves(self, style: str, reset: float) -> None:
        clock = FakeClock()
        limiter = RateLimiter(5, clock=clock, kind="sliding-log", header_style=style)
        limiter.take("k")
        clock.now = 0.1
        assert limiter.take("k") == RateDecision(True, 0.0, 5, 3, reset)

    def test_old_entries_leave_the_log(self) -> None:
        """After a 2-second pause only this request is in the log: Remaining is Limit - 1."""
        clock = FakeClock()
        limiter = RateLimiter(3, clock=clock, kind="sliding-log", header_style="fractional")
        limiter.take("k")
        clock.now = 2.0
        assert limiter.take("k") == RateDecision(True, 0.0, 3, 2, 1.0)


class TestRetryAfterStyles:
    """format_retry_after_style: whole, zero, fractional, absent."""

    @pytest.mark.parametrize(
        ("seconds", "style", "header"),
        [
            (0.013, "whole", "1"),
            (1.0, "whole", "1"),
            (1.2, "whole", "2"),
            (0.013, "zero", "0"),
            (3.0, "zero", "0"),
            (0.0134, "fractional", "0.013"),
            (0.0001, "fractional", "0.001"),
            (2.5, "fractional", "2.500"),
            (0.5, "absent", None),
        ],
    )
    def test_styles(self, seconds: float, style: str, header: str | None) -> None:
        assert format_retry_after_style(seconds, style) == header


class TestKeyBound:
    """Keys are the client's to invent: the limiter forgets the oldest past a bound."""

    @pytest.mark.parametrize("kind", ["token-bucket", "fixed-window", "sliding-log"])
    def test_oldest_key_is_forgotten(self, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_state, "_MAX_KEYS", 3)
        limiter = RateLimiter(1, clock=FakeClock(), kind=kind)
        for key in ("a", "b", "c"):
            assert limiter.take(key).allowed
        assert not limiter.take("a").allowed  # "a" is now the newest: b, c, a
        assert limiter.take("d").allowed  # drops "b"
        assert limiter.take("b").allowed  # a fresh allowance; drops "c"
        assert not limiter.take("a").allowed
        state = {"token-bucket": "_buckets", "fixed-window": "_windows", "sliding-log": "_logs"}
        assert list(getattr(limiter, state[kind])) == ["d", "b", "a"]


class TestMisuse:
    """Bad limiter settings are ValueErrors with exact messages, before anything listens."""

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            (
                {"rate": 5, "kind": "leaky"},
                "limiter must be one of token-bucket, fixed-window, sliding-log, got 'leaky'",
            ),
            (
                {"rate": 5, "burst": 2, "kind": "fixed-window"},
                "burst applies only to the token-bucket limiter, not fixed-window",
            ),
            (
                {"rate": 2.5, "kind": "sliding-log"},
                "rate_limit must be a whole number for the sliding-log limiter, got 2.5",
            ),
            (
                {"rate": 5, "header_style": "ietf"},
                "rate_limit_headers must be one of window, whole, fractional, got 'ietf'",
            ),
            ({"rate": 5, "burst": 0}, "burst must be a number >= 1, got 0"),
        ],
    )
    def test_limiter(self, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=r"^\w+ ") as info:
            RateLimiter(**kwargs)  # type: ignore[arg-type]
        assert str(info.value) == message

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"limiter": "sliding-log"}, "limiter needs a rate_limit"),
            ({"rate_limit_retry_after": "zero"}, "rate_limit_retry_after needs a rate_limit"),
            (
                {"rate_limit": 5, "rate_limit_retry_after": "never"},
                "rate_limit_retry_after must be one of whole, zero, fractional, absent, "
                "got 'never'",
            ),
            (
                {"rate_limit": 5, "rate_limit_headers": "ietf"},
                "rate_limit_headers must be one of window, whole, fractional, got 'ietf'",
            ),
            (
                {"rate_limit": 5, "limiter": "fixed-window", "burst": 5},
                "burst applies only to the token-bucket limiter, not fixed-window",
            ),
        ],
    )
    def test_sandbox(self, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=r"^\w+ ") as info:
            Sandbox(**kwargs)  # type: ignore[arg-type]
        assert str(info.value) == message

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"storm": -1}, "storm must be a number of seconds >= 0, got -1"),
            ({"storm": float("inf")}, "storm must be a number of seconds >= 0, got inf"),
            ({"storm": True}, "storm must be a number of seconds >= 0, got True"),
            ({"latency": float("nan")}, "latency must be a number of seconds >= 0, got nan"),
            ({"latency": "1"}, "latency must be a number of seconds >= 0, got '1'"),
            (
                {"latency_jitter": float("inf")},
                "latency_jitter must be a number of seconds >= 0, got inf",
            ),
            ({"retry_after": -0.5}, "retry_after must be a number of seconds >= 0, got -0.5"),
            (
                {"retry_after": float("nan")},
                "retry_after must be a number of seconds >= 0, got nan",
            ),
            ({"challenge": 1}, "challenge must be True or False, got 1"),
        ],
    )
    def test_faults(self, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=r"^\w+ ") as info:
            Faults(**kwargs)  # type: ignore[arg-type]
        assert str(info.value) == message


class TestDoorFaults:
    """The storm and the challenge, on a fake clock."""

    def test_storm_starts_at_the_first_request_and_ends(self) -> None:
        clock = FakeClock(100.0)
        plan = FaultPlan(Faults(storm=5, retry_after=1), clock)
        assert plan.storm_ends is None
        clock.now = 110.0
        assert plan.at_the_door("a") == FaultAction("429", 1.0)
        assert plan.storm_ends == 115.0
        clock.now = 114.99
        assert plan.at_the_door("b") == FaultAction("429", 1.0)
        clock.now = 115.0
        assert plan.at_the_door("c") is None
        assert plan.at_the_door("a") is None

    def test_new_faults_restart_the_storm(self) -> None:
        clock = FakeClock()
        plan = FaultPlan(Faults(storm=1), clock)
        plan.at_the_door("a")
        clock.now = 2.0
        assert plan.at_the_door("a") is None
        plan.faults = Faults(storm=1)
        assert plan.at_the_door("a") == FaultAction("429", 0.0)

    def test_challenge_each_request_once(self) -> None:
        plan = FaultPlan(Faults(challenge=True, retry_after=1), FakeClock())
        assert plan.at_the_door("p1") == FaultAction("429", 1.0)
        assert plan.at_the_door("p2") == FaultAction("429", 1.0)
        assert plan.at_the_door("p1") is None
        assert plan.at_the_door("p2") is None
        assert plan.at_the_door("p1") == FaultAction("429", 1.0)  # challenged anew

    def test_no_door_faults_by_default(self) -> None:
        plan = FaultPlan(Faults(), FakeClock())
        assert not plan.guards_door
        assert [plan.at_the_door("a") for _ in range(3)] == [None] * 3
        plan.faults = Faults(challenge=True)
        assert plan.guards_door

    def test_challenged_requests_are_bounded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A client inventing requests cannot grow the memory of challenged ones."""
        monkeypatch.setattr(_faults, "_MAX_CHALLENGED", 2)
        plan = FaultPlan(Faults(challenge=True), FakeClock())
        for identity in ("a", "b", "c"):  # "c" pushes "a" out
            assert plan.at_the_door(identity) is not None
        assert plan.at_the_door("a") is not None  # forgotten: challenged again
        assert plan.at_the_door("c") is None


# ------------------------------------------------------------------------------- over HTTP


async def until_whole_second() -> None:
    """Sleep to just past the next whole second of time.monotonic (the fixed window's start)."""
    now = time.monotonic()
    await asyncio.sleep(int(now) + 1.02 - now)


class TestOverHttp:
    """Each kind and style, over HTTP against a real sandbox (a few requests, bounded)."""

    async def test_bucket_burst_one(self, http: aiohttp.ClientSession) -> None:
        """Burst 1 at 1/s: the first passes, the second is a 429, Retry-After "1"."""
        async with Sandbox(tokens=5, rate_limit=1, burst=1) as sb:
            api = Api(http, sb)
            first, second = await api.get(), await api.get()
        assert (first.status, second.status) == (200, 429)
        assert second.headers["Retry-After"] == "1"

    async def test_fixed_window(self, http: aiohttp.ClientSession) -> None:
        """Rate 3, all sent early in one window: 3 pass, then 429 with the window's end."""
        async with Sandbox(
            tokens=5,
            rate_limit=3,
            limiter="fixed-window",
            rate_limit_retry_after="fractional",
            rate_limit_headers="fractional",
        ) as sb:
            api = Api(http, sb)
            await until_whole_second()
            replies = [await api.get() for _ in range(4)]
        assert [r.status for r in replies] == [200, 200, 200, 429]
        assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["2", "1", "0", "0"]
        assert {r.headers["X-RateLimit-Limit"] for r in replies} == {"3"}
        retry_after = float(replies[3].headers["Retry-After"])
        assert 0 < retry_after <= 0.98
        assert float(replies[3].headers["X-RateLimit-Reset"]) == retry_after

    async def test_sliding_log(self, http: aiohttp.ClientSession) -> None:
        """Rate 2: two pass, the third is a 429 with Retry-After "0" (the chosen style)."""
        async with Sandbox(
            tokens=5,
            rate_limit=2,
            limiter="sliding-log",
            rate_limit_retry_after="zero",
            rate_limit_headers="whole",
        ) as sb:
            api = Api(http, sb)
            replies = [await api.get() for _ in range(3)]
            assert sb.rate_limited == 1
        assert [r.status for r in replies] == [200, 200, 429]
        assert replies[2].headers["Retry-After"] == "0"
        assert [r.headers["X-RateLimit-Reset"] for r in replies] == ["1", "1", "1"]

    async def test_retry_after_absent(self, http: aiohttp.ClientSession) -> None:
        async with Sandbox(tokens=5, rate_limit=1, burst=1, rate_limit_retry_after="absent") as sb:
            api = Api(http, sb)
            await api.get()
            refused = await api.get()
        assert refused.status == 429
        assert "Retry-After" not in refused.headers

    async def test_challenge(self, http: aiohttp.ClientSession) -> None:
        """Each request's first attempt is a 429 (Retry-After "1"); the same again passes."""
        async with Sandbox(tokens=30, faults=Faults(challenge=True, retry_after=1)) as sb:
            api = Api(http, sb)
            page1 = [await api.get(params={"page": 1}) for _ in range(3)]
            page2 = [await api.get(params={"page": 2}) for _ in range(2)]
            other = await api.get(params={"page": 1}, key=sb.other_api_key)
            assert len(sb.requests) == 6  # every attempt is recorded
            assert sb.rate_limited == 0  # not the rate limit's 429s
        assert [r.status for r in page1] == [429, 200, 429]
        assert [r.status for r in page2] == [429, 200]
        assert other.status == 429  # another key: another request
        assert page1[0].headers["Retry-After"] == "1"
        assert page1[0].body["message"] == "Too many requests"

    async def test_sdk_walks_through_a_challenge(self) -> None:
        """A walk retries each page once and reads every token (Retry-After 0: no waiting)."""
        async with Sandbox(tokens=30, faults=Faults(challenge=True)) as sb:
            async with CellcastSession(api_key=sb.api_key, base_url=sb.url) as cc:
                pager = cc.tokens.list(limit=10)
                tokens = await pager.collect()
            paths = [(r.query["page"]) for r in sb.requests]
        assert len(tokens) == 30
        assert paths == ["1", "1", "2", "2", "3", "3"]

    async def test_storm(self, http: aiohttp.ClientSession) -> None:
        """Every request is a 429 for 1 s from the first, then every request passes."""
        async with Sandbox(tokens=5, faults=Faults(storm=1.0, retry_after=1)) as sb:
            api = Api(http, sb)
            started = time.monotonic()
            during = [await api.get() for _ in range(2)]
            assert time.monotonic() - started < 1.0, "the machine stalled for a second"
            await asyncio.sleep(started + 1.05 - time.monotonic())
            after = [await api.get() for _ in range(2)]
        assert [r.status for r in during] == [429, 429]
        assert during[0].headers["Retry-After"] == "1"
        assert [r.status for r in after] == [200, 200]


class TestCommandLine:
    """The same options on `python -m cellcast_async.sandbox` (= `cellcast-tokens sandbox`)."""

    async def test_options_reach_the_server(self) -> None:
        """--limiter, --rate-limit-retry-after and --rate-limit-headers STYLE, over HTTP."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cellcast_async.sandbox", "--port", "0", "--tokens", "5",
            "--rate-limit", "2", "--limiter", "sliding-log", "--rate-limit-retry-after",
            "fractional", "--rate-limit-headers", "fractional",
            stdout=asyncio.subprocess.PIPE, env=env, cwd=ROOT,
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
            headers = {"Authorization": f"Bearer {info['api_key']}"}
            replies = []
            async with aiohttp.ClientSession() as http:
                for _ in range(3):
                    async with http.get(info["url"] + TOKENS_PATH, headers=headers) as response:
                        replies.append((response.status, dict(response.headers)))
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 20)
        assert [status for status, _ in replies] == [200, 200, 429]
        assert 0 < float(replies[2][1]["Retry-After"]) <= 1
        assert "." in replies[2][1]["Retry-After"]
        assert replies[0][1]["X-RateLimit-Limit"] == "2"

    def test_bare_headers_flag_is_the_window_style(self) -> None:
        """`--rate-limit-headers` alone still means the 1-second-window headers."""
        from cellcast_async._cli._sandbox import sandbox_command

        ctx = sandbox_command.make_context(
            "sandbox", ["--rate-limit", "5", "--rate-limit-headers", "--capacity", "2"]
        )
        assert ctx.params["rate_limit_headers"] == "window"
        assert ctx.params["capacity"] == 2
        ctx = sandbox_command.make_context("sandbox", ["--rate-limit-headers", "whole"])
        assert ctx.params["rate_limit_headers"] == "whole"
        ctx = sandbox_command.make_context("sandbox", ["--storm", "5", "--challenge"])
        assert (ctx.params["fault__storm"], ctx.params["fault__challenge"]) == (5.0, True)

    @pytest.mark.parametrize(
        ("argv", "message"),
        [
            (["--limiter", "fixed-window"], "usage error: limiter needs a rate_limit"),
            (
                ["--rate-limit", "2.5", "--limiter", "fixed-window"],
                "usage error: rate_limit must be a whole number for the fixed-window limiter, "
                "got 2.5",
            ),
            (
                ["--rate-limit", "5", "--limiter", "sliding-log", "--burst", "2"],
                "usage error: burst applies only to the token-bucket limiter, not sliding-log",
            ),
            (
                ["--limiter", "leaky"],
                "usage error: python -m cellcast_async.sandbox: Invalid value for '--limiter': "
                "'leaky' is not one of 'token-bucket', 'fixed-window', 'sliding-log'.",
            ),
            (
                ["--storm", "-1"],
                "usage error: python -m cellcast_async.sandbox: Invalid value for '--storm': "
                "-1.0 is not in the range x>=0.",
            ),
        ],
    )
    def test_bad_arguments_are_usage_errors(
        self, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["--port", "0", *argv]) == 2
        assert capsys.readouterr() == ("", message + "\n")
