"""``concurrency="auto"`` end to end: it widens on a fast clean server, stays within a
rate-limited one, and changes nothing in what a walk yields. Real time, about a second."""

from __future__ import annotations

from cellcast_async.sandbox import Faults, Sandbox

from .._real_time import real_time_session


class TestAuto:
    """The pager's width follows the server: wider while clean, narrower on 429s."""

    async def test_widens_and_yields_the_same_walk(self) -> None:
        # 50 ms a page: long enough that requests overlap, and that the latency signal
        # stays clean, on a loaded machine too (a 10 ms page once peaked at 3 in flight
        # under coverage on two busy cores).
        async with Sandbox(tokens=300, faults=Faults(latency=0.05)) as sb:
            async with real_time_session(sb) as cc:
                reference = [t.id for t in await cc.tokens.list(limit=10).collect()]
                pager = cc.tokens.list(limit=10, concurrency="auto")
                walked = [t.id for t in await pager.collect()]
            peak = sb.peak_in_flight
        assert walked == reference
        assert peak >= 4  # from 2 in flight it grew while every answer came back clean
        assert pager.stats.complete is True
        assert pager.stats.pages == 30

    async def test_within_a_rate_limit_few_429s(self) -> None:
        """100 pages against 50/s (burst 5) with 20 ms latency: the 429s stay few. The
        requests in flight when the burst runs out are refused (at most the 8 or 9 pages
        slow start has in flight), then the governor paces under the rate it measured
        and only its probes above it are refused (README "Rate limits")."""
        async with (
            Sandbox(tokens=1000, rate_limit=50, burst=5, faults=Faults(latency=0.02)) as sb,
            real_time_session(sb, max_retries=8) as cc,
        ):
            pager = cc.tokens.list(limit=10, concurrency="auto")
            tokens = await pager.collect()
        assert len(tokens) == 1000
        assert pager.stats.rate_limited == sb.rate_limited
        assert sb.rate_limited <= 12

    async def test_resume_with_auto(self) -> None:
        async with Sandbox(tokens=100) as sb, real_time_session(sb) as cc:
            pager = cc.tokens.list(limit=10, concurrency="auto")
            first: list[str] = []
            async for token in pager:
                first.append(token.id)
                if len(first) == 35:
                    break
            rest = [t.id for t in await cc.tokens.resume(pager.checkpoint(), "auto").collect()]
            everything = [t.id for t in await cc.tokens.list(limit=10).collect()]
        assert first + rest == everything
