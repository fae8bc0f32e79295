"""The rate governor (README "Rate limits"), on a virtual clock: no test waits for real."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import pickle
import random
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellcast_async._governor import (
    MAX_PAUSE,
    AdaptiveConcurrency,
    Governor,
    GovernorState,
    GovernorWaitTooLong,
    InProcessStore,
    RateStore,
    Reservation,
    StoreUnavailable,
    burst_for,
    check_concurrency,
    check_rate_limit,
    check_rate_store,
    describe_store_url,
    make_governor,
    rate_scope,
)

from ._virtual_time import VirtualTime, max_in_window


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime(start=100.0)


def governor(vt: VirtualTime, rate_limit: float | None = None, **kwargs: Any) -> Governor:
    return Governor(
        rate_limit=rate_limit, clock=vt.clock, sleep=vt.sleep, rng=random.Random(0), **kwargs
    )


async def grant_times(vt: VirtualTime, gov: Governor, n: int) -> list[float]:
    """n tasks, each acquiring once; the clock time each was let through, in grant order."""
    granted: list[float] = []

    async def one() -> None:
        await gov.acquire()
        granted.append(vt.now)

    await vt.run(one() for _ in range(n))
    return granted


# ---------------------------------------------------------------------------- checks


class TestCheckRateLimit:
    """check_rate_limit: None or a positive finite number, else one exact ValueError."""

    @pytest.mark.parametrize(("value", "expected"), [(None, None), (1, 1.0), (0.5, 0.5)])
    def test_valid(self, value: object, expected: float | None) -> None:
        """None means no cap; ints become floats."""
        assert check_rate_limit(value) == expected

    @pytest.mark.parametrize(
        ("value", "shown"),
        [
            (0, "0"),
            (-1, "-1"),
            (0.0, "0.0"),
            (math.nan, "nan"),
            (math.inf, "inf"),
            (True, "True"),
            ("10", "'10'"),
            ([10], "[10]"),
        ],
    )
    def test_invalid(self, value: object, shown: str) -> None:
        """Zero, negatives, NaN, infinity, bools and non-numbers are refused."""
        with pytest.raises(ValueError, match=r"^rate_limit must") as info:
            check_rate_limit(value)
        assert str(info.value) == (
            f"rate_limit must be a positive number of requests per second or None, got {shown}"
        )


class TestCheckRateStore:
    """check_rate_store: None or a redis(s):// URL; messages never quote a password."""

    @pytest.mark.parametrize(
        "value",
        [
            None,
            "redis://127.0.0.1:6379/0",
            "rediss://cache.example:6380",
            "REDIS://h/2",
            "redis://:hunter2@127.0.0.1:6379/0",
        ],
    )
    def test_valid(self, value: str | None) -> None:
        """The URL comes back unchanged."""
        assert check_rate_store(value) == value

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (
                "memcached://u:hunter2@host:11211",
                "rate_store must be None or a redis:// URL, got 'memcached'",
            ),
            ("http://hunter2@h", "rate_store must be None or a redis:// URL, got 'http'"),
            (
                "hunter2@127.0.0.1:6379",
                "rate_store must be None or a redis:// URL, got a string with no scheme",
            ),
            (6379, "rate_store must be None or a redis:// URL, got a int"),
            (
                "redis://:hunter2@/0",
                "rate_store must name a host, e.g. redis://127.0.0.1:6379/0",
            ),
            (
                "redis://:hunter2@h:port/0",
                "rate_store has an invalid host or port; expected e.g. redis://127.0.0.1:6379/0",
            ),
            (
                "redis://:hunter2@h:6379/zero",
                "rate_store's database must be a number, e.g. redis://127.0.0.1:6379/0",
            ),
        ],
    )
    def test_invalid(self, value: object, message: str) -> None:
        """Each bad value gets its exact message, with no password in it."""
        with pytest.raises(ValueError, match=r"^rate_store") as info:
            check_rate_store(value)
        assert str(info.value) == message
        assert "hunter2" not in str(info.value)

    def test_description_drops_credentials(self) -> None:
        """The form used in log lines keeps scheme, host, port and database only."""
        assert (
            describe_store_url("rediss://user:hunter2@cache.example:6380/3?x=hunter2")
            == "rediss://cache.example:6380/3"
        )


