"""The rate governor of ``CellcastSession(rate_limit=...)``, against a rate-limited sandbox.

Counts come from the sandbox's own record of when each request arrived. Real time,
briefly: about a second per test (the session gets the real clock and sleep, not the
suite's fake one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
    """A 429 to one task holds back every task of the session."""

    async def test_no_request_during_the_pause(self) -> None:
        """Request 6 gets a 429 with Retry-After 0.5: nothing else reaches the server
        until it has passed, though four pagers were walking."""
        seen: list[float] = []
        async with Sandbox(tokens=300) as sb:
            sb.script({6: ("429", 0.5)})
            async with governed(sb, None, seen) as cc:

                async def walk() -> int:
                    return len(await cc.tokens.list(limit=25).collect())

                counts = await asyncio.gather(*(walk() for _ in range(4)))
            assert counts == [300] * 4
            assert len(seen) == 1
            arrivals = [r.received_at for r in sb.requests]
            # Only requests already on their way when the 429 came back can arrive in the
            # pause (at most the other three walkers' pages); the loop's clock resolution
            # is allowed for at the end.
            during = [t for t in arrivals if seen[0] < t < seen[0] + 0.45]
            assert len(during) <= 3
            assert len([t for t in arrivals if t > seen[0]]) > 3  # the walks went on after


class TestHeaders:
    """X-RateLimit-* answers let the governor pace itself before the limit."""

    async def test_paced_by_headers_without_a_cap(self) -> None:
        """No rate_limit of its own, 8 pages in flight, a server at 100/s (burst 10) that
        sends X-RateLimit-*: at most 5% of the requests are answered 429."""
        async with Sandbox(tokens=1500, rate_limit=100, burst=10, rate_limit_headers=True) as sb:
            async with governed(sb, None) as cc:
                tokens = await cc.tokens.list(limit=10, concurrency=8).collect()
                reason = cc.governor_state.reason
            assert len(tokens) == 1500
            assert reason == "headers"
            assert sb.rate_limited <= 0.05 * len(sb.requests)
