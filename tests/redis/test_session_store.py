"""``CellcastSession(rate_store="redis://...")`` end to end: real processes, a real
redis-server, the sandbox counting what arrives. Real time, a few seconds in all."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable

import pytest

from cellcast_async import ResponseEvent
from cellcast_async._governor import burst_for
from cellcast_async.sandbox import Sandbox

from .._real_time import real_time_session
from .._redis_server import RedisServer
from ..unit._virtual_time import max_in_window

# One process's walk: a session on the shared store, the whole listing, its count printed.
WALKER = """
import asyncio, sys
from cellcast_async import CellcastSession

async def main(url, key, store, rate):
    async with CellcastSession(api_key=key, base_url=url, rate_limit=rate, rate_store=store,
                               max_retries=8) as cc:
        print(len(await cc.tokens.list(limit=5, concurrency=4).collect()))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
"""


class TestTwoProcessesOneBudget:
    """Two processes on one account and one store: together within the shared rate."""

    async def test_processes_share_the_rate(self, redis_url: str) -> None:
        rate = 40.0
        async with Sandbox(tokens=150) as sb:
            sb.reset_requests()
            walkers = [
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    WALKER,
                    sb.url,
                    sb.api_key,
                    redis_url,
                    str(rate),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                for _ in range(2)
            ]
            outputs = [await asyncio.wait_for(w.communicate(), 60) for w in walkers]
            arrivals = [r.received_at for r in sb.requests]
        for walker, (out, err) in zip(walkers, outputs, strict=True):
            assert walker.returncode == 0, err.decode()
            assert out.decode().strip() == "150"
        assert len(arrivals) == 2 * (30 + 1)  # each walk ends by reading page 1 again
        # Alone each would reach 40 + 10 in its first second; sharing, one budget.
        assert max_in_window(arrivals) <= rate + burst_for(rate) + 1

    async def test_a_429_in_one_session_pauses_the_other(self, redis_url: str) -> None:
        seen: list[float] = []

        def record(event: ResponseEvent) -> None:
            if event.status == 429:
                seen.append(time.monotonic())

        async with Sandbox(tokens=200) as sb:
            first = real_time_session(
                sb, rate_store=redis_url, event_hooks={"response": [record]}, max_retries=5
            )
            second = real_time_session(sb, rate_store=redis_url, max_retries=5)
            async with first, second:
                await first.tokens.list(limit=1)
                sb.reset_requests()
                # Three 429s in a row (Retry-After 2 s): the server refuses everything, so
                # the first session holds for the 2 s, and so does every session on the
                # store: the second, asked during the hold, waits too, though it never got
                # a 429 itself (README "Rate limits").
                sb.script({n: ("429", 2.0) for n in (1, 2, 3)})
                walk = asyncio.ensure_future(first.tokens.list(limit=1))
                while len(seen) < 3:  # noqa: ASYNC110 - the hook runs in this loop
                    await asyncio.sleep(0.005)
                await asyncio.sleep(0.05)  # the pause's write to Redis
                started = time.monotonic()
                await second.tokens.list(limit=1)
                waited = time.monotonic() - started
                await walk
                state = second.governor_state
        assert len(seen) == 3
        assert waited >= 1.5  # what was left of the 2 s hold
        assert state.rate_limited == 0  # the second learnt of it from Redis alone


class TestRedisGoesAway:
    """Redis dying mid-walk: one WARNING, and the walk finishes on the local governor."""

    async def test_killed_mid_walk(
        self, redis_factory: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture
    ) -> None:
        server = redis_factory(password="s3cret-redis-pass")
        pages = 0

        def kill_after_five(event: ResponseEvent) -> None:
            nonlocal pages
            pages += 1
            if pages == 5:
                server.kill()

        caplog.set_level(logging.DEBUG)
        async with (
            Sandbox(tokens=200) as sb,
            real_time_session(
                sb, rate_store=server.url, event_hooks={"response": [kill_after_five]}
            ) as cc,
        ):
            tokens = await cc.tokens.list(limit=10, concurrency=4).collect()
            store = cc.governor_state.store
        assert len(tokens) == 200
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [r.getMessage() for r in warnings] == [
            f"rate store redis://127.0.0.1:{server.port}/0 is unreachable; "
            "rate limiting continues in this process only"
        ]
        assert store == "memory (rate store unreachable)"
        assert "s3cret-redis-pass" not in caplog.text
