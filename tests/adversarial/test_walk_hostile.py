"""Hostile and busy listing servers on 127.0.0.1: every walk ends, and says the truth.

- a server that ignores ``page`` ends within 10 requests, at any concurrency;
- a busy newest-first list that gains a page of tokens before each read is walked, not
  mistaken for it;
- a server that keeps inventing ids with ``hasNextPage: true`` ends at ``max_pages``;
- ``complete`` is False when the server's own ``total`` contradicts the walk;
- ``waited`` is wall-clock time, not the sum of the waits of pages in flight together.

README "Paging", "Walk stats" and "Long audits". Every server stops being hostile after
5,000 requests and every walk runs under ``asyncio.wait_for``: nothing here can hang.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import pytest

from cellcast_async import CellcastSession, DecodeError
from cellcast_async.cli import main

from ._walk_server import API_KEY, SUB_ID, TOKENS_PATH, WalkServer, listing, token_item

BOUND = 30.0  # seconds any one walk here may take, however loaded the machine
NO_PROGRESS = (
    f"GET {TOKENS_PATH}: the server seems to ignore 'page': 3 pages in a row brought no new item"
)
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


def created(n: int) -> str:
    """A later ``createdAt`` for a larger ``n``: newest first is descending ``n``."""
    return (EPOCH + timedelta(seconds=n)).isoformat()


def item(n: int) -> dict[str, Any]:
    return token_item(n, createdAt=created(n))


def ids(tokens: Any) -> list[int]:
    return [int(t.id, 16) for t in tokens]


async def drain(pager: Any, into: list[int]) -> None:
    async for token in pager:
        into.append(int(token.id, 16))


def session(server: WalkServer, **options: Any) -> CellcastSession:
    return CellcastSession(api_key=API_KEY, base_url=server.url, **options)


class TestIgnoresPage:
    """The very same page on every request: a DecodeError within 10 requests."""

    @pytest.mark.parametrize("concurrency", [1, 8, "auto"])
    @pytest.mark.parametrize("total_pages", [None, 10**9])
    async def test_same_page_again(
        self, concurrency: int | Literal["auto"], total_pages: int | None
    ) -> None:
        def respond(method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
            items = [item(n) for n in range(10, 0, -1)]
            page = int(query["page"])
            body = listing(items, page=page, limit=10, total=30, more=True, total_pages=total_pages)
            return 200, body

        with WalkServer(respond) as server:
            async with session(server, max_retries=0) as cc:
                pager = cc.tokens.list(concurrency=concurrency)
                seen: list[int] = []
                with pytest.raises(DecodeError) as info:
                    await asyncio.wait_for(drain(pager, seen), BOUND)
        assert str(info.value) == NO_PROGRESS
        assert seen == list(range(10, 0, -1))
        # Page 1, then what was in flight (never topped up while pages repeat): 10 at most
        # up to concurrency 9, 1 + concurrency beyond.
        assert 4 <= len(server.requests) <= 10

    @pytest.mark.soak  # walks to the 1,000-page bound, one page at a time (about 5 s)
    async def test_same_ids_under_a_total_that_keeps_moving_end_at_the_bound(self) -> None:
        """Indistinguishable from a list that moves: not "ignores page", but still bounded."""
        asked = 0

        def respond(method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
            nonlocal asked
            asked += 1
            items = [item(n) for n in range(10, 0, -1)]
            page = int(query["page"])
            return 200, listing(items, page=page, limit=10, total=30 + asked % 2, more=True)

        with WalkServer(respond) as server:
            async with session(server, max_retries=0) as cc:
                pager = cc.tokens.list()
                with pytest.raises(DecodeError) as info:
                    await asyncio.wait_for(pager.collect(), BOUND)
        # The first total, 31, needs 4 pages: twice that plus 100.
        assert str(info.value) == bound_message(108, "the default max_pages")
        assert len(server.requests) == 108


class BusyList:
    """Newest first; before each of the first ``busy`` reads, ``grow`` tokens are created."""

    def __init__(self, size: int, *, grow: int, busy: int, limit: int = 10) -> None:
        self.listing = list(range(size, 0, -1))
        self.next_id = size + 1
        self.grow = grow
        self.busy = busy
        self.limit = limit
        self.reads = 0
        self.original = list(self.listing)

    def respond(self, method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
        self.reads += 1
        if self.reads <= self.busy:
            new = list(range(self.next_id, self.next_id + self.grow))
            self.next_id += self.grow
            self.listing[:0] = new[::-1]
        page, limit = int(query["page"]), self.limit
        chunk = self.listing[(page - 1) * limit : page * limit]
        total = len(self.listing)
        pages = -(-total // limit)
        body = listing(
            [item(n) for n in chunk],
            page=page,
            limit=limit,
            total=total,
            more=page < pages,
            total_pages=pages,
        )
        return 200, body


class TestBusyList:
    """A list that gains a page of tokens before each read is walked to its end."""

    @pytest.mark.parametrize("concurrency", [1, 8])
    async def test_a_page_gained_before_each_read(self, concurrency: int) -> None:
        world = BusyList(30, grow=10, busy=15)
        with WalkServer(world.respond) as server:
            async with session(server) as cc:
                pager = cc.tokens.list(concurrency=concurrency)
                tokens = await asyncio.wait_for(pager.collect(), BOUND)
        seen = ids(tokens)
        assert len(seen) == len(set(seen))
        assert set(world.original) <= set(seen)  # every token there all along
        assert pager.stats.duplicates_dropped > 0  # the same tokens came back, shifted

    # concurrency=1 walks the same churn one page at a time (about 25 s): under soak.
    @pytest.mark.parametrize("concurrency", [pytest.param(1, marks=pytest.mark.soak), 8])
    async def test_random_creation_churn_on_small_pages(self, concurrency: int) -> None:
        """Pages of 2, 0 to 3 tokens created before each of the first 40 reads."""
        for seed in range(12):
            rng = random.Random(seed)
            world = BusyList(rng.randrange(5, 40), grow=0, busy=40, limit=2)
            respond = world.respond

            def churn(method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
                world.grow = rng.randrange(4)  # noqa: B023 - called before the next seed
                return respond(method, path, query)  # noqa: B023

            with WalkServer(churn) as server:
                async with session(server) as cc:
                    pager = cc.tokens.list(limit=2, concurrency=concurrency)
                    tokens = await asyncio.wait_for(pager.collect(), BOUND)
            seen = ids(tokens)
            assert len(seen) == len(set(seen)), seed
            # Pages read at once may miss tokens pushed past the last page; then the walk
            # must not claim to be complete. One at a time, newest first, nothing is missed.
            if concurrency == 1 or pager.stats.complete:
                assert set(world.original) <= set(seen), seed


class Inventor:
    """Every page holds ids never sent before, with ``hasNextPage: true``, ``total: 35``."""

    def __init__(self, total_pages: int | None = None) -> None:
        self.total_pages = total_pages

    def respond(self, method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
        page = int(query["page"])
        items = [item(10_000_000 - page * 10 - i) for i in range(10)]
        body = listing(
            items, page=page, limit=10, total=35, more=True, total_pages=self.total_pages
        )
        return 200, body


def bound_message(pages: int, how: str, path: str = TOKENS_PATH) -> str:
    return (
        f"GET {path}: the server still says there are more pages after {pages} ({how}):"
        " the list grows as fast as it is read, or the server keeps inventing items"
    )


class TestMaxPages:
    """A walk that keeps receiving new ids ends at ``max_pages``, with a DecodeError."""

    # One page at a time to the bound takes about 5 s: under soak.
    @pytest.mark.parametrize(
        ("concurrency", "total_pages"),
        [pytest.param(1, None, marks=pytest.mark.soak), (8, 10**9)],
    )
    async def test_the_default_bound_comes_from_the_first_total(
        self, concurrency: int, total_pages: int | None
    ) -> None:
        with WalkServer(Inventor(total_pages).respond) as server:
            async with session(server) as cc:
                pager = cc.tokens.list(concurrency=concurrency)
                with pytest.raises(DecodeError) as info:
                    await asyncio.wait_for(pager.collect(), BOUND)
        # total 35 at 10 a page: 4 pages; twice that plus 100.
        assert str(info.value) == bound_message(108, "the default max_pages")
        assert sorted(server.pages) == list(range(1, 109))
        assert pager.next_page == 109
        assert pager.stats.complete is False

    async def test_an_explicit_bound(self) -> None:
        with WalkServer(Inventor().respond) as server:
            async with session(server) as cc:
                pager = cc.tokens.list(max_pages=5)
                with pytest.raises(DecodeError) as info:
                    await asyncio.wait_for(pager.collect(), BOUND)
                sub = cc.tokens.list_for_sub_account(SUB_ID, page=3, max_pages=2)
                with pytest.raises(DecodeError) as sub_info:
                    await asyncio.wait_for(sub.collect(), BOUND)
        assert str(info.value) == bound_message(5, "max_pages")
        path = f"{TOKENS_PATH}/sub-account/{SUB_ID}"
        assert str(sub_info.value) == bound_message(2, "max_pages", path)
        assert server.pages == [1, 2, 3, 4, 5, 3, 4]  # the bound counts from the first page

    async def test_resume_takes_a_larger_bound(self) -> None:
        with WalkServer(Inventor().respond) as server:
            async with session(server) as cc:
                pager = cc.tokens.list(max_pages=3)
                first: list[int] = []
                with pytest.raises(DecodeError):
                    await asyncio.wait_for(drain(pager, first), BOUND)
                checkpoint = pager.checkpoint()
                resumed = cc.tokens.resume(checkpoint, max_pages=6)
                second: list[int] = []
                with pytest.raises(DecodeError) as info:
                    await asyncio.wait_for(drain(resumed, second), BOUND)
        assert str(info.value) == bound_message(6, "max_pages")
        assert server.pages == [1, 2, 3, 4, 5, 6]
        assert len(first) == len(second) == 30
        assert not set(first) & set(second)

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (0, "max_pages must be >= 1, got 0"),
            (-3, "max_pages must be >= 1, got -3"),
            (True, "max_pages must be an int, not bool"),
            ("5", "max_pages must be an int, not str"),
            (2.0, "max_pages must be an int, not float"),
        ],
    )
    async def test_a_bad_bound_is_refused_before_anything_is_sent(
        self, value: Any, message: str
    ) -> None:
        with WalkServer(Inventor().respond) as server:
            async with session(server) as cc:
                makers: tuple[Callable[[], object], ...] = (
                    lambda: cc.tokens.list(max_pages=value),
                    lambda: cc.tokens.list_for_sub_account(SUB_ID, max_pages=value),
                )
                for make in makers:
                    with pytest.raises(ValueError, match=re.escape(message) + "$"):
                        make()
        assert server.requests == []


def short_walk(total: int, sizes: list[int], total_pages: int | None = None) -> WalkServer:
    """Pages of ``sizes`` items (newest first), each saying ``total``; the last says no more."""

    def respond(method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
        page = int(query["page"])
        start = 1000 - 10 * (page - 1)
        size = sizes[page - 1] if page <= len(sizes) else 0
        body = listing(
            [item(start - i) for i in range(size)],
            page=page,
            limit=10,
            total=total,
            more=page < len(sizes),
            total_pages=total_pages,
        )
        return 200, body

    return WalkServer(respond)


class TestCompleteAgreesWithTheTotal:
    """``complete`` is False when every answer's ``total`` says the walk saw too little."""

    @pytest.mark.parametrize("concurrency", [1, 8])
    @pytest.mark.parametrize(
        ("total", "sizes", "total_pages", "yielded", "complete"),
        [
            pytest.param(35, [10], None, 10, False, id="page one says no more but total 35"),
            pytest.param(35, [10, 10, 5], 4, 25, False, id="fewer than its total"),
            pytest.param(25, [10, 10, 5], 3, 25, True, id="adds up: complete"),
        ],
    )
    async def test_a_quiet_list(
        self,
        concurrency: int,
        total: int,
        sizes: list[int],
        total_pages: int | None,
        yielded: int,
        complete: bool,
    ) -> None:
        """Complete only when what was yielded adds up to the ``total`` every page said."""
        with short_walk(total, sizes, total_pages=total_pages) as server:
            async with session(server) as cc:
                pager = cc.tokens.list(concurrency=concurrency)
                tokens = await asyncio.wait_for(pager.collect(), BOUND)
        assert len(tokens) == yielded
        assert (pager.stats.first_total, pager.stats.last_total) == (total, total)
        assert pager.stats.complete is complete

    def test_the_cli_audit_says_not_proven_complete(self) -> None:
        out, err = io.StringIO(), io.StringIO()
        with short_walk(35, [10]) as server:
            code = main(
                ["audit", "--quiet", "--json", "--api-key", API_KEY, "--base-url", server.url],
                stdout=out,
                stderr=err,
            )
        assert (code, err.getvalue()) == (0, "")
        walk = json.loads(out.getvalue())["walk"]
        assert (walk["items"], walk["first_total"], walk["complete"]) == (10, 35, False)