class TestCheckConcurrency:
    """check_concurrency: a positive int or "auto"."""

    @pytest.mark.parametrize("value", [1, 8, 32, 1000, "auto"])
    def test_valid(self, value: int | str) -> None:
        """Ints pass through; "auto" stays "auto"."""
        assert check_concurrency(value) == value

    @pytest.mark.parametrize(
        ("value", "shown"),
        [(0, "0"), (-3, "-3"), (True, "True"), (2.0, "2.0"), ("8", "'8'"), ("AUTO", "'AUTO'")],
    )
    def test_invalid(self, value: object, shown: str) -> None:
        """Zero, negatives, bools, floats and other strings are refused."""
        with pytest.raises(ValueError, match=r"^concurrency") as info:
            check_concurrency(value)
        assert str(info.value) == f"concurrency must be a positive integer or 'auto', got {shown}"


class TestRateScope:
    """rate_scope: 64 hex characters from key and base URL that never contain the key."""

    def test_shape_and_secrecy(self) -> None:
        """64 hex characters, not the key, stable for the same inputs."""
        key = "ccak_live_0123456789abcdef"
        scope = rate_scope(key, "https://api.cellcast.com")
        assert len(scope) == 64
        assert int(scope, 16) >= 0
        assert key not in scope
        assert scope == rate_scope(key, "https://api.cellcast.com/")

    def test_distinct(self) -> None:
        """Another key, another base URL, or a shifted boundary gives another scope."""
        scopes = {
            rate_scope("a", "https://x"),
            rate_scope("b", "https://x"),
            rate_scope("a", "https://y"),
            rate_scope("a\n1:h", "ttps://x"),
        }
        assert len(scopes) == 4


# ---------------------------------------------------------------------------- budget


