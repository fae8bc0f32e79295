"""The rate governor (README "Rate limits"), on a virtual clock: no test waits for real."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import pickle
import typing

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellcast_async import CellcastSession, GovernorReason
from cellcast_async._governor import (
    Governor,
    GovernorState,
    GovernorWaitTooLong,
    burst_for,
    make_governor,
)
from cellcast_async._options import check_concurrency, check_rate_limit, check_rate_store
from cellcast_async._rate_store import (
    InProcessStore,
    RateStore,
    Reservation,
    StoreUnavailable,
    describe_store_url,
    rate_scope,
)
from cellcast_async._walk_auto import AdaptiveConcurrency

from ._virtual_time import VirtualTime, governor, max_in_window


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime(start=100.0)


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
        gov._hold(3.0, vt.now)  # a pause, however it came (a shared one, a hold)
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
        gov._hold(10.0, vt.now)
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


# ---------------------------------------------------------------------------- 429s


def refused(gov: Governor, vt: VirtualTime, retry_after: float | None = None) -> None:
    """A 429 for a request sent 20 ms ago."""
    gov.observe(status=429, headers=None, retry_after=retry_after, elapsed=0.02)


def admitted(gov: Governor, headers: dict[str, str] | None = None) -> None:
    gov.observe(status=200, headers=headers, retry_after=None, elapsed=0.02)


class TestRefusals:
    """README "Rate limits": a 429 among admitted answers paces the session; a server that
    refuses everything holds it, probed one request at a time."""

    async def test_too_fast_cuts_the_pace_without_a_pause(self, vt: VirtualTime) -> None:
        """60 admitted in a second, then a 429: no pause, paced just under 60/s."""
        gov = governor(vt, None)
        for _ in range(60):
            admitted(gov)
            await vt.advance(1 / 60)
        refused(gov, vt, retry_after=1.0)
        state = gov.state
        assert state.paused_until is None
        assert state.reason == "probing"
        assert state.server_rate == pytest.approx(60.0, rel=0.05)
        assert state.rate == pytest.approx(0.95 * 60.0, rel=0.05)
        await gov.aclose()

    async def test_first_answer_refused_holds(self, vt: VirtualTime) -> None:
        """Nothing admitted yet and a 429 with Retry-After 1: a short hold (0.1 s,
        jittered), not the whole second."""
        gov = governor(vt, None)
        refused(gov, vt, retry_after=1.0)
        state = gov.state
        assert state.reason == "paused"
        assert state.paused_until is not None
        assert 100.07 <= state.paused_until <= 100.1 + 1e-9
        await gov.aclose()

    async def test_long_retry_after_is_held_in_full(self, vt: VirtualTime) -> None:
        """A Retry-After over 1 s while closed is what the server means: held in full,
        capped at 60 s."""
        gov = governor(vt, None)
        refused(gov, vt, retry_after=30.0)
        assert gov.state.paused_until == pytest.approx(130.0)
        await gov.aclose()
        capped = governor(vt, None)
        refused(capped, vt, retry_after=3600.0)
        assert capped.state.paused_until == pytest.approx(160.0)
        await capped.aclose()

    async def test_holds_grow_and_never_pass_retry_after(self, vt: VirtualTime) -> None:
        """Refusals in a row: holds 0.1, 0.15, 0.225 ... s (jittered), at most Retry-After."""
        gov = governor(vt, None)
        holds = []
        for _ in range(12):
            refused(gov, vt, retry_after=1.0)
            until = gov.state.paused_until
            assert until is not None
            holds.append(until - vt.now)
            await vt.advance(until - vt.now + 0.03)
        assert holds[0] <= 0.1 + 1e-9
        assert holds[1] > holds[0] * 1.1
        assert max(holds) <= 1.0 + 1e-9
        await gov.aclose()

    async def test_challenge_holds_nothing(self, vt: VirtualTime) -> None:
        """A per-request challenge (first attempts refused, their retries admitted): after
        the first short hold, new pages' refusals in a row hold nothing and the requests
        go at once."""
        gov = governor(vt, None)
        refused(gov, vt, retry_after=1.0)
        until = gov.state.paused_until
        assert until is not None
        assert until - vt.now <= 0.1 + 1e-9
        await vt.advance(until - vt.now)
        await vt.run([gov.acquire()])  # the retry
        gov.observe(status=200, headers=None, retry_after=None, elapsed=0.02, retry=True)
        for _ in range(8):
            refused(gov, vt, retry_after=1.0)
        assert gov.state.paused_until is None
        assert gov.state.reason == "probing"
        # The next request waits one slot of the climbing pace at most, not a hold.
        [waited] = await vt.run([gov.acquire()])
        assert waited <= 1.0 / 20.0 + 1e-9
        await gov.aclose()

    async def test_hold_capped_at_5_s_without_retry_after(self, vt: VirtualTime) -> None:
        """No Retry-After at all: the holds stop growing at 5 s."""
        gov = governor(vt, None)
        for _ in range(30):
            refused(gov, vt)
            until = gov.state.paused_until
            assert until is not None
            assert until - vt.now <= 5.0 + 1e-9
            await vt.advance(until - vt.now + 0.03)
        await gov.aclose()

    async def test_one_probe_at_a_time_while_closed(self, vt: VirtualTime) -> None:
        """While closed, requests leave at 20/s (a late one may be followed half an
        interval early), never as a herd."""
        gov = governor(vt, None)
        refused(gov, vt)
        times = await grant_times(vt, gov, 10)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 0.025 - 1e-9
        assert times[-1] - times[0] >= 8 * 0.05 - 1e-9
        await gov.aclose()

    async def test_retry_after_in_headers_counts(self, vt: VirtualTime) -> None:
        """With headers, their Retry-After (0.05 s here) bounds the hold."""
        gov = governor(vt, None)
        gov.observe(status=429, headers={"Retry-After": "0"}, retry_after=7.0, elapsed=0.02)
        until = gov.state.paused_until
        assert until is not None
        assert until - vt.now <= 0.1 + 1e-9
        await gov.aclose()

    async def test_other_statuses_do_not_pace(self, vt: VirtualTime) -> None:
        """500, 503 and lost answers teach the governor nothing about the rate."""
        gov = governor(vt, None)
        for status in (500, 503, None):
            gov.observe(status=status, headers=None, retry_after=1.0, elapsed=0.1)
        assert gov.state.rate is None
        assert gov.state.reason == "none"
        await gov.aclose()

    async def test_rate_limit_still_caps(self, vt: VirtualTime) -> None:
        """With rate_limit=10 and a server that admits 60/s, 10/s is in force."""
        gov = governor(vt, 10)
        for _ in range(60):
            admitted(gov)
            await vt.advance(1 / 60)
        refused(gov, vt)
        assert gov.state.rate == 10.0
        assert gov.state.reason == "rate_limit"
        await gov.aclose()

    async def test_every_reason_is_a_governor_reason(self, vt: VirtualTime) -> None:
        """``GovernorState.reason`` takes only the values ``GovernorReason`` lists (the
        Literal a type checker sees), and each one is reached."""
        capped = governor(vt, 10)
        seen = {capped.state.reason}  # rate_limit
        await capped.aclose()
        closed = governor(vt, None)
        refused(closed, vt, retry_after=1.0)
        seen.add(closed.state.reason)  # paused: the first answer was a 429
        await closed.aclose()
        gov = governor(vt, None)
        seen.add(gov.state.reason)  # none
        for _ in range(60):
            admitted(gov)
            await vt.advance(1 / 60)
        refused(gov, vt)
        seen.add(gov.state.reason)  # probing: the first cut probes upward
        for _ in range(30):  # the server admits 60/s while the probe climbs past it
            admitted(gov)
            await vt.advance(1 / 120)
            refused(gov, vt)
            await vt.advance(1 / 120)
        seen.add(gov.state.reason)  # learnt: the probe met the rate, the cruise paces
        assert gov.state.reason == "learnt"
        assert seen == set(typing.get_args(GovernorReason))
        await gov.aclose()


class TestHeaders:
    """Rate-limit headers: a budget under one request is a cut before the 429."""

    @pytest.mark.parametrize(
        "headers",
        [
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"},
            {"RateLimit-Remaining": "0.5", "RateLimit-Reset": "2"},
            {"RateLimit": "limit=10, remaining=0, reset=1"},
            {"RateLimit": '"default";r=0;t=1'},
        ],
    )
    async def test_spent_budget_cuts(self, vt: VirtualTime, headers: dict[str, str]) -> None:
        """40 admitted in a second, then a spent budget: paced under 40/s, no pause."""
        gov = governor(vt, None)
        for _ in range(40):
            admitted(gov)
            await vt.advance(1 / 40)
        admitted(gov, headers)
        assert gov.state.paused_until is None
        assert gov.state.rate is not None
        assert gov.state.rate <= 41.0 * 0.95
        await gov.aclose()

    async def test_budget_left_changes_nothing(self, vt: VirtualTime) -> None:
        """A pessimistic reading (2 left, reset in 1 s) is not a pace: still unpaced."""
        gov = governor(vt, None)
        admitted(gov, {"X-RateLimit-Remaining": "2", "X-RateLimit-Reset": "1"})
        assert gov.state.rate is None
        await gov.aclose()

    async def test_unreadable_headers_are_ignored(self, vt: VirtualTime) -> None:
        gov = governor(vt, None)
        admitted(gov, {"X-RateLimit-Remaining": "lots", "X-RateLimit-Reset": "soon"})
        assert gov.state.rate is None
        await gov.aclose()


class TestState:
    """The snapshot is a frozen attrs object that tells what is in force."""

    async def test_fields(self, vt: VirtualTime) -> None:
        """Rate, burst, store and counters."""
        gov = governor(vt, 8)
        await gov.acquire()
        state = gov.state
        assert isinstance(state, GovernorState)
        assert attrs.has(type(state))
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
            server_rate=None,
            width=None,
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
        """Misuse is a ValueError where the session's options enter, before any governor
        (or anything else) is made; the governor itself trusts checked options."""
        with pytest.raises(ValueError, match=r"^rate_") as info:
            CellcastSession(api_key="k", rate_limit=rate_limit, rate_store=rate_store)  # type: ignore[arg-type]
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
            until = gov.state.paused_until
            times = await grant_times(vt, gov, 3)
        assert until is not None
        assert min(times) >= until - 1e-9
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
        """From 2 to 8 in a few answers (slow start), then +1 per four rounds, to 32."""
        ac = AdaptiveConcurrency(clock=lambda: 0.0)
        seen = [ac.limit]
        for _ in range(6):
            ac.on_attempt(200, 0.02)
            seen.append(ac.limit)
        assert seen == [2, 3, 4, 5, 6, 7, 8]
        for _ in range(8 * 4 + 2):  # one more: floats add up to a hair under 9
            ac.on_attempt(200, 0.02)
        assert ac.limit == 9
        for _ in range(4000):
            ac.on_attempt(200, 0.02)
        assert ac.limit == 32

    @pytest.mark.parametrize("signal", [503, None])
    def test_halves_on_congestion(self, signal: int | None) -> None:
        """503 and no answer halve the limit."""
        ac = AdaptiveConcurrency(initial=16, clock=lambda: 0.0)
        ac.on_attempt(signal, 0.02)
        assert ac.limit == 8

    def test_429_is_the_governors(self) -> None:
        """A 429 leaves the width alone: the rate is the governor's control."""
        ac = AdaptiveConcurrency(initial=16, clock=lambda: 0.0)
        for _ in range(20):
            ac.on_attempt(429, 0.02)
        assert ac.limit == 16
        assert ac.decreases == 0

    def test_once_per_round(self) -> None:
        """Eight failures of one burst halve once; the next round can halve again."""
        ac = AdaptiveConcurrency(initial=16, clock=lambda: 0.0)
        for _ in range(8):
            ac.on_attempt(503, 0.02)
        assert ac.limit == 8
        assert ac.decreases == 1
        for _ in range(16):
            ac.on_attempt(503, 0.02)
        assert ac.limit == 4

    def test_additive_after_a_decrease(self) -> None:
        """After a decrease, +1 per four rounds (limit answers each), not +1 per answer."""
        ac = AdaptiveConcurrency(initial=16, clock=lambda: 0.0)
        ac.on_attempt(503, 0.02)
        assert ac.limit == 8
        for _ in range(8 * 4):
            ac.on_attempt(200, 0.02)
        assert ac.limit == 8 or ac.limit == 9
        for _ in range(9 * 4 * 2):
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
        for i in range(4000):
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


class TestSharedLearntPace:
    """README "Rate limits": with a shared store, the pace a process learnt is its own
    share of the server's rate: it gates this process, the store keeps rate_limit."""

    async def test_learnt_pace_stays_local(self, vt: VirtualTime) -> None:
        store = _RecordingStore(vt)
        gov = governor(vt, None, store=store)
        for _ in range(40):
            gov.observe(status=200, headers=None, retry_after=None, elapsed=0.02)
            await vt.advance(1 / 40)
        gov.observe(status=429, headers=None, retry_after=None, elapsed=0.02)
        pace = gov.state.rate
        assert pace is not None
        times = await grant_times(vt, gov, 20)
        assert set(store.intervals) == {None}  # nothing learnt was written to the store
        span = times[-1] - times[0]
        assert span >= 19 / pace * 0.5  # yet this process went no faster than its pace
        await gov.aclose()


class _RecordingStore(_FlakyStore):
    def __init__(self, vt: VirtualTime) -> None:
        super().__init__(vt, good=10**6)
        self.intervals: list[float | None] = []

    async def reserve(
        self, interval: float | None, tolerance: float, max_wait: float | None
    ) -> Reservation:
        self.intervals.append(interval)
        return await super().reserve(interval, tolerance, max_wait)