class TestWaitedIsWallClock:
    """Eight pages each waiting 1 s at once waited about 1 s of wall-clock time, not 8."""

    @staticmethod
    def busy_once() -> WalkServer:
        """Nine pages; each page's first request is a 503 with ``Retry-After: 1``."""
        tried: set[int] = set()

        def respond(method: str, path: str, query: dict[str, str]) -> tuple[Any, ...]:
            page = int(query["page"])
            if page not in tried:
                tried.add(page)
                return 503, {"status": False, "message": "busy"}, {"Retry-After": "1"}
            chunk = [item(1000 - 10 * (page - 1) - i) for i in range(10)]
            return 200, listing(chunk, page=page, limit=10, total=90, more=page < 9, total_pages=9)

        return WalkServer(respond)

    def test_the_cli_prints_wall_clock_and_sum(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # A real clock and sleep: the suite's fake clock adds concurrent sleeps up.
        monkeypatch.setattr("cellcast_async._options._sleep", asyncio.sleep)
        monkeypatch.setattr("cellcast_async._options._clock", time.monotonic)
        out, err = io.StringIO(), io.StringIO()
        with self.busy_once() as server:
            code = main(
                [
                    *("audit", "--quiet", "--concurrency", "8"),
                    *("--api-key", API_KEY, "--base-url", server.url),
                ],
                stdout=out,
                stderr=err,
            )
        assert (code, err.getvalue()) == (0, "")
        (line,) = [x for x in out.getvalue().splitlines() if " waited " in x]
        found = re.search(r"waited ([\d.]+) s of ([\d.]+) s \(([\d.]+) s summed", line)
        assert found is not None, line
        waited, elapsed, summed = map(float, found.groups())
        assert 2.0 <= waited <= elapsed
        assert waited < 4.0
        assert summed == 9.0

    async def test_concurrent_backoffs(self) -> None:
        # A real clock and sleep: the suite's fake clock adds concurrent sleeps up.
        with self.busy_once() as server:
            server_503 = server
            async with session(server, clock=time.monotonic, sleep=asyncio.sleep) as cc:
                pager = cc.tokens.list(concurrency=8)
                tokens = await asyncio.wait_for(pager.collect(), BOUND)
        assert len(tokens) == 90
        stats = pager.stats
        assert stats.retries == 9
        assert stats.waited_sum == pytest.approx(9.0)  # nine 1 s Retry-After waits
        # Page 1 waited alone, pages 2-9 together: about 2 s, never more than the walk.
        assert 2.0 <= stats.waited <= stats.elapsed
        assert stats.waited < 4.0
        assert len(server_503.requests) == 9 * 2 + 1  # and page 1 once more (README "Reliability")