class TestBudget:
    """One budget across every task: rate_limit + burst per sliding second, in order."""

    def test_burst_is_documented_value(self) -> None:
        """max(rate / 4, 5)."""
        assert burst_for(100) == 25
        assert burst_for(8) == 5

    @pytest.mark.parametrize("rate", [3.0, 50.0, 100.0, 7.5])
    async def test_many_tasks_share_one_budget(self, vt: VirtualTime, rate: float) -> None:
        """2,000 tasks: no sliding second holds more than rate + burst grants."""
        gov = governor(vt, rate)
        n = 2000 if rate >= 50 else 200
        times = await grant_times(vt, gov, n)
        assert len(times) == n
        assert max_in_window(times) <= rate + burst_for(rate)
        # ... and the budget is used: the last grant is when the cap allows, not later.
        expected_end = 100.0 + (n - burst_for(rate)) / rate
        assert times[-1] == pytest.approx(expected_end, abs=1.0 / rate + 1e-6)
        await gov.aclose()

    @settings(max_examples=60, deadline=None)
    @given(
        rate=st.floats(min_value=0.5, max_value=300),
        arrivals=st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=150),
    )
    def test_any_arrival_pattern(self, rate: float, arrivals: list[float]) -> None:
        """Whatever the rate and whenever tasks arrive: every task gets through, no sliding
        second holds more than rate + burst, and who came first goes first."""

        async def scenario() -> list[tuple[float, float]]:
            vt = VirtualTime(start=100.0)
            gov = governor(vt, rate)
            granted: list[tuple[float, float]] = []

            async def one(delay: float) -> None:
                await vt.sleep(delay)
                arrived = vt.now
                await gov.acquire()
                granted.append((arrived, vt.now))

            await vt.run(one(a) for a in arrivals)
            await gov.aclose()
            return granted

        granted = asyncio.run(scenario())
        assert len(granted) == len(arrivals)
        assert max_in_window(t for _, t in granted) <= rate + burst_for(rate)
        by_arrival = sorted(granted)
        assert [t for _, t in by_arrival] == sorted(t for _, t in by_arrival)

    async def test_fifo_order(self, vt: VirtualTime) -> None:
        """Waiters are let through in the order they asked."""
        gov = governor(vt, 10)
        order: list[int] = []

        async def one(i: int) -> None:
            await asyncio.sleep(0)  # start in order, one loop turn apart
            await gov.acquire()
            order.append(i)

        await vt.run(one(i) for i in range(60))
        assert order == sorted(order)
        await gov.aclose()

    async def test_each_waiter_is_woken_once(self, vt: VirtualTime) -> None:
        """One sleeper (the pump) at a time, however many wait: no herd of wake-ups."""
        gov = governor(vt, 20)
        await grant_times(vt, gov, 500)
        # The pump sleeps once per slot past the burst; waiters never sleep on the clock.
        assert len(vt.sleeps) <= 500
        await gov.aclose()

    async def test_returns_seconds_waited(self, vt: VirtualTime) -> None:
        """The first burst goes at once; the next waits one interval."""
        gov = governor(vt, 1)  # burst 5
        waits = [await gov.acquire() for _ in range(5)]
        assert waits == [0.0] * 5
        task = asyncio.ensure_future(gov.acquire())
        await vt.run([task])
        assert task.result() == pytest.approx(1.0)
        assert gov.state.waited == pytest.approx(1.0)
        await gov.aclose()

    async def test_no_cap_no_wait(self, vt: VirtualTime) -> None:
        """Without rate_limit (and no pause) acquire never sleeps."""
        gov = governor(vt, None)
        assert [await gov.acquire() for _ in range(1000)] == [0.0] * 1000
        assert vt.sleeps == []
        await gov.aclose()

    async def test_cancelled_waiter_gives_its_place(self, vt: VirtualTime) -> None:
        """A waiter cancelled in the queue takes no budget; the next one gets the slot."""
        gov = governor(vt, 1)
        for _ in range(5):
            await gov.acquire()
        first = asyncio.ensure_future(gov.acquire())
        second = asyncio.ensure_future(gov.acquire())
        await asyncio.sleep(0)
        first.cancel()
        await vt.run([second])
        assert vt.now == pytest.approx(101.0)
        await gov.aclose()


class TestMaxWait:
    """max_wait: a wait longer than it raises at once, sleeping none and taking nothing."""

    async def test_raises_at_once(self, vt: VirtualTime) -> None:
        """The sixth request at 1/s needs 1 s: max_wait=0.5 fails now, max_wait=1 waits."""
        gov = governor(vt, 1)
        for _ in range(5):
            await gov.acquire()
        with pytest.raises(GovernorWaitTooLong) as info:
            await gov.acquire(max_wait=0.5)
        assert info.value.needed == pytest.approx(1.0)
        assert str(info.value) == "the rate governor needs a wait of 1.000 s"
        assert vt.sleeps == []
        task = asyncio.ensure_future(gov.acquire(max_wait=1.0))
        await vt.run([task])
        assert task.result() == pytest.approx(1.0)  # the refused call took no slot
        await gov.aclose()

    async def test_during_pause(self, vt: VirtualTime) -> None:
        """A pause longer than max_wait is refused at once."""
        gov = governor(vt, None)
        gov.observe(status=429, headers=None, retry_after=3.0, elapsed=0.1)
        with pytest.raises(GovernorWaitTooLong) as info:
            await gov.acquire(max_wait=2.0)
        assert info.value.needed == pytest.approx(3.0)
        assert vt.sleeps == []
        await gov.aclose()

    async def test_queued_waiter_fails_when_a_pause_outlasts_it(self, vt: VirtualTime) -> None:
        """Already queued when a 429 pauses the session: it fails without waiting it out."""
        gov = governor(vt, 1)
        for _ in range(5):
            await gov.acquire()
        task = asyncio.ensure_future(gov.acquire(max_wait=3.0))
        await asyncio.sleep(0)
        gov.observe(status=429, headers=None, retry_after=10.0, elapsed=0.1)
        await vt.advance(1.0)
        with pytest.raises(GovernorWaitTooLong):
            await task
        assert vt.now < 102.0
        await gov.aclose()

    def test_pickles(self) -> None:
        """The error survives pickling with its figure."""
        again = pickle.loads(pickle.dumps(GovernorWaitTooLong(2.5)))
        assert again.needed == 2.5
        assert str(again) == "the rate governor needs a wait of 2.500 s"


