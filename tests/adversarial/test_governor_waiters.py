"""Waiters the governor must never lose (README "Rate limits"): a deadline bounds every
wait, also behind other waiters, and a waiter cancelled at any moment, even at the head
of the queue, leaves the governor working and ``governor_state`` truthful."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from cellcast_async._governor import Governor, GovernorWaitTooLong
from cellcast_async._rate_store import InProcessStore, RateStore, Reservation

from ..unit._virtual_time import VirtualTime, governor

SLOW = {"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "60"}  # one per 60 s
FAST = {"X-RateLimit-Remaining": "100", "X-RateLimit-Reset": "1"}


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime(start=100.0)


async def spend_burst(gov: Governor) -> None:
    """Take the burst's free slots (no wait): the next one is an interval away."""
    burst = gov.state.burst
    assert burst is not None
    for _ in range(int(burst)):
        assert await gov.acquire(max_wait=0.0) == 0.0


class TestDeadlineBehindOthers:
    """max_wait bounds the whole wait, queued behind anyone."""

    async def test_estimate_proves_wrong(self, vt: VirtualTime) -> None:
        """Queued behind three at 1/s because the estimate said it would fit (here: an
        estimate forced to 0): the max_wait=1.5 call fails at its deadline, not after the
        three slots ahead of it."""
        gov = governor(vt, 1)
        await spend_burst(gov)
        others = [asyncio.ensure_future(gov.acquire()) for _ in range(3)]
        await asyncio.sleep(0)
        gov._estimate = lambda now, ahead=None: 0.0  # type: ignore[method-assign]
        bounded = asyncio.ensure_future(gov.acquire(max_wait=1.5))
        await asyncio.sleep(0)
        assert gov.state.waiting == 4
        failed_at: list[float] = []

        async def watch() -> None:
            with pytest.raises(GovernorWaitTooLong):
                await bounded
            failed_at.append(vt.now)

        await vt.run([watch(), *others], limit=110.0)
        assert failed_at
        assert failed_at[0] <= 101.5 + 1e-6
        assert gov.state.waiting == 0
        await gov.aclose()

    async def test_every_waiter_bounded(self, vt: VirtualTime) -> None:
        """Twenty calls with max_wait=2 behind a pace that turned slow: none waits past 2 s."""
        gov = governor(vt, 20)
        await spend_burst(gov)
        ends: list[float] = []

        async def one() -> None:
            start = vt.now
            with contextlib.suppress(GovernorWaitTooLong):
                await gov.acquire(max_wait=2.0)
            ends.append(vt.now - start)

        tasks = [asyncio.ensure_future(one()) for _ in range(20)]
        await asyncio.sleep(0)
        gov.observe(status=200, headers=SLOW, retry_after=None, elapsed=0.01)
        await vt.run(tasks, limit=200.0)
        assert len(ends) == 20
        assert max(ends) <= 2.0 + 1e-6
        await gov.aclose()


class TestCancellation:
    """Cancel a waiter at any moment: the others still get through, the state tells true."""

    @pytest.mark.parametrize("at", [0.0, 0.001, 0.05, 0.099, 0.1])
    async def test_head_cancelled_during_its_wait(self, vt: VirtualTime, at: float) -> None:
        """At 10/s with the burst spent, the head is cancelled `at` s into its 0.1 s wait."""
        gov = governor(vt, 10)
        await spend_burst(gov)
        head = asyncio.ensure_future(gov.acquire())
        second = asyncio.ensure_future(gov.acquire())
        await asyncio.sleep(0)
        await vt.advance(at)
        head.cancel()
        await asyncio.sleep(0)
        assert gov.state.waiting == (0 if second.done() else 1)
        fresh = [gov.acquire() for _ in range(5)]
        await vt.run([second, *fresh], limit=102.0)
        assert gov.state.waiting == 0
        assert head.cancelled() or head.done()
        await gov.aclose()

    async def test_head_cancelled_during_a_pause(self, vt: VirtualTime) -> None:
        """Cancelled while a 429's pause runs: the others go when it ends."""
        gov = governor(vt, None)
        gov._hold(2.0, vt.now)  # a pause, however it came
        waiters = [asyncio.ensure_future(gov.acquire()) for _ in range(3)]
        await vt.advance(1.0)
        waiters[0].cancel()
        await asyncio.sleep(0)
        assert gov.state.waiting == 2
        await vt.run([*waiters[1:], gov.acquire()], limit=110.0)
        assert gov.state.waiting == 0
        await gov.aclose()

    async def test_head_cancelled_on_a_slow_header_slot(self, vt: VirtualTime) -> None:
        """The head waits out one-per-60-s; cancelled, and the server speeds up: five fresh
        calls go at the new pace, not after the dead head's slot."""
        gov = governor(vt, None)
        gov.observe(status=200, headers=SLOW, retry_after=None, elapsed=0.01)
        await gov.acquire()
        head = asyncio.ensure_future(gov.acquire())
        await vt.advance(1.0)
        head.cancel()
        await asyncio.sleep(0)
        assert gov.state.waiting == 0
        gov.observe(status=200, headers=FAST, retry_after=None, elapsed=0.01)
        waits = await vt.run([gov.acquire() for _ in range(5)], limit=102.0)
        assert max(waits) <= 0.06
        assert gov.state.waiting == 0
        await gov.aclose()

    async def test_everyone_cancelled_then_new_calls(self, vt: VirtualTime) -> None:
        """All waiters cancelled: the queue empties and the next calls still get through."""
        gov = governor(vt, 5)
        await spend_burst(gov)
        waiters = [asyncio.ensure_future(gov.acquire()) for _ in range(10)]
        await vt.advance(0.3)
        for w in waiters:
            w.cancel()
        await asyncio.sleep(0)
        assert gov.state.waiting == 0
        waits = await vt.run([gov.acquire() for _ in range(3)], limit=110.0)
        assert len(waits) == 3
        assert max(waits) <= 0.6 + 1e-6
        await gov.aclose()

    async def test_head_cancelled_while_the_shared_store_answers(self, vt: VirtualTime) -> None:
        """The pump waits on a slow shared store for the head, which is cancelled: the slot
        goes to the next waiter and fresh calls go on."""
        store = _SlowStore(vt)
        gov = governor(vt, 10, store=store)
        head = asyncio.ensure_future(gov.acquire())
        second = asyncio.ensure_future(gov.acquire())
        await asyncio.sleep(0)
        await vt.advance(0.01)
        assert store.pending == 1
        head.cancel()
        await vt.advance(0.5)
        await vt.run([second, *(gov.acquire() for _ in range(5))], limit=110.0)
        assert gov.state.waiting == 0
        assert gov.state.acquired == 6
        await gov.aclose()


class _SlowStore(RateStore):
    """A shared store whose every answer takes 0.1 s of virtual time."""

    shared = True

    def __init__(self, vt: VirtualTime) -> None:
        self.vt = vt
        self.inner = InProcessStore(vt.clock)
        self.pending = 0

    async def reserve(
        self, interval: float | None, tolerance: float, max_wait: float | None
    ) -> Reservation:
        self.pending += 1
        try:
            await self.vt.sleep(0.1)
        finally:
            self.pending -= 1
        return self.inner.reserve_now(interval, tolerance, max_wait)

    async def pause(self, seconds: float) -> None:
        self.inner.pause_now(seconds)

    def describe(self) -> str:
        return "slow"
