"""The clients benchmarks/audit.py races, (a) to (e), each walking every token once.

Each client opens what it needs, then brackets only the walk itself with
``meter.start()`` / ``meter.stop()``, and returns how many tokens it saw and the
last id (the harness checks every client read the same data).
"""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import requests
from _pydantic_models import ApiToken as PydanticToken
from _pydantic_models import TokenPage, validate_page_json

from cellcast_async import CellcastSession

PATH = "/api/v1/apiClient/token"


@dataclass
class Target:
    url: str  # the sandbox's base URL
    api_key: str
    limit: int  # page size
    max_pages: int | None = None  # warm-up runs read only a few pages


@dataclass
class Meter:
    """Wall time of the walk, and (when asked) the traced heap's peak growth during it."""

    trace: bool = False
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process only: the client's own work, not the server's
    peak_bytes: int | None = None
    _t0: float = field(default=0.0, repr=False)
    _cpu0: float = field(default=0.0, repr=False)
    _base: int = field(default=0, repr=False)

    def start(self) -> None:
        if self.trace:
            tracemalloc.reset_peak()
            self._base = tracemalloc.get_traced_memory()[0]
        self._cpu0 = time.process_time()
        self._t0 = time.perf_counter()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self._t0
        self.cpu_seconds = time.process_time() - self._cpu0
        if self.trace:
            self.peak_bytes = tracemalloc.get_traced_memory()[1] - self._base


@dataclass
class Result:
    count: int
    last_id: str | None


# --- (a) the seeds' own Python example (seed 000), turned into a loop ----------------


def _requests_pages(target: Target) -> Iterator[dict[str, Any]]:
    # seed 000's sample, verbatim but for the loop: requests.get with headers and params
    # (no Session, as the sample has none), page += 1 while hasNextPage.
    url = target.url + PATH
    headers = {"Authorization": f"Bearer {target.api_key}"}
    page = 1
    while True:
        params = {"page": page, "limit": target.limit}
        response = requests.get(url, headers=headers, params=params)
        data = response.json()["data"]
        yield from data["items"]
        if not data["hasNextPage"] or page == target.max_pages:
            break
        page += 1


def run_requests(target: Target, meter: Meter) -> Result:
    count, last = 0, None
    meter.start()
    for item in _requests_pages(target):
        count += 1
        last = item["_id"]
    meter.stop()
    return Result(count, last)


# --- (b) hand-written aiohttp + json, yielding dicts: the floor -----------------------


async def _aiohttp_items(
    session: aiohttp.ClientSession, target: Target
) -> AsyncIterator[dict[str, Any]]:
    url = target.url + PATH
    page = 1
    while True:
        params = {"page": str(page), "limit": str(target.limit)}
        async with session.get(url, params=params) as response:
            body = await response.read()
        data = json.loads(body)["data"]
        for item in data["items"]:
            yield item
        if not data["hasNextPage"] or page == target.max_pages:
            break
        page += 1


async def run_aiohttp(target: Target, meter: Meter) -> Result:
    headers = {"Authorization": f"Bearer {target.api_key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        count, last = 0, None
        meter.start()
        async for item in _aiohttp_items(session, target):
            count += 1
            last = item["_id"]
        meter.stop()
    return Result(count, last)


async def run_aiohttp_concurrent(target: Target, meter: Meter, concurrency: int = 8) -> Result:
    """(b) with ``concurrency`` pages in flight once page 1 told totalPages: a reference
    for what any client can reach against this server, not one of the issue's five."""
    headers = {"Authorization": f"Bearer {target.api_key}"}
    url = target.url + PATH

    async def get(session: aiohttp.ClientSession, page: int) -> dict[str, Any]:
        params = {"page": str(page), "limit": str(target.limit)}
        async with session.get(url, params=params) as response:
            body = await response.read()
        data: dict[str, Any] = json.loads(body)["data"]
        return data

    async with aiohttp.ClientSession(headers=headers) as session:
        count, last = 0, None
        meter.start()
        first = await get(session, 1)
        last_page = first["totalPages"] if target.max_pages is None else target.max_pages
        pending = [asyncio.ensure_future(get(session, n)) for n in range(2, 2 + concurrency)]
        pending = pending[: max(0, last_page - 1)]
        following = 2 + len(pending)
        data = first
        while True:
            for item in data["items"]:
                count += 1
                last = item["_id"]
            if not pending:
                break
            data = await pending.pop(0)
            if following <= last_page:
                pending.append(asyncio.ensure_future(get(session, following)))
                following += 1
        meter.stop()
    return Result(count, last)


# --- (c) httpx + pydantic v2, a sequential pager in openai-python's style --------------


class AsyncTokenPager:
    """openai-python's ``AsyncPaginator`` shape: pages know how to fetch the next one."""

    def __init__(self, client: httpx.AsyncClient, limit: int, max_pages: int | None) -> None:
        self._client = client
        self._limit = limit
        self._max_pages = max_pages

    async def _get_page(self, page: int) -> TokenPage[PydanticToken]:
        response = await self._client.get(PATH, params={"page": page, "limit": self._limit})
        response.raise_for_status()
        return validate_page_json(response.content)

    async def iter_pages(self) -> AsyncIterator[TokenPage[PydanticToken]]:
        page = await self._get_page(1)
        yield page
        while page.has_next_page and page.page != self._max_pages:
            page = await self._get_page(page.page + 1)
            yield page

    async def __aiter__(self) -> AsyncIterator[PydanticToken]:
        async for page in self.iter_pages():
            for item in page.items:
                yield item


async def run_httpx_pydantic(target: Target, meter: Meter) -> Result:
    headers = {"Authorization": f"Bearer {target.api_key}"}
    async with httpx.AsyncClient(base_url=target.url, headers=headers) as client:
        count, last = 0, None
        meter.start()
        async for token in AsyncTokenPager(client, target.limit, target.max_pages):
            count += 1
            last = token.id
        meter.stop()
    return Result(count, last)


# --- (d), (e) cellcast_async -------------------------------------------------------


def cellcast(concurrency: int) -> Callable[[Target, Meter], Awaitable[Result]]:
    async def run_cellcast(target: Target, meter: Meter) -> Result:
        async with CellcastSession(api_key=target.api_key, base_url=target.url) as cc:
            max_items = None if target.max_pages is None else target.max_pages * target.limit
            count, last = 0, None
            meter.start()
            async for token in cc.tokens.list(
                limit=target.limit, concurrency=concurrency, max_items=max_items
            ):
                count += 1
                last = token.id
            meter.stop()
        return Result(count, last)

    return run_cellcast


@dataclass(frozen=True)
class Client:
    key: str
    label: str
    run: Callable[[Target, Meter], Any]  # a Result, or an awaitable of one
    concurrency: int = 1


CLIENTS: tuple[Client, ...] = (
    Client("a", "(a) requests, seed 000 example in a loop", run_requests),
    Client("b", "(b) aiohttp + json, dicts (floor)", run_aiohttp),
    Client("c", "(c) httpx + pydantic v2, openai-style", run_httpx_pydantic),
    Client(
        "b8",
        "(b8) aiohttp + json, 8 in flight (reference, not SDK)",
        run_aiohttp_concurrent,
        concurrency=8,
    ),
    Client("d", "(d) cellcast_async concurrency=1", cellcast(1)),
    Client("e8", "(e) cellcast_async concurrency=8", cellcast(8), concurrency=8),
    Client("e16", "(e) cellcast_async concurrency=16", cellcast(16), concurrency=16),
)