# ---------------------------------------------------------------------------- pause


class TestPause:
    """A 429 pauses every task of the session; traffic resumes gradually."""

    async def _walkers(
        self, vt: VirtualTime, gov: Governor, *, tasks: int, each: int, trigger_at: int
    ) -> list[float]:
        """tasks walkers, each sending `each` requests; request number trigger_at gets a 429."""
        sent: list[float] = []
        answered = 0

        async def walker() -> None:
            nonlocal answered
            for _ in range(each):
                await gov.acquire()
                sent.append(vt.now)
                await vt.sleep(0.02)  # the answer's latency
                answered += 1
                status = 429 if answered == trigger_at else 200
                gov.observe(status=status, headers=None, retry_after=2.0, elapsed=0.02)

        await vt.run(walker() for _ in range(tasks))
        return sent

    async def test_one_429_stops_every_task(self, vt: VirtualTime) -> None:
        """Four walkers, one 429 with Retry-After 2: nobody sends for 2 s."""
        gov = governor(vt, None)
        sent = await self._walkers(vt, gov, tasks=4, each=40, trigger_at=20)
        t_429 = sorted(sent)[19] + 0.02
        during = [t for t in sent if t_429 < t < t_429 + 2.0 - 1e-9]
        assert during == []
        assert len(sent) == 160
        assert gov.state.rate_limited == 1
        await gov.aclose()

    async def test_no_burst_after_the_pause(self, vt: VirtualTime) -> None:
        """200 tasks waiting out a pause come back spaced, slow start, not all at once."""
        gov = governor(vt, None)
        for _ in range(100):  # ran at 100/s before the 429
            await gov.acquire()
            await vt.advance(0.01)
        gov.observe(status=429, headers=None, retry_after=2.0, elapsed=0.05)
        end = vt.now + 2.0
        times = await grant_times(vt, gov, 200)
        assert min(times) >= end - 1e-9
        # Half the old rate at first: at most ~50/s in the first 0.2 s, never 200 at once.
        first = [t for t in times if t < end + 0.2]
        assert len(first) <= 0.2 * 50 * 2 ** (0.2) + 1
        assert max_in_window(times, 0.005) <= 1
        await gov.aclose()

    async def test_slow_start_reaches_the_cap(self, vt: VirtualTime) -> None:
        """With rate_limit=40 the release rate after a pause doubles back up to 40/s."""
        gov = governor(vt, 40)
        await grant_times(vt, gov, 80)
        gov.observe(status=429, headers=None, retry_after=1.0, elapsed=0.05)
        assert gov.state.reason == "paused"
        await vt.advance(1.0)
        resumed = gov.state
        assert resumed.reason == "resume"
        assert resumed.rate is not None
        assert resumed.rate <= 20.0 + 1e-9
        await vt.advance(2.0)
        assert gov.state.reason == "rate_limit"
        assert gov.state.rate == 40.0
        await gov.aclose()

    async def test_resume_shape(self, vt: VirtualTime) -> None:
        """After a 429 at 100/s: 50/s, doubling to 90/s, then +9/s per second."""
        gov = governor(vt, None)
        for _ in range(100):
            await gov.acquire()
            await vt.advance(0.01)
        gov.observe(status=429, headers=None, retry_after=1.0, elapsed=0.05)
        rates = []
        for step in (1.0, 0.5, math.log2(1.8) - 0.5, 1.0, 10.0):
            await vt.advance(step)
            rates.append(gov.state.rate)
        assert rates == pytest.approx([50.0, 50.0 * 2**0.5, 90.0, 99.0, 189.0])
        await gov.aclose()

    async def test_slow_start_just_after_the_start(self, vt: VirtualTime) -> None:
        """Six requests in the first 5 ms read as 60/s (not 6/s): resume at 30/s."""
        gov = governor(vt, None)
        for _ in range(6):
            await gov.acquire()
            await vt.advance(0.001)
        gov.observe(status=429, headers=None, retry_after=0.5, elapsed=0.05)
        await vt.advance(0.5)
        assert (gov.state.reason, gov.state.rate) == ("resume", pytest.approx(30.0))
        await gov.aclose()

    async def test_a_burst_of_429s_is_one_pause(self, vt: VirtualTime) -> None:
        """Eight prefetched pages all answered 429: one pause, to the latest end."""
        gov = governor(vt, None)
        for i in range(8):
            gov.observe(status=429, headers=None, retry_after=1.0 + i / 100, elapsed=0.1)
        state = gov.state
        assert state.paused_until == pytest.approx(100.0 + 1.07)
        assert state.rate_limited == 8
        await gov.aclose()

    async def test_backoff_when_no_retry_after(self, vt: VirtualTime) -> None:
        """No Retry-After (or a negative or NaN one): 0.5-1 s, then 1-2 s, 2-4 s."""
        gov = governor(vt, None)
        pauses = []
        for bad in (None, -1.0, math.nan):
            gov.observe(status=429, headers=None, retry_after=bad, elapsed=0.1)
            paused_until = gov.state.paused_until
            assert paused_until is not None
            pauses.append(paused_until - vt.now)
            await vt.advance(paused_until - vt.now)
        assert 0.5 <= pauses[0] <= 1.0
        assert 1.0 <= pauses[1] <= 2.0
        assert 2.0 <= pauses[2] <= 4.0
        gov.observe(status=200, headers=None, retry_after=None, elapsed=0.1)
        gov.observe(status=429, headers=None, retry_after=None, elapsed=0.1)
        paused_until = gov.state.paused_until
        assert paused_until is not None
        assert 0.5 <= paused_until - vt.now <= 1.0  # a clean answer resets the backoff
        await gov.aclose()

    async def test_pause_is_capped(self, vt: VirtualTime) -> None:
        """A Retry-After of an hour pauses for MAX_PAUSE (60 s) at most."""
        gov = governor(vt, None)
        gov.observe(status=429, headers=None, retry_after=3600.0, elapsed=0.1)
        assert gov.state.paused_until == pytest.approx(100.0 + MAX_PAUSE)
        await gov.aclose()

    async def test_other_statuses_do_not_pause(self, vt: VirtualTime) -> None:
        """503, 500 and no answer leave the governor alone (AIMD handles them)."""
        gov = governor(vt, None)
        for status in (None, 500, 503, 404):
            gov.observe(status=status, headers=None, retry_after=5.0, elapsed=0.1)
        assert gov.state.paused_until is None
        assert await gov.acquire() == 0.0
        await gov.aclose()


