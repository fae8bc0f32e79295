"""Prefetch bounds, measured where they matter (issue 5, README "Paging").

The server side counts the requests it is answering at once, against a real sandbox
that sleeps a little on every request, so prefetched pages really overlap. Nothing
here asserts a duration: only counts of requests, pages and tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from cellcast_async import ApiToken, CellcastSession, Page, ServerError, _pager
from cellcast_async import _tokens as tokens_module
from cellcast_async._pager import Pager
from cellcast_async.sandbox import Faults, Sandbox

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class InFlight:
    """How many requests the sandbox is answering at once, and the most it ever did."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.reached: dict[int, asyncio.Event] = {}

    def wrap(self, handler: Handler) -> Handler:
        async def counting(request: web.Request) -> web.StreamResponse:
            self.now += 1
            self.most = max(self.most, self.now)
            self.reached.setdefault(self.now, asyncio.Event()).set()
            try:
                return await handler(request)
            finally:
                self.now -= 1

        return counting


def track_pages(monkeypatch: pytest.MonkeyPatch) -> weakref.WeakSet[Page[Any]]:
    """Every page the token pager builds from here on, for as long as it is alive."""
    live: weakref.WeakSet[Page[Any]] = weakref.WeakSet()
    build_page = _pager.build_page

    def tracked(*args: Any) -> Page[Any]:
        page = build_page(*args)
        live.add(page)
        return page

    monkeypatch.setattr(tokens_module, "build_page", tracked)
    return live


@contextlib.asynccontextmanager
async def walking(
    tokens: int, latency: float = 0.01, max_retries: int = 2
) -> AsyncIterator[tuple[CellcastSession, Sandbox, InFlight]]:
    """A sandbox that sleeps ``latency`` on every request, and a session on it."""
    sb = Sandbox(seed=3, tokens=tokens, faults=Faults(latency=latency))
    counter = InFlight()
    # Counted inside the server: start() binds the route to whatever _handle is then.
    sb._handle = counter.wrap(sb._handle)  # type: ignore[method-assign,assignment]
    async with (
        sb,
        CellcastSession(api_key=sb.api_key, base_url=sb.url, max_retries=max_retries) as cc,
    ):
        yield cc, sb, counter


async def drain_into(into: list[ApiToken], walk: AsyncIterable[ApiToken]) -> None:
    """Append every item of ``walk`` to ``into``, keeping what came before a failure."""
    async for item in walk:
        into.append(item)


def pages_requested(sb: Sandbox) -> list[int]:
    return [int(r.query["page"]) for r in sb.requests if r.method == "GET"]


async def client_tasks() -> set[asyncio.Task[Any]]:
    """The SDK's tasks still alive (the in-process sandbox's own are not counted)."""
    for _ in range(5):
        await asyncio.sleep(0)
    return {
        task
        for task in asyncio.all_tasks() - {asyncio.current_task()}
        if "/cellcast_async/" in (where := task.get_coro().cr_code.co_filename)  # type: ignore[union-attr]
        and "/sandbox/" not in where
    }


class TestInFlight:
    """With ``concurrency=N``, the server never sees more than N listing requests at once."""

    @pytest.mark.parametrize("concurrency", [1, 2, 4, 8])
    async def test_at_most_n_at_the_server(self, concurrency: int) -> None:
        async with walking(tokens=100, latency=0.05) as (cc, sb, counter):
            walked = await cc.tokens.list(limit=10, concurrency=concurrency).collect()
            sb.faults = Faults()  # the reference walk needs no latency
            sequential = await cc.tokens.list(limit=10).collect()

        assert [t.id for t in walked] == [t.id for t in sequential]
        assert len(walked) == 100
        # Up to N at once, and (10 pages, 50 ms each) the prefetch really reaches N.
        assert counter.most == concurrency

    async def test_each_page_once_and_none_past_total_pages(self) -> None:
        async with walking(tokens=45, latency=0.05) as (cc, sb, counter):
            walked = await cc.tokens.list(limit=10, concurrency=16).collect()

        assert len(walked) == 45
        # Page 1 once more at the end: the read that proves the list stayed quiet
        # (README "Reliability"), sent only after every other page came back.
        assert sorted(pages_requested(sb)) == [1, 1, 2, 3, 4, 5]
        assert counter.most == 4  # pages 2-5 together, never 16

    @pytest.mark.parametrize(
        ("max_items", "start", "pages"),
        [
            (25, 1, [1, 2, 3]),
            (30, 1, [1, 2, 3]),
            (31, 1, [1, 2, 3, 4]),
            (5, 1, [1]),
            (25, 4, [4, 5, 6]),
            (1000, 1, [1, *range(1, 21)]),  # the whole list: page 1 again proves it quiet
        ],
    )
    async def test_max_items_asks_for_no_page_it_does_not_need(
        self, max_items: int, start: int, pages: list[int]
    ) -> None:
        async with walking(tokens=200) as (cc, sb, _):
            pager = cc.tokens.list(limit=10, page=start, concurrency=8, max_items=max_items)
            walked = await pager.collect()

        assert len(walked) == min(max_items, 200 - (start - 1) * 10)
        assert sorted(pages_requested(sb)) == pages


