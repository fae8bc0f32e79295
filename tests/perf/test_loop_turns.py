"""A big page never holds the event loop for its whole length (issue 9): structuring
and an ``async for`` over it both give the loop a turn every few hundred items.
Counted in turns of a ticker task, not timed."""

from __future__ import annotations

import asyncio
from typing import Any

from cellcast_async import Page, Pager
from cellcast_async._tokens import STRUCTURE_SLICE, structure_items


class Ticker:
    """Counts the turns of the loop it got while something else ran."""

    def __init__(self) -> None:
        self.turns = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0)
            self.turns += 1

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.ensure_future(self._run())
        await asyncio.sleep(0)
        self.turns = 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class TestStructuring:
    """Items are structured in slices with a turn of the loop between them."""

    async def test_a_large_page_yields_between_slices(self) -> None:
        items = list(range(4 * STRUCTURE_SLICE))
        async with Ticker() as ticker:
            done = await structure_items(items, lambda n: n * 2)
        assert done == [n * 2 for n in items]
        assert ticker.turns >= 3  # one per slice after the first

    async def test_a_small_page_does_not_yield(self) -> None:
        async with Ticker() as ticker:
            done = await structure_items(list(range(STRUCTURE_SLICE)), str)
        assert len(done) == STRUCTURE_SLICE
        assert ticker.turns == 0


class TestConsuming:
    """``async for`` over a 2,000-item page lets the loop run every 500 items."""

    async def test_items_of_a_big_page(self) -> None:
        items = tuple({"id": f"t{n}"} for n in range(2000))

        async def fetch(number: int) -> Page[Any]:
            return Page(items, 2000, 1, 2000, 1, False, False)

        seen = 0
        async with Ticker() as ticker:
            async for _ in Pager(fetch, limit=2000):
                seen += 1
        assert seen == 2000
        assert ticker.turns >= 3