# ---------------------------------------------------------------------------- headers


class TestHeaders:
    """Rate-limit headers spread the remaining budget over the time to reset."""

    @pytest.mark.parametrize(
        "headers",
        [
            {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "10", "X-RateLimit-Reset": "5"},
            {"x-ratelimit-remaining": "10", "x-ratelimit-reset": "5"},
            {"RateLimit-Limit": "100", "RateLimit-Remaining": "10", "RateLimit-Reset": "5"},
            {"RateLimit": "limit=100, remaining=10, reset=5"},
            {"RateLimit": '"default";r=10;t=5', "RateLimit-Policy": '"default";q=100;w=60'},
            {"RateLimit": '"burst";r=50;t=5, "daily";r=10;t=5'},
        ],
    )
    async def test_rate_from_headers(self, vt: VirtualTime, headers: dict[str, str]) -> None:
        """10 left for 5 s: 2 requests per second, evenly spaced, until the reset."""
        gov = governor(vt, 100)
        gov.observe(status=200, headers=headers, retry_after=None, elapsed=0.1)
        state = gov.state
        assert (state.rate, state.reason) == (2.0, "headers")
        times = await grant_times(vt, gov, 6)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps == pytest.approx([0.5] * 5)
        await vt.advance(5.0)
        assert gov.state.reason == "rate_limit"  # past the reset the cap is back
        await gov.aclose()

    async def test_unix_time_reset(self, vt: VirtualTime) -> None:
        """A reset that is a Unix time is read against the wall clock."""
        gov = governor(vt, None, wall_clock=lambda: 1_700_000_000.0)
        headers = {"X-RateLimit-Remaining": "30", "X-RateLimit-Reset": "1700000010"}
        gov.observe(status=200, headers=headers, retry_after=None, elapsed=0.1)
        assert gov.state.rate == pytest.approx(3.0)
        await gov.aclose()

    async def test_nothing_left_pauses_until_reset(self, vt: VirtualTime) -> None:
        """Remaining 0: no request until the reset."""
        gov = governor(vt, None)
        headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "3"}
        gov.observe(status=200, headers=headers, retry_after=None, elapsed=0.1)
        times = await grant_times(vt, gov, 3)
        assert min(times) == pytest.approx(103.0)
        await gov.aclose()

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"X-RateLimit-Remaining": "ten", "X-RateLimit-Reset": "5"},
            {"X-RateLimit-Remaining": "10"},
            {"X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "5"},
            {"X-RateLimit-Remaining": "10", "X-RateLimit-Reset": "0"},
            {"X-RateLimit-Remaining": "10", "X-RateLimit-Reset": "nan"},
            {"RateLimit": "garbage;;==,"},
        ],
    )
    async def test_unreadable_headers_are_ignored(
        self, vt: VirtualTime, headers: dict[str, str]
    ) -> None:
        """Missing, negative or unreadable parts: as if no header had been sent."""
        gov = governor(vt, None)
        gov.observe(status=200, headers=headers, retry_after=None, elapsed=0.1)
        assert (gov.state.rate, gov.state.reason) == (None, "none")
        await gov.aclose()

    async def test_generous_headers_do_not_raise_the_cap(self, vt: VirtualTime) -> None:
        """Headers only ever slow the governor down, never past rate_limit."""
        gov = governor(vt, 10)
        headers = {"X-RateLimit-Remaining": "1000", "X-RateLimit-Reset": "1"}
        gov.observe(status=200, headers=headers, retry_after=None, elapsed=0.1)
        assert (gov.state.rate, gov.state.reason) == (10.0, "rate_limit")
        await gov.aclose()


