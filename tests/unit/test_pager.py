"""The Pager over Cellcast's listing: filters, stops, resuming, de-duplication, concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

import cellcast_async
from cellcast_async import (
    ApiToken,
    DecodeError,
    NotFoundError,
    Page,
    ServerError,
    TransportError,
    __version__,
)
from cellcast_async._pager import Pager

from ..seed_samples import NOT_FOUND_404
from ._support import (
    API_KEY,
    BASE_URL,
    LISTING_URL,
    TOKENS_PATH,
    add_listing,
    envelope,
    list_data,
    sent,
    session,
    token_json,
)

SUB = "6877a383d68781beb3b14110"
T = TypeVar("T")

PAGE_2 = re.compile(r"^" + re.escape(BASE_URL + TOKENS_PATH) + r"\?(.*&)?page=2(&.*)?$")


def tokens(count: int, start: int = 1) -> list[dict[str, Any]]:
    return [token_json(n) for n in range(start, start + count)]


def ids(items: Sequence[ApiToken]) -> list[str]:
    return [t.id for t in items]


def expected_ids(count: int, start: int = 1) -> list[str]:
    return [f"tok{n:03d}" for n in range(start, start + count)]


async def drain_into(into: list[T], walk: AsyncIterable[T]) -> None:
    """Append every item of ``walk`` to ``into``, keeping what came before a failure."""
    async for item in walk:
        into.append(item)


async def other_tasks() -> set[asyncio.Task[Any]]:
    """Tasks other than this one, after letting the loop settle a few turns."""
    for _ in range(5):
        await asyncio.sleep(0)
    return asyncio.all_tasks() - {asyncio.current_task()}


class TestAwaitPager:
    """``await pager`` is the first page in exactly one request."""

    async def test_one_request_for_the_first_page(self) -> None:
        with aioresponses() as m:
            add_listing(m, tokens(7), limit=3)
            async with session() as cc:
                pager = cc.tokens.list(limit=3)
                assert sent(m) == []  # building a pager sends nothing
                page = await pager

        assert isinstance(page, Page)
        assert ids(page.items) == expected_ids(3)
        assert (page.page, page.limit, page.total, page.total_pages) == (1, 3, 7, 3)
        assert page.has_next_page is True
        assert len(sent(m)) == 1
        assert pager.next_page == 2

    async def test_starts_at_the_given_page(self) -> None:
        with aioresponses() as m:
            add_listing(m, tokens(7), limit=3)
            async with session() as cc:
                page = await cc.tokens.list(limit=3, page=3)

        assert ids(page.items) == ["tok007"]
        assert [dict(url.query)["page"] for _, url, _ in sent(m)] == ["3"]


class TestWalk:
    """``async for``, ``.pages()`` and ``.collect()`` over a three-page listing."""

    async def test_every_request_carries_filters_and_credentials(self) -> None:
        with aioresponses() as m:
            add_listing(m, tokens(7), limit=3)
            async with session() as cc:
                pager = cc.tokens.list(sub_account_id=SUB, status="active", search="Prod", limit=3)
                seen = [token async for token in pager]

        assert ids(seen) == expected_ids(7)
        requests = sent(m)
        assert len(requests) == 3
        for number, (method, url, kwargs) in enumerate(requests, start=1):
            assert method == "GET"
            assert url.path == TOKENS_PATH
            assert dict(url.query) == {
                "subAccountId": SUB,
                "status": "active",
                "search": "Prod",
                "page": str(number),
                "limit": "3",
            }
            assert kwargs["headers"]["Authorization"] == f"Bearer {API_KEY}"
            assert kwargs["headers"]["User-Agent"].startswith(f"cellcast-async/{__version__} ")
        assert pager.next_page == 4

    async def test_list_for_sub_account_carries_filters_on_every_page(self) -> None:
        path = f"{TOKENS_PATH}/sub-account/{SUB}"
        with aioresponses() as m:
            add_listing(m, tokens(5), limit=2, path=path)
            async with session() as cc:
                seen = await cc.tokens.list_for_sub_account(
                    SUB, limit=2, status="inactive"
                ).collect()

        assert ids(seen) == expected_ids(5)
        assert [(url.path, dict(url.query)) for _, url, _ in sent(m)] == [
            (path, {"status": "inactive", "page": str(n), "limit": "2"}) for n in (1, 2, 3)
        ]

    async def test_pages_yields_each_page_in_order(self) -> None:
        with aioresponses() as m:
            add_listing(m, tokens(7), limit=3)
            async with session() as cc:
                pager = cc.tokens.list(limit=3)
                pages = [page async for page in pager.pages()]

        assert [p.page for p in pages] == [1, 2, 3]
        assert [ids(p.items) for p in pages] == [
            expected_ids(3),
            expected_ids(3, 4),
            expected_ids(1, 7),
        ]
        assert [p.has_next_page for p in pages] == [True, True, False]
        assert pager.next_page == 4

    async def test_collect_returns_every_item(self) -> None:
        with aioresponses() as m:
            add_listing(m, tokens(7), limit=3)
            async with session() as cc:
                everything = await cc.tokens.list(limit=3).collect()

        assert ids(everything) == expected_ids(7)
        assert all(isinstance(t, ApiToken) for t in everything)
        assert len(sent(m)) == 3

    async def test_each_walk_starts_again_at_the_first_page(self) -> None:
        log: list[int] = []
        with aioresponses() as m:
            add_listing(m, tokens(4), limit=2, log=log)
            async with session() as cc:
                pager = cc.tokens.list(limit=2)
                first = await pager.collect()
                second = await pager.collect()

        assert ids(first) == ids(second) == expected_ids(4)
        assert log == [1, 2, 1, 2]


class TestStops:
    """Where a walk stops: max_items, empty page, totalPages, a server that ignores page."""

    async def test_a_server_answering_another_page_is_a_decode_error(self) -> None:
        """A server that always answers page 1 would loop forever: DecodeError on page 2."""
        with aioresponses() as m:

            def page_one(url: URL, **kwargs: Any) -> CallbackResult:
                data = list_data(tokens(3), page=1, limit=3, total=9, total_pages=9)
                del data["totalPages"]  # nothing else would stop the walk
                return CallbackResult(status=200, payload=envelope(data))

            m.get(LISTING_URL, callback=page_one, repeat=True)
            async with session() as cc:
                pager = cc.tokens.list(limit=3)
                seen: list[ApiToken] = []
                with pytest.raises(DecodeError) as info:
                    await drain_into(seen, pager)

        assert (
            str(info.value) == f"GET {TOKENS_PATH} -> 200: asked for page 2, the answer is page 1"
        )
        assert ids(seen) == expected_ids(3)
        assert pager.next_page == 2
        assert len(sent(m)) == 2

    @pytest.mark.parametrize(
        ("max_items", "next_page"),
        [
            # Page 2 was cut: a resume there repeats nothing lost.
            pytest.param(5, 2, id="stops_mid_page_and_requests_no_further_page"),
            pytest.param(6, 3, id="on_a_page_boundary"),
        ],
    )
    async def test_max_items(self, max_items: int, next_page: int) -> None:
        log: list[int] = []
        with aioresponses() as m:
            add_listing(m, tokens(9), limit=3, log=log)
            async with session() as cc:
                pager = cc.tokens.list(limit=3, max_items=max_items)
                seen = await pager.collect()

        assert ids(seen) == expected_ids(max_items)
        assert log == [1, 2]
        assert pager.next_page == next_page

    async def test_max_items_cuts_pages_too(self) -> None:
        with aioresponses() as m:
            add_listing(m, tokens(9), limit=3)
            async with session() as cc:
                pager = cc.tokens.list(limit=3, max_items=5)
                pages = [page async for page in pager.pages()]

        assert [ids(p.items) for p in pages] == [expected_ids(3), expected_ids(2, 4)]
        assert pager.next_page == 2

    async def test_max_items_zero_sends_nothing(self) -> None:
        with aioresponses() as m:
            add_listing(m, tokens(9), limit=3)
            async with session() as cc:
                seen = await cc.tokens.list(limit=3, max_items=0).collect()

        assert seen == []
        assert sent(m) == []

    async def test_max_items_caps_await_pager_too(self) -> None:
        with aioresponses() as m:
            add_listing(m, tokens(9), limit=3)
            async with session() as cc:
                pager = cc.tokens.list(limit=3, max_items=2)
                page = await pager

        assert ids(page.items) == expected_ids(2)
        assert pager.next_page == 1

    @pytest.mark.parametrize(
        ("count", "total_pages", "has_next", "yielded"),
        [
            (3, 5, lambda n: True, 3),  # an empty page 2, though it says there is a next
            (12, 2, lambda n: True, 6),  # never past total_pages
            (9, None, lambda n: n < 2, 6),  # hasNextPage false
        ],
        ids=["empty-page-with-next-true", "past-total-pages", "has-next-false"],
    )
    async def test_stops_after_page_two(
        self,
        count: int,
        total_pages: int | None,
        has_next: Callable[[int], bool],
        yielded: int,
    ) -> None:
        log: list[int] = []
        with aioresponses() as m:
            add_listing(
                m, tokens(count), limit=3, total_pages=total_pages, has_next=has_next, log=log
            )
            async with session() as cc:
                seen = await cc.tokens.list(limit=3).collect()

        assert ids(seen) == expected_ids(yielded)
        assert log == [1, 2]


class TestResume:
    """A failed page leaves ``next_page`` where a new pager resumes, losing nothing."""

    async def test_404_on_page_two(self) -> None:
        with aioresponses() as m:
            m.get(PAGE_2, status=404, payload=NOT_FOUND_404)
            add_listing(m, tokens(7), limit=3)
            async with session() as cc:
                pager = cc.tokens.list(status="active", limit=3)
                seen: list[ApiToken] = []
                with pytest.raises(NotFoundError) as info:
                    await drain_into(seen, pager)
                assert pager.next_page == 2
                assert info.value.detail == "API token not found"

                resumed = cc.tokens.list(status="active", limit=3, page=pager.next_page)
                seen.extend(await resumed.collect())

        assert ids(seen) == expected_ids(7)

    async def test_retries_exhausted_on_page_two(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(PAGE_2, status=503, payload={"message": "Service Unavailable"}, repeat=3)
            add_listing(m, tokens(7), limit=3)
            async with session() as cc:
                pager = cc.tokens.list(limit=3)
                seen: list[ApiToken] = []
                with pytest.raises(ServerError) as info:
                    await drain_into(seen, pager)
                assert info.value.status_code == 503
                assert pager.next_page == 2
                assert len(fake_sleep.delays) == 2

                seen.extend(await cc.tokens.list(limit=3, page=pager.next_page).collect())

        assert ids(seen) == expected_ids(7)

    async def test_connection_lost_on_page_two_with_pages(self) -> None:
        with aioresponses() as m:
            m.get(PAGE_2, exception=aiohttp.ClientConnectionError("reset"), repeat=3)
            add_listing(m, tokens(7), limit=3)
            async with session() as cc:
                pager = cc.tokens.list(limit=3)
                pages: list[Page[ApiToken]] = []
                with pytest.raises(TransportError):
                    await drain_into(pages, pager.pages())
                assert pager.next_page == 2
                pages.extend([page async for page in cc.tokens.list(limit=3, page=2).pages()])

        assert [p.page for p in pages] == [1, 2, 3]

    async def test_failure_after_a_cut_page_resumes_on_it(self) -> None:
        """Breaking mid-page leaves next_page on that page: resuming repeats, never loses."""
        with aioresponses() as m:
            add_listing(m, tokens(6), limit=3)
            async with session() as cc:
                pager = cc.tokens.list(limit=3)
                async with contextlib.aclosing(pager.__aiter__()) as walk:
                    async for token in walk:
                        if token.id == "tok002":
                            break
                assert pager.next_page == 1


class TestDuplicates:
    """Items seen twice because the list shifted are yielded once, keyed by id."""

    async def test_shifted_list_yields_each_id_once(self) -> None:
        shifted = {2: [token_json(3), token_json(4), token_json(5)]}
        with aioresponses() as m:
            add_listing(m, tokens(7), limit=3, pages=shifted)
            async with session() as cc:
                seen = await cc.tokens.list(limit=3).collect()
                pages = [ids(p.items) async for p in cc.tokens.list(limit=3).pages()]

        assert ids(seen) == ["tok001", "tok002", "tok003", "tok004", "tok005", "tok007"]
        assert pages == [["tok001", "tok002", "tok003"], ["tok004", "tok005"], ["tok007"]]

    async def test_a_page_of_only_duplicates_does_not_stop_the_walk(self) -> None:
        repeated = {2: [token_json(1), token_json(2)]}
        with aioresponses() as m:
            add_listing(m, tokens(6), limit=2, pages=repeated)
            async with session() as cc:
                seen = await cc.tokens.list(limit=2).collect()

        assert ids(seen) == ["tok001", "tok002", "tok005", "tok006"]

    async def test_max_items_counts_distinct_items(self) -> None:
        shifted = {2: [token_json(2), token_json(3)]}
        with aioresponses() as m:
            add_listing(m, tokens(6), limit=2, pages=shifted)
            async with session() as cc:
                seen = await cc.tokens.list(limit=2, max_items=4).collect()

        assert ids(seen) == ["tok001", "tok002", "tok003", "tok005"]


def add_slow_listing(
    m: aioresponses,
    items: Sequence[Mapping[str, Any]],
    *,
    limit: int,
    turns: dict[int, int],
    log: list[int],
) -> None:
    """A listing whose page N answers after ``turns[N]`` loop turns: pages finish out of order."""
    chunks = [list(items[i : i + limit]) for i in range(0, len(items), limit)]

    async def handler(url: URL, **kwargs: Any) -> CallbackResult:
        number = int(url.query["page"])
        log.append(number)
        for _ in range(turns.get(number, 0)):
            await asyncio.sleep(0)
        chunk = chunks[number - 1] if number <= len(chunks) else []
        data = list_data(chunk, page=number, limit=limit, total=len(items), total_pages=len(chunks))
        return CallbackResult(payload=envelope(data))

    m.get(LISTING_URL, callback=handler, repeat=True)


class TestConcurrency:
    """``concurrency=N`` fetches ahead but yields in page order, never past totalPages."""

    async def test_same_items_same_order_as_sequential(self) -> None:
        items = tokens(20)
        sequential_log: list[int] = []
        concurrent_log: list[int] = []
        turns = {2: 30, 3: 1, 4: 20, 5: 0, 6: 10, 7: 3}
        with aioresponses() as m:
            add_slow_listing(m, items, limit=3, turns=turns, log=sequential_log)
            async with session() as cc:
                sequential = await cc.tokens.list(limit=3).collect()
        with aioresponses() as m:
            add_slow_listing(m, items, limit=3, turns=turns, log=concurrent_log)
            async with session() as cc:
                pager = cc.tokens.list(limit=3, concurrency=3)
                concurrent = await pager.collect()

        assert ids(concurrent) == ids(sequential) == expected_ids(20)
        assert sequential_log == [1, 2, 3, 4, 5, 6, 7]
        # Each page once, none past 7, and page 1 again at the end: the read that proves
        # the (newest-first) list stayed quiet while pages were in flight at once.
        assert sorted(concurrent_log) == [1, 1, 2, 3, 4, 5, 6, 7]
        assert pager.next_page == 8

    async def test_pages_stay_in_order(self) -> None:
        log: list[int] = []
        with aioresponses() as m:
            add_slow_listing(m, tokens(10), limit=2, turns={2: 9, 3: 6, 4: 3}, log=log)
            async with session() as cc:
                numbers = [p.page async for p in cc.tokens.list(limit=2, concurrency=4).pages()]

        assert numbers == [1, 2, 3, 4, 5]
        assert sorted(log) == [1, 1, 2, 3, 4, 5]  # page 1 again: the quiet-list proof

    async def test_never_requests_past_total_pages_when_fewer_than_concurrency(self) -> None:
        log: list[int] = []
        with aioresponses() as m:
            add_listing(m, tokens(4), limit=2, log=log)
            async with session() as cc:
                seen = await cc.tokens.list(limit=2, concurrency=8).collect()

        assert ids(seen) == expected_ids(4)
        assert sorted(log) == [1, 2]

    async def test_without_total_pages_walks_one_page_at_a_time(self) -> None:
        log: list[int] = []

        def no_counts(url: URL, **kwargs: Any) -> CallbackResult:
            number = int(url.query["page"])
            log.append(number)
            data = {"items": [token_json(number)], "hasNextPage": number < 4}
            return CallbackResult(payload=envelope(data))

        with aioresponses() as m:
            m.get(LISTING_URL, callback=no_counts, repeat=True)
            async with session() as cc:
                seen = await cc.tokens.list(limit=1, concurrency=3).collect()

        assert ids(seen) == expected_ids(4)
        assert log == [1, 2, 3, 4]

    async def test_max_items_limits_prefetch(self) -> None:
        log: list[int] = []
        with aioresponses() as m:
            add_listing(m, tokens(30), limit=3, log=log)
            async with session() as cc:
                seen = await cc.tokens.list(limit=3, concurrency=5, max_items=7).collect()

        assert ids(seen) == expected_ids(7)
        assert sorted(log) == [1, 2, 3]

    async def test_failure_on_a_prefetched_page_keeps_next_page(self) -> None:
        with aioresponses() as m:
            m.get(PAGE_2, status=404, payload=NOT_FOUND_404)
            add_listing(m, tokens(9), limit=3)
            async with session() as cc:
                pager = cc.tokens.list(limit=3, concurrency=3)
                seen: list[ApiToken] = []
                with pytest.raises(NotFoundError):
                    await drain_into(seen, pager)
                assert pager.next_page == 2
                assert await other_tasks() == set()
                seen.extend(await cc.tokens.list(limit=3, page=2, concurrency=3).collect())

        assert ids(seen) == expected_ids(9)

    @pytest.mark.parametrize(("walk", "taken"), [("items", 2), ("pages", 1)])
    async def test_break_with_aclosing_leaves_no_pending_task(self, walk: str, taken: int) -> None:
        """Breaking out of an item walk (mid page) or a page walk closed with aclosing."""
        with aioresponses() as m:
            add_slow_listing(m, tokens(30), limit=3, turns={n: 50 for n in range(2, 11)}, log=[])
            async with session() as cc:
                pager = cc.tokens.list(limit=3, concurrency=4)
                walks = {"items": pager.__aiter__, "pages": pager.pages}
                async with contextlib.aclosing(walks[walk]()) as iterator:
                    count = 0
                    async for _ in iterator:
                        count += 1
                        if count == taken:
                            break
                # Closed means closed: no prefetch left running once aclose() returns.
                assert asyncio.all_tasks() == {asyncio.current_task()}

    async def test_plain_break_leaves_no_pending_task(self) -> None:
        with aioresponses() as m:
            add_slow_listing(m, tokens(30), limit=3, turns={n: 50 for n in range(2, 11)}, log=[])
            async with session() as cc:
                async for token in cc.tokens.list(limit=3, concurrency=4):
                    if token.id == "tok004":
                        break
                assert await other_tasks() == set()

    async def test_cancelled_collect_leaves_no_pending_task(self) -> None:
        with aioresponses() as m:
            add_slow_listing(
                m, tokens(30), limit=3, turns={n: 10_000 for n in range(2, 11)}, log=[]
            )
            async with session() as cc:
                collecting = asyncio.ensure_future(cc.tokens.list(limit=3, concurrency=4).collect())
                for _ in range(20):
                    await asyncio.sleep(0)
                collecting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await collecting
                assert asyncio.all_tasks() == {asyncio.current_task()}


class TestPagerDirectly:
    """``Pager`` over a plain fetch function (no HTTP)."""

    async def test_repr_shows_the_walk_not_the_fetch(self) -> None:
        async def fetch(number: int) -> Page[int]:
            raise AssertionError("not called")

        pager: Pager[int] = Pager(fetch, page=2, limit=5, concurrency=2, max_items=7)

        assert repr(pager) == "<Pager page=2 limit=5 concurrency=2 max_items=7 next_page=2>"

    async def test_items_without_ids_are_never_deduplicated(self) -> None:
        async def fetch(number: int) -> Page[int]:
            return Page(
                items=(1, 1, 2),
                total=6,
                page=number,
                limit=3,
                total_pages=2,
                has_next_page=number < 2,
                has_prev_page=number > 1,
            )

        assert await Pager(fetch, limit=3).collect() == [1, 1, 2, 1, 1, 2]

    def test_signature_names_public_types_only(self) -> None:
        """``help(Pager)`` shows what a user passes, in names ``cellcast_async`` exports or
        the standard library's; the SDK's own wiring (``cc.tokens``) is not in it."""
        signature = inspect.signature(cellcast_async.Pager)
        assert list(signature.parameters) == [
            "fetch",
            "page",
            "limit",
            "concurrency",
            "max_items",
            "key",
            "order",
            "order_key",
            "clock",
            "max_pages",
        ]
        standard = {"Callable", "Awaitable", "Hashable", "Any", "Literal", "int", "float", "None"}
        public = set(cellcast_async.__all__) | standard | {"T"}
        names = {
            name
            for parameter in signature.parameters.values()
            # The Literal's quoted values ("newest_first") are strings, not names.
            for name in re.findall(
                r"[A-Za-z_]\w*", re.sub(r"'[^']*'", "", str(parameter.annotation))
            )
        }
        assert names <= public, names - public
