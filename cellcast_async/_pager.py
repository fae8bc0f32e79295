"""Pages and the pager that walks them.

A *page format* is a pure function from a decoded JSON body to a :class:`RawPage`;
two ship here: Cellcast's (``data.items`` + ``data.hasNextPage``, seed 000) and the
``meta.pagination`` shape of seed 004. A :class:`Pager` is an async generator over
pages (gidgethub ``getiter`` style) and its items are a flat loop over that.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Hashable,
    Mapping,
)
from typing import Any, Generic, TypeVar

import attrs

from ._exceptions import ShapeError

__all__ = [
    "Page",
    "Pager",
    "RawPage",
    "build_page",
    "cellcast_page_format",
    "meta_pagination_page_format",
]

T = TypeVar("T")


@attrs.frozen(slots=True)
class Page(Generic[T]):
    """One page of results: its items and what the server said about the whole list."""

    items: tuple[T, ...]
    total: int | None
    page: int
    limit: int | None
    total_pages: int | None
    has_next_page: bool
    has_prev_page: bool

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Any:
        return iter(self.items)


@attrs.frozen(slots=True)
class RawPage:
    """A page as a page format reads it: items still JSON, page facts checked."""

    items: list[Any]
    total: int | None
    page: int | None
    limit: int | None
    total_pages: int | None
    has_next_page: bool
    has_prev_page: bool


PageFormat = Callable[[Mapping[str, Any]], RawPage]


def _opt_int(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ShapeError(f"{key!r} must be a non-negative integer")
    return value


def _bool(obj: Mapping[str, Any], key: str) -> bool:
    value = obj.get(key)
    if not isinstance(value, bool):
        raise ShapeError(f"{key!r} must be true or false")
    return value


def cellcast_page_format(envelope: Mapping[str, Any]) -> RawPage:
    """Cellcast's listing (seed 000): ``data.items`` and ``data.hasNextPage``.

    ``items`` and ``hasNextPage`` are required; the counts may be missing (``None``)
    but never of the wrong type.
    """
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise ShapeError("'data' must be an object holding the page")
    items = data.get("items")
    if not isinstance(items, list):
        raise ShapeError("'data.items' must be an array")
    page = _opt_int(data, "page")
    prev = data.get("hasPrevPage")
    return RawPage(
        items=items,
        total=_opt_int(data, "total"),
        page=page,
        limit=_opt_int(data, "limit"),
        total_pages=_opt_int(data, "totalPages"),
        has_next_page=_bool(data, "hasNextPage"),
        has_prev_page=prev if isinstance(prev, bool) else (page or 1) > 1,
    )


def meta_pagination_page_format(body: Mapping[str, Any]) -> RawPage:
    """A ``data`` array beside ``meta.pagination`` (seed 004).

    ``currentPage`` and ``lastPage`` are required: there is no ``hasNextPage``, so
    the next page exists while ``currentPage < lastPage``.
    """
    items = body.get("data")
    if not isinstance(items, list):
        raise ShapeError("'data' must be an array")
    meta = body.get("meta")
    pagination = meta.get("pagination") if isinstance(meta, dict) else None
    if not isinstance(pagination, dict):
        raise ShapeError("'meta.pagination' must be an object")
    current = _opt_int(pagination, "currentPage")
    last = _opt_int(pagination, "lastPage")
    if current is None or last is None:
        raise ShapeError("'meta.pagination' needs currentPage and lastPage")
    return RawPage(
        items=items,
        total=_opt_int(pagination, "totalItems"),
        page=current,
        limit=_opt_int(pagination, "itemsPerPage"),
        total_pages=last,
        has_next_page=current < last,
        has_prev_page=current > 1,
    )


def build_page(raw: RawPage, number: int, structure_item: Callable[[Any], T]) -> Page[T]:
    """Structure the items of page ``number``, as asked for.

    A server that answers another page than the one asked for is not paginating as
    documented: trusting it could walk the same page forever, so it is a ShapeError.
    """
    if raw.page is not None and raw.page != number:
        raise ShapeError(f"asked for page {number}, the answer is page {raw.page}")
    return Page(
        items=tuple(map(structure_item, raw.items)),
        total=raw.total,
        page=number,
        limit=raw.limit,
        total_pages=raw.total_pages,
        has_next_page=raw.has_next_page,
        has_prev_page=raw.has_prev_page,
    )


def _id_key(item: Any) -> Hashable:
    key: Hashable = (
        item.get("id", item.get("_id")) if isinstance(item, Mapping) else getattr(item, "id", None)
    )
    return key


class Pager(Generic[T]):
    """Every item of a listing, page by page, fetched only when asked for.

    - ``await pager``: the first page, in exactly one request.
    - ``async for item in pager``: every item, following ``hasNextPage``.
    - ``async for page in pager.pages()``: page by page.
    - ``await pager.collect()``: every item as a list.

    Each walk starts at the pager's first page. It stops when ``hasNextPage`` is false,
    a page comes back empty, ``max_items`` items were yielded, or ``totalPages`` is
    reached. Items seen twice (the list shifted under the walk) are yielded once,
    keyed by ``id``. With ``concurrency=N > 1``, once a page has told ``totalPages``,
    up to N later pages are fetched at once; items still come strictly in page order.

    If a page fails, its error propagates and :attr:`next_page` names the first page
    not yet wholly yielded: a new pager from there loses and repeats nothing.
    """

    def __init__(
        self,
        fetch: Callable[[int], Awaitable[Page[T]]],
        *,
        page: int = 1,
        limit: int = 10,
        concurrency: int = 1,
        max_items: int | None = None,
        key: Callable[[T], Hashable] = _id_key,
    ) -> None:
        self._fetch = fetch
        self._start = page
        self._limit = limit
        self._concurrency = concurrency
        self._max_items = max_items
        self._key = key
        self.next_page: int = page
        """The first page number not yet wholly yielded: where a new pager resumes."""

    def __repr__(self) -> str:
        return (
            f"<Pager page={self._start} limit={self._limit} concurrency={self._concurrency}"
            f" max_items={self._max_items} next_page={self.next_page}>"
        )

    def __await__(self) -> Generator[Any, None, Page[T]]:
        return self._first().__await__()

    async def _first(self) -> Page[T]:
        self.next_page = self._start
        page = await self._fetch(self._start)
        if self._max_items is not None and len(page.items) > self._max_items:
            page = attrs.evolve(page, items=page.items[: self._max_items])
        else:
            self.next_page = self._start + 1
        return page

    def __aiter__(self) -> AsyncGenerator[T, None]:
        return self._items()

    async def _items(self) -> AsyncGenerator[T, None]:
        # aclosing: closing this generator closes the walk at once, so the pages it
        # prefetched are cancelled now, not whenever the garbage collector gets to it.
        async with contextlib.aclosing(self._walk()) as walk:
            async for page, complete in walk:
                items = page.items
                if not items:
                    self.next_page = _page_after(page, complete)
                    continue
                last = len(items) - 1
                for index, item in enumerate(items):
                    if index == last:
                        # Set before the last yield: the caller may stop right after it.
                        self.next_page = _page_after(page, complete)
                    yield item

    async def pages(self) -> AsyncGenerator[Page[T], None]:
        """Yield each page in order (deduplicated and capped like the items)."""
        async with contextlib.aclosing(self._walk()) as walk:
            async for page, complete in walk:
                self.next_page = _page_after(page, complete)
                yield page

    async def collect(self) -> list[T]:
        """Every item of the walk, as a list."""
        return [item async for item in self]

    async def _walk(self) -> AsyncGenerator[tuple[Page[T], bool], None]:
        """Pages in order, each with whether it was yielded whole (not cut by max_items)."""
        number = self._start
        self.next_page = number
        remaining = self._max_items
        seen: set[Hashable] = set()
        inflight: deque[tuple[int, asyncio.Task[Page[T]]]] = deque()
        total_pages: int | None = None
        limit = self._limit
        try:
            while remaining is None or remaining > 0:
                if inflight:
                    _, task = inflight.popleft()
                    page = await task
                else:
                    page = await self._fetch(number)
                if page.total_pages is not None:
                    total_pages = page.total_pages
                if page.limit:
                    limit = page.limit
                last = (
                    not page.has_next_page
                    or not page.items
                    or (total_pages is not None and number >= total_pages)
                )
                items = self._fresh(page.items, seen)
                complete = True
                if remaining is not None:
                    if len(items) >= remaining:
                        complete = len(items) == remaining
                        items = items[:remaining]
                        last = True
                    remaining -= len(items)
                if last:
                    self._cancel(inflight)
                elif self._concurrency > 1 and total_pages is not None:
                    self._prefetch(inflight, number, total_pages, remaining, limit)
                if len(items) != len(page.items):
                    page = attrs.evolve(page, items=items)
                # A page number for the bookkeeping that does not trust the fetcher's echo.
                yield attrs.evolve(page, page=number) if page.page != number else page, complete
                if last:
                    return
                number += 1
        finally:
            tasks = [task for _, task in inflight]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    def _fresh(self, items: tuple[T, ...], seen: set[Hashable]) -> tuple[T, ...]:
        keys = list(map(self._key, items))
        if seen.isdisjoint(keys):
            distinct = set(keys)
            if len(distinct) == len(keys) and None not in distinct:
                # The usual page, every id new: set operations in C, no loop here (issue 5).
                seen.update(distinct)
                return items
        fresh = []
        for item, k in zip(items, keys, strict=True):
            if k is None:
                fresh.append(item)
            elif k not in seen:
                seen.add(k)
                fresh.append(item)
        return items if len(fresh) == len(items) else tuple(fresh)

    def _prefetch(
        self,
        inflight: deque[tuple[int, asyncio.Task[Page[T]]]],
        number: int,
        total_pages: int,
        remaining: int | None,
        limit: int,
    ) -> None:
        """Keep up to ``concurrency`` pages after ``number`` in flight, none past the end."""
        highest = total_pages
        if remaining is not None:
            highest = min(highest, number + math.ceil(remaining / max(limit, 1)))
        following = number + 1 + len(inflight)
        while len(inflight) < self._concurrency and following <= highest:
            inflight.append((following, asyncio.ensure_future(self._fetch(following))))
            following += 1

    @staticmethod
    def _cancel(inflight: deque[tuple[int, asyncio.Task[Page[T]]]]) -> None:
        for _, task in inflight:
            task.cancel()


def _page_after(page: Page[Any], complete: bool) -> int:
    """The next page to resume from once ``page`` has been handed over."""
    return page.page + 1 if complete else page.page