# ---------------------------------------------------------------------------- state, close


class TestState:
    """The snapshot is a frozen attrs object that tells what is in force."""

    async def test_fields(self, vt: VirtualTime) -> None:
        """Rate, burst, store and counters."""
        gov = governor(vt, 8)
        await gov.acquire()
        state = gov.state
        assert isinstance(state, GovernorState)
        assert attrs.has(GovernorState)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            state.rate = 1.0  # type: ignore[misc]
        assert state == GovernorState(
            paused_until=None,
            rate=8.0,
            reason="rate_limit",
            rate_limit=8.0,
            burst=5.0,
            store="memory",
            waiting=0,
            rate_limited=0,
            acquired=1,
            waited=0.0,
        )
        await gov.aclose()

    async def test_closed(self, vt: VirtualTime) -> None:
        """After aclose(), acquire() is a RuntimeError and queued waiters fail too."""
        gov = governor(vt, 1)
        for _ in range(5):
            await gov.acquire()
        waiting = asyncio.ensure_future(gov.acquire())
        await asyncio.sleep(0)
        await gov.aclose()
        with pytest.raises(RuntimeError, match=r"^the rate governor is closed$"):
            await waiting
        with pytest.raises(RuntimeError, match=r"^the rate governor is closed$"):
            await gov.acquire()
        await gov.aclose()  # twice is fine


