"""A server's ``total`` or ``totalPages`` cannot lift the walk's safety bound (README "Paging").

``max_pages`` by default comes from the first answer's ``total``; a hostile server that
claims ``total: 10**30`` and keeps inventing ids with ``hasNextPage: true`` must still end
the walk, at ``MAX_DERIVED_PAGES``, with the bound's ``DecodeError``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cellcast_async import CellcastSession, DecodeError, _walk
from cellcast_async._walk import MAX_DERIVED_PAGES, MAX_PAGES_SLACK, page_bound

from ._walk_server import API_KEY, TOKENS_PATH, WalkServer, listing, token_item

BOUND = 30.0  # seconds a walk here may take, however loaded the machine


class HugeTotal:
    """New ids on every page, ``hasNextPage: true``, and a ``total`` (or pages) of 10**30."""

    def __init__(self, *, total: int | None, total_pages: int | None) -> None:
        self.total = total
        self.total_pages = total_pages

    def respond(self, method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
        page = int(query["page"])
        items = [token_item(10_000_000 - page * 10 - i) for i in range(10)]
        body = listing(
            items,
            page=page,
            limit=10,
            total=self.total,
            more=True,
            total_pages=self.total_pages,
        )
        return 200, body


class TestPageBound:
    """The derived bound is capped; an explicit one is the caller's to choose."""

    @pytest.mark.parametrize(
        ("total", "total_pages", "limit", "bound"),
        [
            (10**30, None, 10, MAX_DERIVED_PAGES),
            (10**30, None, 1, MAX_DERIVED_PAGES),
            (None, 10**12, 10, MAX_DERIVED_PAGES),
            (35, None, 10, 2 * 4 + MAX_PAGES_SLACK),  # a believable total is used as it is
            (None, 7, 10, 2 * 7 + MAX_PAGES_SLACK),
        ],
    )
    def test_derived(
        self, total: int | None, total_pages: int | None, limit: int, bound: int
    ) -> None:
        assert page_bound(None, total, total_pages, limit) == bound

    def test_explicit_is_not_capped(self) -> None:
        assert page_bound(MAX_DERIVED_PAGES * 3, 10**30, None, 10) == MAX_DERIVED_PAGES * 3


class TestHugeTotalWalk:
    """A walk under a ``total`` of 10**30 ends at the cap, not never."""

    @pytest.mark.parametrize(("total", "total_pages"), [(10**30, None), (None, 10**30)])
    @pytest.mark.parametrize("concurrency", [pytest.param(1, marks=pytest.mark.soak), 8])
    async def test_ends_at_the_cap(
        self,
        monkeypatch: pytest.MonkeyPatch,
        total: int | None,
        total_pages: int | None,
        concurrency: int,
    ) -> None:
        # The cap itself (100,000 pages) is too many requests for a test; the rule is the same.
        monkeypatch.setattr(_walk, "MAX_DERIVED_PAGES", 40)
        hostile = HugeTotal(total=total, total_pages=total_pages)
        with WalkServer(hostile.respond) as server:
            async with CellcastSession(api_key=API_KEY, base_url=server.url) as cc:
                pager = cc.tokens.list(concurrency=concurrency)
                with pytest.raises(DecodeError) as info:
                    await asyncio.wait_for(pager.collect(), BOUND)
        assert str(info.value) == (
            f"GET {TOKENS_PATH}: the server still says there are more pages after 40"
            " (the default max_pages): the list grows as fast as it is read, or the server"
            " keeps inventing items"
        )
        assert sorted(server.pages) == list(range(1, 41))
        assert pager.next_page == 41
        assert pager.stats.complete is False
