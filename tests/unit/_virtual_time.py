"""A virtual clock for the governor tests: sleeps cost no wall time and time moves only
when every task is asleep, so thousands of tasks can be timed exactly and quickly."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from cellcast_async._governor import Governor

T = TypeVar("T")


def governor(vt: VirtualTime, rate_limit: float | None = None, **kwargs: Any) -> Governor:
    """A :class:`Governor` on ``vt``'s clock, its jitter seeded: what the governor tests drive."""
    return Governor(
        rate_limit=rate_limit, clock=vt.clock, sleep=vt.sleep, rng=random.Random(0), **kwargs
    )


class VirtualTime:
    """``clock()`` and ``sleep()`` for injection; :meth:`run` drives tasks to completion."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, delay), next(self._seq), future))
        await future

    def _pending_timers(self) -> int:
        return sum(1 for _, _, f in self._timers if not f.done())

    async def _settle(self) -> None:
        """Let every runnable task run until all are blocked (a few loop turns)."""
        for _ in range(5):
            await asyncio.sleep(0)

    async def run(self, awaitables: Iterable[Awaitable[T]], *, limit: float = 1e6) -> list[T]:
        """Run the awaitables concurrently, advancing virtual time whenever all are asleep."""
        tasks = [asyncio.ensure_future(a) for a in awaitables]
        try:
            while not all(t.done() for t in tasks):
                await self._settle()
                if all(t.done() for t in tasks):
                    break
                if not self._advance(limit):
                    # Nothing asleep on our clock: something else is running; let it.
                    await asyncio.sleep(0)
            return [t.result() for t in tasks]
        finally:
            for task in tasks:
                task.cancel()

    async def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``, waking every sleeper due on the way."""
        target = self.now + seconds
        await self._settle()
        while self._timers and self._timers[0][0] <= target:
            self._advance(target)
            await self._settle()
        self.now = target

    def _advance(self, limit: float) -> bool:
        while self._timers and self._timers[0][2].done():
            heapq.heappop(self._timers)
        if not self._timers:
            return False
        when = self._timers[0][0]
        if when > limit:
            raise AssertionError(f"virtual time passed {limit}")
        self.now = max(self.now, when)
        while self._timers and self._timers[0][0] <= self.now:
            _, _, future = heapq.heappop(self._timers)
            if not future.done():
                future.set_result(None)
        return True


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The most events in any half-open window ``[t, t + window)`` (sliding, not aligned)."""
    ordered = sorted(times)
    best = 0
    j = 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j < len(ordered) and ordered[j] < start + window - 1e-9:
            j += 1
        best = max(best, j - i)
    return best