class TestMakeGovernor:
    """make_governor checks its arguments and picks the store."""

    async def test_in_process(self) -> None:
        """No store URL: the in-process store."""
        gov = make_governor(5, None, rate_scope("k", "https://x"))
        assert gov.state.store == "memory"
        assert gov.state.rate_limit == 5.0
        await gov.aclose()

    async def test_redis_url_is_not_contacted_until_used(self) -> None:
        """A Redis store is made without connecting; its description hides the password."""
        pytest.importorskip("redis")
        gov = make_governor(None, "redis://:hunter2@127.0.0.1:1/0", "s")
        assert gov.state.store == "redis://127.0.0.1:1/0"
        await gov.aclose()

    @pytest.mark.parametrize(
        ("rate_limit", "rate_store", "message"),
        [
            (0, None, "rate_limit must be a positive number of requests per second or None, got 0"),
            (None, "memcached://h", "rate_store must be None or a redis:// URL, got 'memcached'"),
        ],
    )
    def test_misuse(self, rate_limit: object, rate_store: object, message: str) -> None:
        """Misuse is a ValueError before anything is created."""
        with pytest.raises(ValueError, match=r"^rate_") as info:
            make_governor(rate_limit, rate_store, "s")
        assert str(info.value) == message


class _FlakyStore(RateStore):
    """A shared store that works for `good` calls, then is unreachable."""

    shared = True

    def __init__(self, vt: VirtualTime, good: int) -> None:
        self.inner = InProcessStore(vt.clock)
        self.good = good
        self.calls = 0
        self.closed = False

    async def reserve(
        self, interval: float | None, tolerance: float, max_wait: float | None
    ) -> Reservation:
        self.calls += 1
        if self.calls > self.good:
            raise StoreUnavailable("ConnectionError")
        return await self.inner.reserve(interval, tolerance, max_wait)

    async def pause(self, seconds: float) -> None:
        self.calls += 1
        if self.calls > self.good:
            raise StoreUnavailable("ConnectionError")
        await self.inner.pause(seconds)

    async def aclose(self) -> None:
        self.closed = True

    def describe(self) -> str:
        return "redis://127.0.0.1:6379/0"


