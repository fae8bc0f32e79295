"""Pages and the pager that walks them.

A *page format* is a pure function from a decoded JSON body to a :class:`RawPage`;
two ship here: Cellcast's (``data.items`` + ``data.hasNextPage``, seed 000) and the
``meta.pagination`` shape of seed 004. A :class:`Pager` is an async generator over
pages (gidgethub ``getiter`` style) and its items are a flat loop over that.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import operator
import time
from collections import deque
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Hashable,
    Mapping,
)
from typing import Any, Final, Generic, Literal, TypeVar

import attrs

from ._exceptions import CellcastError, DecodeError, ShapeError
from ._options import Clock, check_max_pages
from ._seal import CheckpointKey
from ._tracing import WalkSpan
from ._walk import (
    NO_PROGRESS_PAGES,
    ConcurrencyController,
    Listing,
    NoProgress,
    Order,
    Read,
    WalkRecorder,
    WalkState,
    WalkStats,
    advance,
    contradicted,
    current_walk,
    encode_checkpoint,
    page_bound,
    verified,
)

__all__ = [
    "Page",
    "Pager",
    "RawPage",
    "Resume",
    "build_page",
    "cellcast_page_format",
    "meta_pagination_page_format",
]

T = TypeVar("T")

# Items handed to an `async for` between two turns of the event loop (a few ms of a
# consumer's work at most; a page of up to this many never yields to the loop mid-way).
_ITEMS_BETWEEN_YIELDS: Final = 500


@attrs.frozen(slots=True)
class Page(Generic[T]):
    """One page of results: its items and what the server said about the whole list.

    ``items``: this page's items, in the server's order. ``total``: items in the whole
    list (``None`` when the server does not say). ``page``: this page's number, from 1.
    ``limit``: the page size asked for. ``total_pages``: pages in the whole list, or
    ``None``. ``has_next_page``, ``has_prev_page``: whether the server says there is a
    page after (before) this one. ``len(page)`` and ``iter(page)`` go over ``items``.
    """

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
    """A page as a page format reads it: items still JSON, page facts checked.

    The fields mean what :class:`Page`'s do; ``page`` is ``None`` when the body does not
    say which page it is. A page format (:func:`cellcast_page_format`,
    :func:`meta_pagination_page_format`) returns one; a ``fetch`` for :class:`Pager`
    structures its items and returns a :class:`Page`.
    """

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


Resume = tuple[WalkState, tuple[Hashable, ...], WalkStats]
"""A decoded checkpoint: the walk's state, ids already handed over of its page, its stats."""

_Fetched = tuple[Page[T], int, int]


def _handed(page: Page[T], items: tuple[T, ...], number: int) -> Page[T]:
    """The page as handed over: only its fresh items, numbered as asked, not as echoed."""
    if len(items) != len(page.items):
        page = attrs.evolve(page, items=items)
    # A page number for the bookkeeping that does not trust the fetcher's echo.
    if page.page != number:
        page = attrs.evolve(page, page=number)
    return page