class TestNothingLeftRunning:
    """Breaking off, failing or being cancelled leaves no prefetch task behind."""

    async def test_break(self) -> None:
        async with walking(tokens=500, latency=0.05) as (cc, _, counter):
            pager = cc.tokens.list(limit=10, concurrency=8)
            async with contextlib.aclosing(pager.__aiter__()) as walk:
                async for _token in walk:
                    break
            assert await client_tasks() == set()
            assert counter.most == 1  # the prefetched pages were cancelled before being sent
            assert pager.next_page == 1  # page 1 was not wholly yielded

    async def test_error_on_a_prefetched_page(self) -> None:
        async with walking(tokens=100, max_retries=0) as (cc, sb, _):
            sb.script({4: "500"})  # the 4th request: a prefetched page
            pager = cc.tokens.list(limit=10, concurrency=4)
            seen: list[ApiToken] = []
            with pytest.raises(ServerError):
                await drain_into(seen, pager)
            assert await client_tasks() == set()
            rest = await cc.tokens.list(limit=10, page=pager.next_page).collect()

        every = [t.id for t in seen + rest]
        assert len(every) == len(set(every)) == 100

    async def test_cancelled_walk(self) -> None:
        async with walking(tokens=500, latency=0.05) as (cc, _, counter):
            task = asyncio.ensure_future(cc.tokens.list(limit=10, concurrency=8).collect())
            reached = counter.reached.setdefault(8, asyncio.Event())
            await reached.wait()  # page 1 answered, 8 prefetched pages at the server
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await client_tasks() == set()


class TestSequentialFallback:
    """A format that gives no page count is walked one page at a time."""

    async def test_no_total_pages_no_prefetch(self) -> None:
        now = most = 0
        asked: list[int] = []

        async def fetch(number: int) -> Page[dict[str, Any]]:
            nonlocal now, most
            asked.append(number)
            now += 1
            most = max(most, now)
            await asyncio.sleep(0.002)
            now -= 1
            items = tuple({"id": f"{number}-{i}"} for i in range(3))
            return Page(items, None, number, 3, None, number < 6, number > 1)

        walked = await Pager(fetch, limit=3, concurrency=8).collect()

        assert len(walked) == 18
        assert asked == [1, 2, 3, 4, 5, 6]
        assert most == 1


class TestMemoryBound:
    """A long walk keeps at most concurrency + 1 pages alive at any moment."""

    @pytest.mark.parametrize("concurrency", [1, 8])
    async def test_live_pages_bounded(
        self, monkeypatch: pytest.MonkeyPatch, concurrency: int
    ) -> None:
        live = track_pages(monkeypatch)
        most = 0
        async with walking(tokens=20_000, latency=0.0) as (cc, _, _):
            count = 0
            async for _token in cc.tokens.list(limit=100, concurrency=concurrency):
                count += 1
                if count % 25 == 0:
                    most = max(most, len(live))

        assert count == 20_000
        assert 1 <= most <= concurrency + 1

    async def test_pages_are_not_kept_after_the_walk(self, monkeypatch: pytest.MonkeyPatch) -> None:
        live = track_pages(monkeypatch)
        async with walking(tokens=500, latency=0.0) as (cc, _, _):
            async for _token in cc.tokens.list(limit=50, concurrency=4):
                pass
            # One turn of the loop: the wakeup that resumed this task held the last one.
            await asyncio.sleep(0)
            assert len(live) == 0


class TestDeduplication:
    """The set-based fast path of de-duplication keeps the contract's exact behaviour."""

    @staticmethod
    def pager_over(pages: list[list[Any]]) -> Pager[Any]:
        async def fetch(number: int) -> Page[Any]:
            items = tuple(pages[number - 1])
            return Page(items, None, number, 3, len(pages), number < len(pages), number > 1)

        return Pager(fetch, limit=3)

    async def test_repeats_within_and_across_pages(self) -> None:
        pages = [
            [{"id": "a"}, {"id": "b"}, {"id": "a"}],
            [{"id": "b"}, {"id": "c"}, {"_id": "d"}],
            [{"_id": "d"}, {"id": "e"}, {"id": "f"}],
        ]
        walked = await self.pager_over(pages).collect()

        assert [i.get("id", i.get("_id")) for i in walked] == ["a", "b", "c", "d", "e", "f"]

    async def test_items_without_an_id_are_all_kept(self) -> None:
        pages = [[{"x": 1}, {"x": 1}, {"id": "a"}], [{"x": 2}, {"id": "a"}, {"id": "b"}]]
        walked = await self.pager_over(pages).collect()

        assert walked == [{"x": 1}, {"x": 1}, {"id": "a"}, {"x": 2}, {"id": "b"}]
