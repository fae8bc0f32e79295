"""Hostile rate-limit headers never freeze or crash the governor (README "Rate limits"):
a budget under one request cuts the pace (with a floor) and is never a wait for its
reset, and no slot booked at a slow pace outlives it."""

from __future__ import annotations

import math

import pytest

from cellcast_async import CellcastSession
from cellcast_async._governor import MAX_PAUSE, Governor

from ..conftest import FakeSleep
from ..unit._virtual_time import VirtualTime, governor
from ._hostile_http import API_KEY, TOKEN_ID, HostileHeaders

# (headers, seconds until the reset the governor may wait at most)
HOSTILE = [
    ({"X-RateLimit-Remaining": "0.001", "X-RateLimit-Reset": "1"}, 1.0),
    ({"X-RateLimit-Remaining": "0.000001", "X-RateLimit-Reset": "60"}, 60.0),
    ({"X-RateLimit-Remaining": "1e-320", "X-RateLimit-Reset": "1"}, 1.0),
    ({"RateLimit": '"p";r=0.0000001;t=1'}, 1.0),
    ({"X-RateLimit-Remaining": "5e-324", "X-RateLimit-Reset": "60"}, 60.0),
    ({"X-RateLimit-Remaining": "0.5", "X-RateLimit-Reset": "99999"}, MAX_PAUSE),
]
IDS = ["0.001/1", "0.000001/60", "1e-320/1", "structured r=1e-7", "denormal/60", "0.5/99999"]


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime(start=100.0)


def header_said(gov: Governor, headers: dict[str, str]) -> None:
    gov.observe(status=200, headers=headers, retry_after=None, elapsed=0.01)


class TestWaitsAreCapped:
    """Every wait a header leads to ends by its reset, and never after 60 s."""

    @pytest.mark.parametrize(("headers", "reset"), HOSTILE, ids=IDS)
    @pytest.mark.parametrize("rate_limit", [None, 10.0])
    async def test_next_requests_within_the_reset(
        self, vt: VirtualTime, headers: dict[str, str], reset: float, rate_limit: float | None
    ) -> None:
        """Three requests after the header are all let through by its (capped) reset."""
        gov = governor(vt, rate_limit)
        await gov.acquire()
        header_said(gov, headers)
        state = gov.state
        assert state.rate is None or math.isfinite(state.rate)
        granted: list[float] = []

        async def one() -> None:
            await gov.acquire()
            granted.append(vt.now)

        await vt.run([one() for _ in range(3)], limit=100.0 + reset + 1.0)
        assert len(granted) == 3
        assert max(granted) <= 100.0 + reset + 1.0
        assert all(0.0 <= s <= MAX_PAUSE for s in vt.sleeps)
        await gov.aclose()

    @pytest.mark.parametrize(("headers", "reset"), HOSTILE, ids=IDS)
    async def test_no_wait_is_read_from_a_header(
        self, vt: VirtualTime, headers: dict[str, str], reset: float
    ) -> None:
        """A spent budget cuts the pace; its reset is never waited out, so a call that
        may wait 0.1 s goes at once."""
        del reset
        gov = governor(vt, None)
        header_said(gov, headers)
        assert await gov.acquire(max_wait=0.1) == 0.0
        assert gov.state.paused_until is None
        await gov.aclose()

    async def test_header_pace_has_a_floor(self, vt: VirtualTime) -> None:
        """A spent budget on a young session paces at 19/s at the least, never slower."""
        gov = governor(vt, None)
        header_said(gov, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "86400"})
        assert gov.state.rate is not None
        assert gov.state.rate >= 0.95 * 20.0 - 1e-9
        await gov.aclose()


class TestNoPoisonAfterTheHeader:
    """A slow pace from headers ends with the header: no slot booked under it outlives it."""

    @pytest.mark.parametrize("rate_limit", [None, 10.0])
    async def test_tiny_budget_then_nothing(
        self, vt: VirtualTime, rate_limit: float | None
    ) -> None:
        """0.001 left for 1 s, at t=100; at t=102 five calls go at once (burst) or at R."""
        gov = governor(vt, rate_limit)
        await gov.acquire()
        header_said(gov, {"X-RateLimit-Remaining": "0.001", "X-RateLimit-Reset": "1"})
        await vt.run([gov.acquire()], limit=101.0)  # one request while the header holds
        await vt.advance(102.0 - vt.now)
        waits = await vt.run([gov.acquire() for _ in range(5)], limit=103.0)
        assert max(waits) <= 0.5
        waits = await vt.run([gov.acquire(max_wait=5.0) for _ in range(5)], limit=108.0)
        assert max(waits) <= 1.0
        await gov.aclose()

    @pytest.mark.parametrize("rate_limit", [None, 100.0])
    async def test_slow_slot_does_not_outlive_a_faster_header(
        self, vt: VirtualTime, rate_limit: float | None
    ) -> None:
        """1 left in 10 s, then 50 left in 1 s: the next request goes at the new pace."""
        gov = governor(vt, rate_limit)
        header_said(gov, {"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "10"})
        assert await gov.acquire() == 0.0
        await vt.advance(0.5)
        header_said(gov, {"X-RateLimit-Remaining": "50", "X-RateLimit-Reset": "1"})
        waits = await vt.run([gov.acquire()], limit=101.0)
        assert waits[0] <= 0.02 + 1e-9
        await gov.aclose()


class TestSession:
    """The same headers from a real server on 127.0.0.1, through a whole session."""

    @pytest.mark.parametrize(("headers", "reset"), HOSTILE, ids=IDS)
    async def test_no_crash_and_capped_wait(
        self, headers: dict[str, str], reset: float, fake_sleep: FakeSleep
    ) -> None:
        """The next calls wait at most the capped reset; never a ZeroDivisionError."""
        async with (
            HostileHeaders([headers, headers, {}]) as server,
            CellcastSession(api_key=API_KEY, base_url=server.url) as cc,
        ):
            await cc.tokens.get(TOKEN_ID)
            for _ in range(3):
                token = await cc.tokens.get(TOKEN_ID)
                assert token.id == f"{1:024x}"
        assert server.seen == 4
        assert all(d <= reset + 1e-6 for d in fake_sleep.delays)

    async def test_deadline_call_is_not_refused(self) -> None:
        """deadline=2 after a denormal budget with a 60 s reset: the call goes through."""
        hostile = {"X-RateLimit-Remaining": "5e-324", "X-RateLimit-Reset": "60"}
        async with (
            HostileHeaders([hostile, {}]) as server,
            CellcastSession(api_key=API_KEY, base_url=server.url) as cc,
        ):
            await cc.tokens.get(TOKEN_ID)
            token = await cc.with_options(deadline=2).tokens.get(TOKEN_ID)
        assert token.id == f"{1:024x}"
        assert server.seen == 2