class TestFallback:
    """A shared store that stops answering: one WARNING, then the in-process budget."""

    async def test_one_warning_and_the_walk_goes_on(
        self, vt: VirtualTime, caplog: pytest.LogCaptureFixture
    ) -> None:
        """500 acquisitions over a store that dies after 50: all granted, one warning."""
        store = _FlakyStore(vt, good=50)
        gov = governor(vt, 50, store=store)
        with caplog.at_level(logging.DEBUG):
            times = await grant_times(vt, gov, 500)
        assert len(times) == 500
        assert max_in_window(times) <= 50 + burst_for(50)
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [(r.name, r.levelname, r.getMessage()) for r in warnings] == [
            (
                "cellcast_async",
                "WARNING",
                "rate store redis://127.0.0.1:6379/0 is unreachable; "
                "rate limiting continues in this process only",
            )
        ]
        assert gov.state.store == "memory (rate store unreachable)"
        await gov.aclose()
        assert store.closed

    async def test_pause_write_failure_falls_back_too(
        self, vt: VirtualTime, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A 429 whose shared pause cannot be written still pauses this process."""
        store = _FlakyStore(vt, good=0)
        gov = governor(vt, None, store=store)
        with caplog.at_level(logging.WARNING):
            gov.observe(status=429, headers=None, retry_after=2.0, elapsed=0.1)
            times = await grant_times(vt, gov, 3)
        assert min(times) >= 102.0 - 1e-9
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        await gov.aclose()

    async def test_shared_pause_from_another_process(self, vt: VirtualTime) -> None:
        """A pause found in the store (another process's 429) pauses this governor too."""
        store = _FlakyStore(vt, good=10**6)
        await store.inner.pause(1.5)
        gov = governor(vt, None, store=store)
        times = await grant_times(vt, gov, 3)
        assert min(times) >= 101.5 - 1e-9
        assert gov.state.rate_limited == 0
        await gov.aclose()


# ---------------------------------------------------------------------------- AIMD


class TestAdaptiveConcurrency:
    """AIMD: slow start, additive growth, halving on congestion once per round."""

    def test_bad_bounds(self) -> None:
        """initial outside [minimum, maximum] is a ValueError."""
        with pytest.raises(ValueError, match=r"^AdaptiveConcurrency needs") as info:
            AdaptiveConcurrency(initial=0)
        assert str(info.value) == (
            "AdaptiveConcurrency needs 1 <= minimum <= initial <= maximum, "
            "got minimum=1, initial=0, maximum=32"
        )

    def test_grows_to_maximum_on_clean_fast_answers(self) -> None:
        """From 2 to 32 within a few rounds of fast 200s."""
        ac = AdaptiveConcurrency(clock=lambda: 0.0)
        seen = [ac.limit]
        for _ in range(40):
            ac.on_attempt(200, 0.02)
            seen.append(ac.limit)
        assert seen[0] == 2
        assert seen == sorted(seen)
        assert ac.limit == 32

    @pytest.mark.parametrize("signal", [429, 503, None])
    def test_halves_on_congestion(self, signal: int | None) -> None:
        """429, 503 and no answer halve the limit."""
        ac = AdaptiveConcurrency(initial=16, clock=lambda: 0.0)
        ac.on_attempt(signal, 0.02)
        assert ac.limit == 8

    def test_once_per_round(self) -> None:
        """Eight failures of one burst halve once; the next round can halve again."""
        ac = AdaptiveConcurrency(initial=16, clock=lambda: 0.0)
        for _ in range(8):
            ac.on_attempt(429, 0.02)
        assert ac.limit == 8
        assert ac.decreases == 1
        for _ in range(16):
            ac.on_attempt(429, 0.02)
        assert ac.limit == 4

    def test_additive_after_a_decrease(self) -> None:
        """After a decrease, +1 per round (limit answers), not +1 per answer."""
        ac = AdaptiveConcurrency(initial=16, clock=lambda: 0.0)
        ac.on_attempt(429, 0.02)
        assert ac.limit == 8
        for _ in range(8):
            ac.on_attempt(200, 0.02)
        assert ac.limit == 8 or ac.limit == 9
        for _ in range(9 * 3):
            ac.on_attempt(200, 0.02)
        assert 10 <= ac.limit <= 11

    def test_rising_latency_backs_off(self) -> None:
        """Answers that slow to many times the floor shrink the window."""
        ac = AdaptiveConcurrency(initial=8, clock=lambda: 0.0)
        for _ in range(10):
            ac.on_attempt(200, 0.02)
        grown = ac.limit
        for _ in range(10):
            ac.on_attempt(200, 0.5)
        assert ac.limit < grown
        assert ac.decreases >= 1

    def test_floor_is_relearnt(self) -> None:
        """A server that got slower for good: after 30 s of clock the new latency is the
        floor, and the window grows again instead of shrinking forever."""
        now = [0.0]
        ac = AdaptiveConcurrency(initial=8, clock=lambda: now[0])
        for _ in range(20):
            ac.on_attempt(200, 0.01)
        for _ in range(70):  # two floor periods of the slower server
            now[0] += 1.0
            ac.on_attempt(200, 0.2)
        assert ac.decreases >= 1
        shrunk = ac.limit
        decreases = ac.decreases
        for _ in range(60):
            now[0] += 1.0
            ac.on_attempt(200, 0.2)
        assert ac.decreases == decreases
        assert ac.limit > shrunk

    def test_small_jitter_is_not_congestion(self) -> None:
        """Latency within 20 ms of the floor is noise, not a signal."""
        ac = AdaptiveConcurrency(initial=2, clock=lambda: 0.0)
        for i in range(200):
            ac.on_attempt(200, 0.002 + (i % 5) * 0.003)
        assert ac.limit == 32
        assert ac.decreases == 0

    def test_minimum_and_neutral_statuses(self) -> None:
        """Never below minimum; 500/502/504 neither grow nor shrink."""
        ac = AdaptiveConcurrency(initial=2, minimum=1, clock=lambda: 0.0)
        for _ in range(50):
            ac.on_attempt(None, 0.0)
        assert ac.limit == 1
        before = ac.limit
        for status in (500, 502, 504):
            ac.on_attempt(status, 0.02)
        assert ac.limit == before
