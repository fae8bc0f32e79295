"""The shared rate store on a real redis-server (``tests/_redis_server.py``).

These use the real clock, in small amounts: Redis keeps time itself. Assertions count
requests per sliding second; none depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from cellcast_async._governor import Governor, GovernorWaitTooLong, burst_for, make_governor
from cellcast_async._rate_store import RedisStore, Reservation, rate_scope

from .._redis_server import RedisServer
from ..unit._virtual_time import max_in_window

WORKER = Path(__file__).with_name("_worker.py")
ROOT = Path(__file__).resolve().parents[2]
API_KEY = "ccak_live_0123456789abcdefSECRET"


def new_scope() -> str:
    """A fresh scope per test, so tests on the shared server never meet."""
    return rate_scope(API_KEY, f"https://api.example/{uuid.uuid4()}")


class TestRedisStore:
    """RedisStore: one GCRA and one pause per scope, on Redis's clock."""

    async def test_reserve_spaces_slots(self, redis_url: str) -> None:
        """At 10/s with no burst: now, then 0.1 s later, then 0.2 s."""
        store = RedisStore.from_url(redis_url, new_scope())
        try:
            waits = [(await store.reserve(0.1, 0.0, None)).wait for _ in range(3)]
        finally:
            await store.aclose()
        assert waits[0] == pytest.approx(0.0, abs=0.01)
        assert waits[1] == pytest.approx(0.1, abs=0.02)
        assert waits[2] == pytest.approx(0.2, abs=0.03)

    async def test_max_wait_takes_nothing(self, redis_url: str) -> None:
        """A slot beyond max_wait is refused and not taken."""
        store = RedisStore.from_url(redis_url, new_scope())
        try:
            assert (await store.reserve(1.0, 0.0, None)).granted
            refused = await store.reserve(1.0, 0.0, 0.5)
            again = await store.reserve(1.0, 0.0, 2.0)
        finally:
            await store.aclose()
        assert not refused.granted
        assert refused.wait == pytest.approx(1.0, abs=0.05)
        assert again.granted
        assert again.wait == pytest.approx(1.0, abs=0.05)

    async def test_pause_is_seen_by_every_store(self, redis_url: str) -> None:
        """A pause written through one store holds for another on the same scope only."""
        scope = new_scope()
        one = RedisStore.from_url(redis_url, scope)
        two = RedisStore.from_url(redis_url, scope)
        other = RedisStore.from_url(redis_url, new_scope())
        try:
            await one.pause(5.0)
            seen = await two.reserve(None, 0.0, None)
            elsewhere = await other.reserve(None, 0.0, None)
        finally:
            for store in (one, two, other):
                await store.aclose()
        assert seen.paused == pytest.approx(5.0, abs=0.1)
        assert not seen.granted
        assert elsewhere.granted

    async def test_keys_hold_no_secret(self, redis_url: str) -> None:
        """The keys are named by the scope hash, never by the API key."""
        scope = new_scope()
        store = RedisStore.from_url(redis_url, scope)
        try:
            await store.reserve(0.1, 0.0, None)
            await store.pause(1.0)
        finally:
            await store.aclose()
        client = Redis.from_url(redis_url)
        try:
            keys = [k.decode() if isinstance(k, bytes) else k for k in await client.keys("*")]
        finally:
            await client.aclose()
        assert f"cellcast_async:rate:{{{scope}}}:tat" in keys
        assert f"cellcast_async:rate:{{{scope}}}:pause" in keys
        assert not [k for k in keys if API_KEY in k]


class TestSharedGovernors:
    """Two governors on one scope share the pause and the budget."""

    async def test_a_429_pauses_the_other_governor(self, redis_url: str) -> None:
        """Governor A's first answer is a 429 (Retry-After 3 s): B waits it out too."""
        scope = new_scope()
        a = make_governor(None, redis_url, scope)
        b = make_governor(None, redis_url, scope)
        try:
            a.observe(status=429, headers=None, retry_after=3.0, elapsed=0.01)  # held in full
            await asyncio.gather(*a._background)  # the shared write has landed
            waited = await b.acquire()
        finally:
            await a.aclose()
            await b.aclose()
        assert waited >= 2.5
        assert b.state.rate_limited == 0  # B learnt of the pause from Redis alone

    def test_two_processes_share_one_budget(self, redis_url: str) -> None:
        """Two processes at rate 40 on one scope: together at most 40 + burst per second."""
        rate, each = 40.0, 40
        scope, barrier = new_scope(), f"barrier:{uuid.uuid4()}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        workers = [
            subprocess.Popen(
                [sys.executable, str(WORKER), redis_url, scope, str(rate), str(each), barrier],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            for _ in range(2)
        ]
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err.decode()
            results.append(json.loads(out))
        assert [r["store"] for r in results] == [redis_url] * 2  # neither fell back
        granted = sorted(results[0]["granted"] + results[1]["granted"])
        assert len(granted) == 2 * each
        # Alone, each process would send 40 + 10 in its first second: 100 together.
        # Shared, one budget: 50 (plus 1 for the jitter of waking from a sleep).
        assert max_in_window(granted) <= rate + burst_for(rate) + 1