class Pager(Generic[T]):
    """Every item of a listing, page by page, fetched only when asked for.

    - ``await pager``: the first page, in exactly one request.
    - ``async for item in pager``: every item, following ``hasNextPage``.
    - ``async for page in pager.pages()``: page by page.
    - ``await pager.collect()``: every item as a list.
    - ``pager.stats``: what the walk did and whether it is complete (README "Reliability").
    - ``pager.checkpoint()``: where a walk in another process resumes (README "Long audits").

    Each walk starts at the pager's first page (or its checkpoint). It stops when
    ``hasNextPage`` is false, a page comes back empty, ``max_items`` items were yielded, or
    ``totalPages`` is reached. Items seen twice (the list shifted under the walk) are
    yielded once, keyed by ``id``. With ``concurrency=N > 1``, once a page has told
    ``totalPages``, up to N pages are fetched at once; items still come strictly in page
    order. When the list shrinks under a walk, pages already read may be read again to find
    what slid back onto them (see ``cellcast_async._walk``); the very same page (same ids,
    same ``total``) three times in a row is a ``DecodeError``: the server seems to ignore
    ``page``. A walk reads at most ``max_pages`` pages forward from its first (default:
    twice the pages the first ``total`` needs, plus 100; from ``totalPages`` without a
    ``total``, else 10,000); a server still saying ``hasNextPage`` there is a
    ``DecodeError`` too (README "Paging").

    If a page fails, its error propagates and :attr:`next_page` names the first page
    not yet wholly yielded: a new pager from there loses and repeats nothing.

    ``cc.tokens.list()`` makes the pagers of this API. For another paged API, build one
    from ``fetch(page_number) -> Page`` with ``page`` (the first page), ``limit`` (the
    page size), ``concurrency`` (pages in flight), ``max_items`` (a cap on the items),
    ``key`` (what identifies an item; its ``id`` by default), ``order`` and ``order_key``
    (``order="newest_first"`` with a function giving an item's creation time lets the walk
    prove completeness, README "Reliability"), ``clock`` (what ``stats.elapsed`` is
    measured on) and ``max_pages``.
    """

    next_page: int
    """The first page number not yet wholly yielded: where a new pager resumes."""

    def __init__(
        self,
        fetch: Callable[[int], Awaitable[Page[T]]],
        *,
        page: int = 1,
        limit: int = 10,
        concurrency: int = 1,
        max_items: int | None = None,
        key: Callable[[T], Hashable] = _id_key,
        order: Literal["newest_first", "oldest_first"] | None = None,
        order_key: Callable[[T], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_pages: int | None = None,
    ) -> None:
        # Only public types here (help(Pager), the reference): the SDK's own wiring for
        # the pagers cc.tokens makes goes through _wired (README "Paging").
        self._setup(
            fetch,
            page=page,
            limit=limit,
            concurrency=concurrency,
            max_items=max_items,
            key=key,
            order=order,
            order_key=order_key,
            clock=clock,
            max_pages=check_max_pages(max_pages),
        )

    @classmethod
    def _wired(
        cls,
        fetch: Callable[[int], Awaitable[Page[T]]],
        *,
        page: int = 1,
        limit: int = 10,
        concurrency: int | ConcurrencyController = 1,
        max_items: int | None = None,
        key: Callable[[T], Hashable] = _id_key,
        listing: Listing | None = None,
        order: Order | None = None,
        order_key: Callable[[T], Any] | None = None,
        clock: Clock = time.monotonic,
        resume: Resume | None = None,
        span: Callable[[], WalkSpan] | None = None,
        checkpoint_key: CheckpointKey | None = None,
        max_pages: int | None = None,
    ) -> Pager[T]:
        """A pager as ``cc.tokens`` makes one, its options already checked there: a
        controller in ``concurrency`` is how ``concurrency="auto"`` arrives, ``listing``
        and ``checkpoint_key`` make ``checkpoint()`` possible, ``resume`` is where a
        checkpoint left off, ``span`` the walk's tracing span."""
        pager: Pager[T] = cls.__new__(cls)
        pager._setup(
            fetch,
            page=page,
            limit=limit,
            concurrency=concurrency,
            max_items=max_items,
            key=key,
            listing=listing,
            order=order,
            order_key=order_key,
            clock=clock,
            resume=resume,
            span=span,
            checkpoint_key=checkpoint_key,
            max_pages=max_pages,
        )
        return pager

    def _setup(
        self,
        fetch: Callable[[int], Awaitable[Page[T]]],
        *,
        page: int,
        limit: int,
        concurrency: int | ConcurrencyController,
        max_items: int | None,
        key: Callable[[T], Hashable],
        order: Order | None,
        order_key: Callable[[T], Any] | None,
        clock: Clock,
        max_pages: int | None,
        listing: Listing | None = None,
        resume: Resume | None = None,
        span: Callable[[], WalkSpan] | None = None,
        checkpoint_key: CheckpointKey | None = None,
    ) -> None:
        self._max_pages = max_pages
        self._fetch = fetch
        self._checkpoint_key = checkpoint_key
        self._concurrency = concurrency
        self._key = key
        self._order = order
        self._order_key = order_key
        self._clock = clock
        self._span = span or WalkSpan  # WalkSpan itself is the span that records nothing
        self._listing = listing
        if resume is None:
            width: int | Literal["auto"] = concurrency if isinstance(concurrency, int) else "auto"
            resume = (
                WalkState(listing, limit, page, page, max_items, concurrency=width),
                (),
                WalkStats(),
            )
        self._initial, self._initial_partial, self._base = resume
        self._start = self._initial.page
        self._limit = self._initial.limit
        self._max_items = self._initial.remaining
        self.next_page = self._start
        self._reset()

    def __repr__(self) -> str:
        width = self._concurrency if isinstance(self._concurrency, int) else "auto"
        return (
            f"<Pager page={self._start} limit={self._limit} concurrency={width}"
            f" max_items={self._max_items} next_page={self.next_page}>"
        )

    # --- what a walk did and where it stands --------------------------------------------

    def _reset(self) -> None:
        controller = None if isinstance(self._concurrency, int) else self._concurrency
        self._recorder = WalkRecorder(self._base, controller)
        self._committed = self._initial
        # The ids handed over of the page being handed out: those from before a checkpoint,
        # then the first ``_handed`` of ``_current``.
        self._partial: tuple[Hashable, ...] = self._initial_partial
        self._current: tuple[T, ...] = ()
        self._handed = 0
        self._pages = self._base.pages
        self._items_out = self._base.items
        self._duplicates = self._base.duplicates_dropped
        self._refetched = self._base.refetched_pages
        self._first_total = self._base.first_total
        self._last_total = self._base.last_total
        # The least and greatest ``total`` answers reported (README "Walk stats").
        known = [t for t in (self._base.first_total, self._base.last_total) if t is not None]
        self._low_total: int | None = min(known, default=None)
        self._high_total: int | None = max(known, default=None)
        self._began: float | None = None
        self._ended: float | None = None
        self._edge: tuple[int, Any] | None = None  # (page, rank of its last item)

    @property
    def stats(self) -> WalkStats:
        """What the latest walk did so far (counts go on from a checkpoint's)."""
        elapsed = self._base.elapsed
        if self._began is not None:
            now = self._ended if self._ended is not None else self._clock()
            elapsed += max(0.0, now - self._began)
        r = self._recorder
        items = self._items_out + self._handed
        complete = (
            self._committed.done
            and self._committed.complete
            and not contradicted(self._low_total, self._high_total, items)
        )
        return WalkStats(
            requests=r.requests,
            retries=r.retries,
            rate_limited=r.rate_limited,
            pages=self._pages,
            items=items,
            duplicates_dropped=self._duplicates,
            refetched_pages=self._refetched,
            first_total=self._first_total,
            last_total=self._last_total,
            waited=r.waited_seconds,
            elapsed=elapsed,
            complete=complete,
            waited_sum=r.waited_sum,
        )

    def checkpoint(self) -> str:
        """Opaque text from which ``cc.tokens.resume()`` continues this walk, in any process.

        Valid at any moment: it names the first page not wholly handed over and the ids
        of that page already handed over, so a resumed walk repeats and loses nothing. It
        holds the listing's path and filters, ids and counts: no key, token or host; it is
        sealed with a MAC under the session's key, so only that key resumes it (README
        "Long audits"). A pager not made by ``cc.tokens`` has no key: ``ValueError``.
        """
        key = self._checkpoint_key
        if key is None:
            raise ValueError(
                "this pager makes no checkpoints: only pagers from cc.tokens do, sealed with"
                " the session's key"
            )
        handed = tuple(map(self._key, self._current[: self._handed]))
        # Only the ids handed over since the last commit count against max_items: those
        # inherited from a checkpoint (``_partial``) were counted when it was written.
        return encode_checkpoint(
            self._committed, self._partial + handed, self.stats, key=key, taken=len(handed)
        )

    # --- the walk -----------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, Page[T]]:
        """``await pager``: the pager's first page, in exactly one request."""
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
        """``async for item in pager``: every item of a fresh walk, in page order."""
        return self._items()

    async def _items(self) -> AsyncGenerator[T, None]:
        # aclosing: closing this generator closes the walk at once, so the pages it
        # prefetched are cancelled now, not whenever the garbage collector gets to it.
        async with contextlib.aclosing(self._walk()) as walk:
            async for page, state, cut in walk:
                items = page.items
                if not items:
                    self._commit(page, state, cut)
                    continue
                # Only a count per item (README "Performance" budget): checkpoint() turns the first
                # ``_handed`` items of ``_current`` into ids when it is asked for.
                self._current = items
                last = len(items) - 1
                for start in range(0, last, _ITEMS_BETWEEN_YIELDS):
                    if start:
                        # A consumer's `async for` over a big page never suspends by
                        # itself: give the loop a turn between slices (README "Performance").
                        await asyncio.sleep(0)
                    for item in items[start : min(start + _ITEMS_BETWEEN_YIELDS, last)]:
                        self._handed += 1
                        yield item
                # Committed before the last yield: the caller may stop right after it.
                self._commit(page, state, cut)
                self._items_out += 1
                yield items[-1]

    async def pages(self) -> AsyncGenerator[Page[T], None]:
        """Yield each page in order (deduplicated and capped like the items)."""
        async with contextlib.aclosing(self._walk()) as walk:
            async for page, state, cut in walk:
                self._commit(page, state, cut)
                self._items_out += len(page.items)
                yield page

    async def collect(self) -> list[T]:
        """Every item of the walk, as a list."""
        return [item async for item in self]

    def _commit(self, page: Page[T], state: WalkState, cut: bool) -> None:
        """``page`` is wholly handed over: a checkpoint now resumes where ``state`` says."""
        self._committed = state
        self._items_out += self._handed
        self._partial = ()
        self._current = ()
        self._handed = 0
        self._pages += 1
        self.next_page = max(self.next_page, page.page if cut else page.page + 1)
        if state.done and not state.verify:
            self._ended = self._clock()

    def _saw_total(self, total: int | None) -> None:
        self._last_total = total
        if total is not None:
            low, high = self._low_total, self._high_total
            self._low_total = total if low is None else min(low, total)
            self._high_total = total if high is None else max(high, total)

    def _width(self) -> int:
        concurrency = self._concurrency
        return concurrency if isinstance(concurrency, int) else max(1, concurrency.limit)

    async def _timed(
        self, number: int, recorder: WalkRecorder, ticks: itertools.count[int]
    ) -> _Fetched[T]:
        """Fetch page ``number`` with the walk's recorder set, noting when it went and came."""
        # Set here, in the coroutine a prefetch task runs, so every attempt of this
        # page reports to this walk whichever task awaits it.
        token = current_walk.set(recorder)
        try:
            sent = next(ticks)
            page = await self._fetch(number)
            return page, sent, next(ticks)
        finally:
            current_walk.reset(token)

    def _read(
        self,
        page: Page[T],
        number: int,
        sent: int,
        received: int,
        fresh: tuple[T, ...],
        keys: tuple[Hashable, ...],
    ) -> Read:
        return Read(
            page=number,
            keys=keys,
            total=page.total,
            total_pages=page.total_pages,
            has_next=page.has_next_page,
            limit=page.limit or self._limit,
            sent=sent,
            received=received,
            sorted_ok=self._sorted(page, number, fresh),
        )

    def _sorted(self, page: Page[T], number: int, fresh: tuple[T, ...]) -> bool:
        """Whether ``page`` looks ordered as declared (README "Reliability").

        Within the page, ranks must run the declared way. Across the boundary with the
        page read just before it, an item not seen before must rank after that page's last
        item: in a list ordered as declared, one ranking before it stood on a page already
        read and was not yielded, which only a list in another order (or a walk that is
        missing items anyway) shows. Either failure only withdraws the claims that rest on
        the order, so a false alarm costs a ``complete=False``, never a lie.
        """
        rank = self._order_key
        if self._order is None or rank is None or not page.items:
            return True
        ranks = list(map(rank, page.items))
        before = self._edge[1] if self._edge is not None and self._edge[0] == number - 1 else None
        self._edge = (number, ranks[-1])
        # map(operator.ge, ...) runs the comparisons in C. Once the page is sorted, its
        # first new item ranks highest (or lowest) among the new ones: one more comparison.
        if self._order == "newest_first":
            if not all(map(operator.ge, ranks, ranks[1:])):
                return False
            return before is None or not fresh or rank(fresh[0]) <= before
        if not all(map(operator.le, ranks, ranks[1:])):
            return False
        return before is None or not fresh or rank(fresh[0]) >= before

    async def _walk(self) -> AsyncGenerator[tuple[Page[T], WalkState, bool], None]:
        """Pages in order, each with the state once it is handed over and whether it was cut."""
        self._reset()
        self.next_page = self._start
        self._began = self._clock()
        state = self._initial
        recorder = self._recorder
        ticks = itertools.count()
        seen: set[Hashable] = {*state.prev_keys, *self._initial_partial}
        skip = len(self._initial_partial)  # handed over before the checkpoint: not duplicates
        inflight: deque[tuple[int, asyncio.Task[_Fetched[T]]]] = deque()
        total_pages: int | None = None
        # The safety bound on forward pages (README "Paging"): from the caller, or from
        # the walk's first total (a resumed walk's is in its checkpoint's stats).
        bound: int | None = self._max_pages
        if bound is None and self._first_total is not None:
            bound = page_bound(None, self._first_total, None, self._limit)
        # The walk's span (README "OpenTelemetry"): page calls are made inside activate(),
        # so they and the prefetch tasks created there become its children.
        span = self._span()
        failure: BaseException | None = None
        try:
            while not state.done and (state.remaining is None or state.remaining > 0):
                number = state.page
                if bound is not None and number > state.forward and number >= state.start + bound:
                    raise self._bound_error(bound)
                page, sent, received = await self._next(number, inflight, span, recorder, ticks)
                if page.total_pages is not None:
                    total_pages = page.total_pages
                keys = tuple(map(self._key, page.items))
                items = self._fresh(page.items, keys, seen)
                read = self._read(page, number, sent, received, items, keys)
                fresh = len(items)
                self._count(page, number, state, fresh=fresh, skip=skip)
                skip = 0
                if bound is None:
                    limit = min(self._limit, page.limit or self._limit)
                    bound = page_bound(None, page.total, page.total_pages, limit)
                if state.remaining is not None and fresh > state.remaining:
                    items = items[: state.remaining]
                state = self._advance(state, read, fresh=fresh, taken=len(items))
                self._refill(inflight, state, total_pages, bound, span, recorder, ticks)
                page = _handed(page, items, number)
                span.page(number=number, items=len(page.items), total=page.total)
                yield page, state, fresh > len(items)
            if state.verify:
                with span.activate():
                    state = await self._verify(state, recorder, ticks)
                self._committed = state
                self._ended = self._clock()
        except BaseException as exc:  # recorded by class only; leaving early is no failure
            failure = exc
            raise
        finally:
            span.end(error=failure)
            tasks = [task for _, task in inflight]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _next(
        self,
        number: int,
        inflight: deque[tuple[int, asyncio.Task[_Fetched[T]]]],
        span: WalkSpan,
        recorder: WalkRecorder,
        ticks: itertools.count[int],
    ) -> _Fetched[T]:
        """Page ``number``: the one fetched ahead if it is next in flight, else read now."""
        if inflight and inflight[0][0] == number:
            return await inflight.popleft()[1]
        # Read again from an earlier page: what was fetched ahead is dropped.
        await self._drop(inflight)
        with span.activate():
            return await self._timed(number, recorder, ticks)

    def _refill(
        self,
        inflight: deque[tuple[int, asyncio.Task[_Fetched[T]]]],
        state: WalkState,
        total_pages: int | None,
        bound: int | None,
        span: WalkSpan,
        recorder: WalkRecorder,
        ticks: itertools.count[int],
    ) -> None:
        """After a page: nothing more in flight once the walk is done, else topped up."""
        if state.done:
            self._cancel(inflight)
        elif total_pages is not None and not state.no_progress:
            # Not topped up while pages repeat: a server that ignores ``page``
            # costs the pages already in flight, no more (README "Paging").
            highest = total_pages if bound is None else state.start + bound - 1
            with span.activate():
                self._prefetch(inflight, state, min(total_pages, highest), recorder, ticks)

    def _count(
        self, page: Page[T], number: int, state: WalkState, *, fresh: int, skip: int
    ) -> None:
        """The walk's statistics for one page read (``skip``: items handed over before the
        checkpoint, not duplicates)."""
        dropped = len(page.items) - fresh
        if skip:
            dropped = max(0, dropped - skip)
        self._duplicates += dropped
        if number <= state.forward:
            self._refetched += 1
        if self._first_total is None and state.reads == 0:
            self._first_total = page.total
        self._saw_total(page.total)

    def _advance(self, state: WalkState, read: Read, *, fresh: int, taken: int) -> WalkState:
        """:func:`advance`, with a server that ignores ``page`` reported as a DecodeError."""
        try:
            return advance(state, read, fresh=fresh, taken=taken, order=self._order)
        except NoProgress:
            path = self._listing.path if self._listing is not None else ""
            raise DecodeError(
                f"the server seems to ignore 'page': {NO_PROGRESS_PAGES} pages in a row"
                " brought no new item",
                method="GET",
                path=path,
            ) from None

    async def _verify(
        self, state: WalkState, recorder: WalkRecorder, ticks: itertools.count[int]
    ) -> WalkState:
        """Read page 1 once more to prove a newest-first list stayed quiet (``_walk``)."""
        try:
            page, sent, received = await self._timed(1, recorder, ticks)
        except CellcastError:
            return attrs.evolve(state, verify=False, complete=False)
        self._saw_total(page.total)
        keys = tuple(map(self._key, page.items))
        return verified(state, self._read(page, 1, sent, received, (), keys))

    def _bound_error(self, bound: int) -> DecodeError:
        path = self._listing.path if self._listing is not None else ""
        how = "max_pages" if self._max_pages is not None else "the default max_pages"
        return DecodeError(
            f"the server still says there are more pages after {bound} ({how}): the list"
            " grows as fast as it is read, or the server keeps inventing items",
            method="GET",
            path=path,
        )

    def _fresh(
        self, items: tuple[T, ...], keys: tuple[Hashable, ...], seen: set[Hashable]
    ) -> tuple[T, ...]:
        if seen.isdisjoint(keys):
            distinct = set(keys)
            if len(distinct) == len(keys) and None not in distinct:
                # The usual page, every id new: set operations in C, no loop here.
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
        inflight: deque[tuple[int, asyncio.Task[_Fetched[T]]]],
        state: WalkState,
        total_pages: int,
        recorder: WalkRecorder,
        ticks: itertools.count[int],
    ) -> None:
        """Keep up to ``concurrency`` pages from ``state.page`` on in flight, none past the end."""
        width = self._width()
        if width <= 1:
            return
        highest = total_pages
        limit = max(self._limit, 1)
        if state.remaining is not None:
            highest = min(highest, state.page - 1 + math.ceil(state.remaining / limit))
        following = state.page + len(inflight)
        while len(inflight) < width and following <= highest:
            task = asyncio.ensure_future(self._timed(following, recorder, ticks))
            inflight.append((following, task))
            following += 1

    @staticmethod
    async def _drop(inflight: deque[tuple[int, asyncio.Task[_Fetched[T]]]]) -> None:
        tasks = [task for _, task in inflight]
        inflight.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def _cancel(inflight: deque[tuple[int, asyncio.Task[_Fetched[T]]]]) -> None:
        for _, task in inflight:
            task.cancel()
