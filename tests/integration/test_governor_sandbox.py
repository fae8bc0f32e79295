"""The rate governor in front of the SDK, against a rate-limited sandbox.

Until the request pipeline wires the governor into ``CellcastSession``, aiohttp's trace
hooks call it (``session=``): ``acquire()`` before every attempt is sent, ``observe()``
after every answer, as the pipeline will. Counts come from the sandbox's own record of
when each request arrived. Real time, briefly: about a second per test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from cellcast_async import CellcastSession
from cellcast_async._governor import Governor, burst_for
from cellcast_async.sandbox import Sandbox

from ..unit._virtual_time import max_in_window


@asynccontextmanager
async def governed(
    sb: Sandbox, governor: Governor, seen_429: list[float] | None = None
) -> AsyncIterator[CellcastSession]:
    async def on_start(*_: object) -> None:
        await governor.acquire()

    async def on_end(_s: object, _c: object, params: aiohttp.TraceRequestEndParams) -> None:
        response = params.response
        if response.status == 429 and seen_429 is not None:
            seen_429.append(time.monotonic())  # the sandbox's clock too: one process
        retry_after = response.headers.get("Retry-After")
        governor.observe(
            status=response.status,
            headers=response.headers,
            retry_after=float(retry_after) if retry_after else None,
            elapsed=0.0,
        )

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as http,
        CellcastSession(api_key=sb.api_key, base_url=sb.url, session=http, max_retries=5) as cc,
    ):
        yield cc
    await governor.aclose()


class TestOneBudget:
    """Every task and every pager of a session draws from one budget."""

    async def test_pagers_and_gets_share_the_rate(self) -> None:
        """Three pagers (4 pages in flight each) and 20 gets at 100/s: the server sees at
        most 100 + burst in any sliding second, and never an empty bucket."""
        rate = 100.0
        async with Sandbox(tokens=300, rate_limit=rate, burst=40) as sb:
            async with governed(sb, Governor(rate_limit=rate)) as cc:
                first = await cc.tokens.list(limit=1)
                token_id = first.items[0].id

                async def walk() -> int:
                    return len(await cc.tokens.list(limit=10, concurrency=4).collect())

                results = await asyncio.gather(
                    *(walk() for _ in range(3)), *(cc.tokens.get(token_id) for _ in range(20))
                )
            arrivals = [r.received_at for r in sb.requests]
            assert results[:3] == [300, 300, 300]
            assert len(arrivals) == 1 + 3 * 30 + 20
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
            async with governed(sb, Governor(rate_limit=None), seen) as cc:

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
            governor = Governor(rate_limit=None)
            async with governed(sb, governor) as cc:
                tokens = await cc.tokens.list(limit=10, concurrency=8).collect()
                reason = governor.state.reason
            assert len(tokens) == 1500
            assert reason == "headers"
            assert sb.rate_limited <= 0.05 * len(sb.requests)