class TestFallback:
    """Redis going away mid-walk: one WARNING, the walk finishes on the local budget."""

    async def test_killed_mid_walk(
        self,
        redis_factory: Callable[..., RedisServer],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """200 grants at 200/s; the server is killed after 50; no error, one warning."""
        server = redis_factory(password="hunter2-redis-pass")
        governor = make_governor(200, server.url, new_scope())
        granted = 0

        async def walker(n: int) -> None:
            nonlocal granted
            for _ in range(n):
                await governor.acquire()
                granted += 1
                if granted == 50:
                    server.kill()

        with caplog.at_level(logging.DEBUG):
            try:
                await asyncio.gather(*(walker(25) for _ in range(8)))
            finally:
                await governor.aclose()
        assert granted == 200
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [(r.name, r.getMessage()) for r in warnings] == [
            (
                "cellcast_async",
                f"rate store redis://127.0.0.1:{server.port}/0 is unreachable; "
                "rate limiting continues in this process only",
            )
        ]
        text = "\n".join(r.getMessage() + str(r.args) + str(r.exc_info) for r in caplog.records)
        assert "hunter2-redis-pass" not in text
        assert governor.state.store == "memory (rate store unreachable)"

    async def test_unreachable_from_the_start(
        self, closed_port: int, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Nothing listening at all: the first acquire falls back and succeeds."""
        governor: Governor = make_governor(None, f"redis://127.0.0.1:{closed_port}/0", "s")
        with caplog.at_level(logging.WARNING):
            try:
                await governor.acquire()
                await governor.acquire()
                state = governor.state
            finally:
                await governor.aclose()
        assert state.acquired == 2
        assert state.store == "memory (rate store unreachable)"
        assert len(caplog.records) == 1


class TestTamperedKeys:
    """README "Rate limits": whoever can write the Redis cannot freeze the account. A pause
    or schedule set far ahead is capped like a local pause (60 s) and logged; an
    unreadable one is cleared and logged."""

    @staticmethod
    async def plant(redis_url: str, scope: str, which: str, value: str | float) -> None:
        client = Redis.from_url(redis_url)
        try:
            if isinstance(value, float):
                seconds, micros = await client.time()
                value = f"{seconds + micros / 1e6 + value:.6f}"
            await client.set(f"cellcast_async:rate:{{{scope}}}:{which}", value)
        finally:
            await client.aclose()

    async def reserved(
        self,
        redis_url: str,
        caplog: pytest.LogCaptureFixture,
        planted: tuple[str, str | float],
        *intervals: float | None,
    ) -> list[Reservation]:
        """``planted`` (a key and its value) under a fresh scope, then one reservation per
        interval on a store of that scope, its warnings captured."""
        scope = new_scope()
        await self.plant(redis_url, scope, *planted)
        store = RedisStore.from_url(redis_url, scope)
        with caplog.at_level(logging.WARNING, logger="cellcast_async"):
            try:
                return [await store.reserve(interval, 0.0, None) for interval in intervals]
            finally:
                await store.aclose()

    @staticmethod
    def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    async def test_pause_a_year_ahead(
        self, redis_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A pause 1e9 s ahead reads as 60 s, once logged, and is rewritten to that."""
        first, second = await self.reserved(redis_url, caplog, ("pause", 1e9), None, None)
        assert 59.0 <= first.paused <= 60.0
        assert second.paused <= first.paused
        host = redis_url.removesuffix("/0") + "/0"
        assert self.warnings(caplog) == [
            f"rate store {host} held a pause 1e+09 s ahead; capped to 60 s like a local pause"
        ]

    async def test_schedule_a_year_ahead(
        self, redis_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A schedule 1e9 s ahead gives a wait of at most 60 s and one interval."""
        (taken,) = await self.reserved(redis_url, caplog, ("tat", 1e9), 0.1)
        assert taken.granted
        assert 59.0 <= taken.wait <= 60.1 + 0.01
        assert len(self.warnings(caplog)) == 1
        assert (
            "held a schedule 1e+09 s ahead; capped to 60 s like a local pause"
            in (self.warnings(caplog)[0])
        )

    @pytest.mark.parametrize("value", ["abc", "nan", ""])
    async def test_unreadable_pause_is_cleared(
        self, redis_url: str, value: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Text that is not a time: cleared, logged, and the slot is granted now."""
        (taken,) = await self.reserved(redis_url, caplog, ("pause", value), 0.1)
        assert taken.granted
        assert taken.wait == 0.0
        assert len(self.warnings(caplog)) == 1
        assert "held an unreadable pause time; it was cleared" in self.warnings(caplog)[0]

    async def test_a_deadline_call_is_refused_not_frozen(self, redis_url: str) -> None:
        """A governor on the tampered scope refuses a 2 s wait at once, naming <= 60 s."""
        scope = new_scope()
        await self.plant(redis_url, scope, "pause", 1e9)
        governor = make_governor(None, redis_url, scope)
        try:
            with pytest.raises(GovernorWaitTooLong) as info:
                await asyncio.wait_for(governor.acquire(max_wait=2.0), 10)
        finally:
            await governor.aclose()
        assert info.value.needed <= 61.0  # the capped pause, plus the time to learn it
