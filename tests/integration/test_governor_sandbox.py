"""The rate governor of ``CellcastSession(rate_limit=...)``, against a rate-limited sandbox.

Counts come from the sandbox's own record of when each request arrived. Real time,
briefly: about a second per test (the session gets the real clock and sleep, not the
suite's fake one).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from cellcast_async import CellcastSession, ResponseEvent
from cellcast_async._governor import burst_for
from cellcast_async.sandbox import Sandbox

from .._real_time import real_time_session
from ..unit._virtual_time import max_in_window


@asynccontextmanager
async def governed(
    sb: Sandbox, rate_limit: float | None, seen_429: list[float] | None = None
) -> AsyncIterator[CellcastSession]:
    async def on_response(event: ResponseEvent) -> None:
        if event.status == 429 and seen_429 is not None:
            seen_429.append(time.monotonic())  # the sandbox's clock too: one process

    async with real_time_session(
        sb, max_retries=5, rate_limit=rate_limit, event_hooks={"response": [on_response]}
    ) as cc:
        yield cc


class TestOneBudget:
    """Every task and every pager of a session draws from one budget."""

    async def test_pagers_and_gets_share_the_rate(self) -> None:
        """Three pagers (4 pages in flight each) and 20 gets at 100/s: the server sees at
        most 100 + burst in any sliding second, and never an empty bucket."""
        rate = 100.0
        async with Sandbox(tokens=300, rate_limit=rate, burst=40) as sb:
            async with governed(sb, rate) as cc:
                first = await cc.tokens.list(limit=1)
                token_id = first.items[0].id

                async def walk() -> int:
                    return len(await cc.tokens.list(limit=10, concurrency=4).collect())

                results = await asyncio.gather(
                    *(walk() for _ in range(3)), *(cc.tokens.get(token_id) for _ in range(20))
                )
            arrivals = [r.received_at for r in sb.requests]
            assert results[:3] == [300, 300, 300]
            # Each walk with pages in flight reads page 1 once more at the end, to prove the
            # list stayed quiet (README "Reliability").
            assert len(arrivals) == 1 + 3 * (30 + 1) + 20
            assert max_in_window(arrivals) <= rate + burst_for(rate)
            assert sb.rate_limited == 0


class TestSessionPause:
    """README "Rate limits": a lone 429 paces the session, a server that refuses
    everything holds every task of it."""

    async def test_a_lone_429_does_not_pause(self) -> None:
        """Request 6 gets a 429 (Retry-After 0.5) among admitted answers: "a little too
        fast", the four walks go on, paced at what the server admitted."""
        seen: list[float] = []
        async with Sandbox(tokens=300) as sb:
            sb.script({6: ("429", 0.5)})
            async with governed(sb, None, seen) as cc:

                async def walk() -> int:
                    return len(await cc.tokens.list(limit=25).collect())

                counts = await asyncio.gather(*(walk() for _ in range(4)))
                state = cc.governor_state
            assert counts == [300] * 4
            assert len(seen) == 1
            assert state.paused_until is None
            assert state.server_rate is not None

    @pytest.mark.soak  # about 14 s of refusals in a row
    async def test_refusals_in_a_row_hold_every_task(self) -> None:
        """Requests 6 to 17 get 429s with Retry-After 1.5 (the retries too): once three
        come back in a row for requests sent after the first, nothing else reaches the
        server until the 1.5 s have passed (a Retry-After over 1 s is held in full),
        though four pagers were walking."""
        seen: list[float] = []
        async with Sandbox(tokens=300) as sb:
            sb.script({n: ("429", 1.5) for n in range(6, 18)})
            async with governed(sb, None, seen) as cc:

                async def walk() -> int:
                    return len(await cc.tokens.list(limit=25).collect())

                counts = await asyncio.gather(*(walk() for _ in range(4)))
            assert counts == [300] * 4
            assert len(seen) == 12
            arrivals = sorted(r.received_at for r in sb.requests)
            # Somewhere in the refusals the session held for 1.5 s: a gap of at least
            # 1.4 s between two arrivals (the loop's clock resolution allowed for).
            gaps = [b - a for a, b in itertools.pairwise(arrivals)]
            assert max(gaps) >= 1.4
            assert len([t for t in arrivals if t > seen[-1]]) > 3  # the walks went on after


class TestHeaders:
    """X-RateLimit-* answers let the governor cut its pace before the limit."""

    async def test_paced_by_headers_without_a_cap(self) -> None:
        """No rate_limit of its own, 8 pages in flight, a server at 100/s (burst 10) that
        sends X-RateLimit-*: the pace is cut and the refusals stay few (13 of 150 on a
        quiet machine; the 5% target is the benchmark's, benchmarks/ratelimit.py)."""
        async with Sandbox(tokens=1500, rate_limit=100, burst=10, rate_limit_headers=True) as sb:
            async with governed(sb, None) as cc:
                tokens = await cc.tokens.list(limit=10, concurrency=8).collect()
                reason = cc.governor_state.reason
            assert len(tokens) == 1500
            assert reason in ("learnt", "probing")  # the spent budget cut the pace
            # A round in flight at concurrency 8 when the burst of 10 runs out, then the
            # probes above the measured rate (README "Rate limits"); a loaded machine's
            # jitter adds a few (18 seen under a parallel test run): bounded, not timed.
            assert sb.rate_limited <= 25


class TestStateShowsBothControls:
    """README "Rate limits": governor_state shows the learnt rate and the auto width."""

    async def test_width_and_server_rate(self) -> None:
        """During an auto walk against 50/s (burst 5): a width, and an estimate near 50."""
        async with (
            Sandbox(tokens=600, rate_limit=50, burst=5) as sb,
            governed(sb, None) as cc,
        ):
            assert cc.governor_state.width is None  # no auto walk yet
            pager = cc.tokens.list(limit=10, concurrency="auto")
            widths: list[int | None] = []
            async for _ in pager.pages():
                widths.append(cc.governor_state.width)
            state = cc.governor_state
        assert all(isinstance(w, int) and 1 <= w <= 32 for w in widths)
        assert state.server_rate is not None
        # Never above what the server admits (plus the estimator's margin). The floor is
        # loose: on a loaded 2-core machine the client itself may not reach 50/s, and the
        # estimate follows what was admitted (20/s seen under a load average of 5).
        assert 10.0 <= state.server_rate <= 75.0
