"""Walk stats, the recorder, checkpoints that refuse to be misread, and no-progress walks."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from cellcast_async import DecodeError, Page, Pager, WalkStats
from cellcast_async._walk import (
    DEFAULT_MAX_PAGES,
    WalkRecorder,
    contradicted,
    current_walk,
    page_bound,
)

from .._checkpoint_seal import reseal
from ._support import (
    API_KEY,
    LISTING_URL,
    TOKENS_PATH,
    UNAVAILABLE,
    FakeClock,
    FakeTransport,
    add_listing,
    answer,
    envelope,
    list_data,
    on_clock,
    sent,
    session,
    token_json,
)

NO_PROGRESS = (
    f"GET {TOKENS_PATH}: the server seems to ignore 'page': 3 pages in a row brought no new item"
)


def page_of(
    ids: list[int], number: int, total: int | None, pages: int | None, more: bool
) -> Page[Any]:
    return Page(
        items=tuple({"id": i} for i in ids),
        total=total,
        page=number,
        limit=3,
        total_pages=pages,
        has_next_page=more,
        has_prev_page=number > 1,
    )


async def drain(into: list[str], pager: Pager[Any]) -> None:
    async for token in pager:
        into.append(token.id)


class TestStats:
    """``pager.stats``: live counts of what the walk did."""

    async def test_the_recorder_counts_attempts_retries_429s_and_waits(self) -> None:
        ticks = iter(range(100))

        async def fetch(number: int) -> Page[Any]:
            recorder = current_walk.get()
            assert recorder is not None
            recorder.attempt(status=429, elapsed=0.1, retry=False)
            recorder.waited(1.5)
            recorder.attempt(status=None, elapsed=0.2, retry=True)
            recorder.attempt(status=200, elapsed=0.1, retry=True)
            items = [number * 10 + i for i in range(3)] if number < 3 else [30]
            return page_of(items, number, 7, 3, number < 3)

        pager = Pager(fetch, limit=3, clock=lambda: float(next(ticks)))
        seen = [item async for item in pager]
        assert len(seen) == 7
        assert pager.stats == WalkStats(
            requests=9,
            retries=6,
            rate_limited=3,
            pages=3,
            items=7,
            duplicates_dropped=0,
            refetched_pages=0,
            first_total=7,
            last_total=7,
            waited=4.5,
            elapsed=1.0,
            complete=False,  # no order declared, pages that do not overlap: nothing proven
            waited_sum=4.5,  # waits reported without a start overlap nothing
        )
        assert current_walk.get() is None

    async def test_prefetch_tasks_report_to_the_walk(self) -> None:
        walks = []

        async def fetch(number: int) -> Page[Any]:
            walks.append(current_walk.get())
            return page_of([number * 10 + i for i in range(3)], number, 30, 10, number < 10)

        pager = Pager(fetch, limit=3, concurrency=4)
        await pager.collect()
        assert len(walks) == 10
        assert len({id(w) for w in walks}) == 1
        assert walks[0] is not None

    async def test_a_controller_sets_the_width_and_hears_every_attempt(self) -> None:
        heard: list[tuple[int | None, float]] = []
        in_flight = most = 0

        class Controller:
            limit = 3

            def on_attempt(self, status: int | None, elapsed: float) -> None:
                heard.append((status, elapsed))

        async def fetch(number: int) -> Page[Any]:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            import asyncio

            await asyncio.sleep(0)
            in_flight -= 1
            recorder = current_walk.get()
            assert recorder is not None
            recorder.attempt(status=200, elapsed=0.5, retry=False)
            return page_of([number * 10 + i for i in range(3)], number, 30, 10, number < 10)

        await Pager._wired(fetch, limit=3, concurrency=Controller()).collect()
        assert most == 3
        assert heard == [(200, 0.5)] * 10

    async def test_duplicates_and_totals(self) -> None:
        with aioresponses() as m:
            # Same createdAt, ids descending: newest first as the sandbox breaks ties.
            listing = [token_json(n) for n in range(7, 0, -1)]
            add_listing(m, listing, limit=3)
            async with session() as cc:
                pager = cc.tokens.list(limit=3)
                await pager.collect()
        assert (pager.stats.pages, pager.stats.items, pager.stats.first_total) == (3, 7, 7)
        assert pager.stats.complete is True  # quiet, newest first, concurrency 1: no extra read
        assert len(sent(m)) == 3


class TestWaitedIsWallClock:
    """``waited`` is the union of the wait intervals; ``waited_sum`` adds them up."""

    def test_overlapping_waits_count_once(self) -> None:
        recorder = WalkRecorder(WalkStats())
        recorder.waited(2.0, start=10.0)  # 10-12
        recorder.waited(2.0, start=11.0)  # 11-13: one more second
        recorder.waited(1.0, start=15.0)  # 15-16
        recorder.waited(4.0, start=9.0)  # 9-13, reported late: one more second
        recorder.waited(0.5, start=12.5)  # within 9-13
        assert recorder.waited_seconds == pytest.approx(5.0)
        assert recorder.waited_sum == pytest.approx(9.5)

    def test_waits_go_on_from_a_checkpoints(self) -> None:
        recorder = WalkRecorder(WalkStats(waited=3.0, waited_sum=7.0))
        recorder.waited(1.0, start=0.0)
        recorder.waited(1.0, start=0.5)
        recorder.waited(2.0)  # no start: overlaps nothing
        assert recorder.waited_seconds == pytest.approx(3.0 + 1.5 + 2.0)
        assert recorder.waited_sum == pytest.approx(11.0)

    @pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf")])
    def test_no_wait_or_a_bad_one_counts_nothing(self, seconds: float) -> None:
        recorder = WalkRecorder(WalkStats())
        recorder.waited(seconds, start=1.0)
        assert (recorder.waited_seconds, recorder.waited_sum) == (0.0, 0.0)

    def test_memory_stays_bounded(self) -> None:
        recorder = WalkRecorder(WalkStats())
        for n in range(10_000):
            recorder.waited(0.5, start=float(n))  # disjoint: 10,000 intervals
        assert recorder.waited_seconds == pytest.approx(5_000.0)
        assert len(recorder._intervals) <= 256

    async def test_concurrent_pages_waiting_together(self) -> None:
        """Eight pages in flight each wait 1 s at the same moment: 1 s, not 8."""
        import asyncio

        now = 100.0
        gate = asyncio.Event()
        arrived = 0

        async def fetch(number: int) -> Page[Any]:
            nonlocal arrived
            recorder = current_walk.get()
            assert recorder is not None
            if number > 1:
                arrived += 1
                if arrived == 8:
                    gate.set()
                await gate.wait()  # all eight wait over the same second
                recorder.waited(1.0, start=now)
            recorder.attempt(status=200, elapsed=0.0, retry=False)
            return page_of([number * 10 + i for i in range(3)], number, 27, 9, number < 9)

        pager = Pager(fetch, limit=3, concurrency=8, clock=lambda: now)
        await pager.collect()
        assert pager.stats.waited == pytest.approx(1.0)
        assert pager.stats.waited_sum == pytest.approx(8.0)


class TestBoundsAndContradictions:
    """The pure rules behind ``max_pages`` and the total check on ``complete``."""

    @pytest.mark.parametrize(
        ("max_pages", "total", "total_pages", "limit", "bound"),
        [
            (7, 10**6, 10**5, 10, 7),  # the caller's word wins
            (None, 35, None, 10, 108),  # 4 pages: twice that plus 100
            (None, 0, None, 10, 100),
            (None, 1000, 3, 100, 120),  # the total, not the page count, when both come
            (None, None, 9, 10, 118),
            (None, None, None, 10, DEFAULT_MAX_PAGES),
            (None, 35, None, 0, 170),  # a limit of 0 is read as 1
        ],
    )
    def test_page_bound(
        self,
        max_pages: int | None,
        total: int | None,
        total_pages: int | None,
        limit: int,
        bound: int,
    ) -> None:
        assert page_bound(max_pages, total, total_pages, limit) == bound

    @pytest.mark.parametrize(
        ("low", "high", "items", "verdict"),
        [
            (35, 35, 10, True),  # a steady total the walk fell short of
            (35, 35, 35, False),
            (35, 35, 40, False),  # more than the total: churn, not a contradiction
            (30, 35, 10, False),  # the total moved: the proof decides
            (None, None, 0, False),  # no total: nothing to contradict
        ],
    )
    def test_contradicted(
        self, low: int | None, high: int | None, items: int, verdict: bool
    ) -> None:
        assert contradicted(low, high, items) is verdict

    async def test_a_steady_total_the_walk_falls_short_of(self) -> None:
        """Newest first, one page, ``hasNextPage: false`` and ``total: 35``: not complete."""

        async def fetch(number: int) -> Page[Any]:
            return page_of([3, 2, 1], number, 35, None, False)

        pager = Pager(fetch, limit=3, key=lambda i: i["id"], order="newest_first")
        assert len(await pager.collect()) == 3
        assert pager.stats.complete is False

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (0, "max_pages must be >= 1, got 0"),
            (-1, "max_pages must be >= 1, got -1"),
            (True, "max_pages must be an int, not bool"),
            (2.5, "max_pages must be an int, not float"),
            ("3", "max_pages must be an int, not str"),
        ],
    )
    def test_pager_refuses_a_bad_max_pages(self, value: Any, message: str) -> None:
        """The same check, and message, as ``cc.tokens.list(max_pages=...)``."""

        async def fetch(number: int) -> Page[Any]:
            raise AssertionError("nothing is fetched")

        with pytest.raises(ValueError, match=re.escape(message) + "$"):
            Pager(fetch, max_pages=value)


class TestNoProgress:
    """A server that ignores ``page`` ends in a DecodeError; a shifting list still finishes."""

    @pytest.mark.parametrize("concurrency", [1, 8])
    @pytest.mark.parametrize("total_pages", [None, 10**9])
    async def test_same_items_on_every_page(
        self, concurrency: int, total_pages: int | None
    ) -> None:
        with aioresponses() as m:

            def same(url: URL, **kwargs: Any) -> CallbackResult:
                number = int(url.query["page"])
                data = list_data(
                    [token_json(n) for n in range(1, 4)],
                    page=number,
                    limit=3,
                    total=9,
                    total_pages=3,
                )
                data["hasNextPage"] = True
                if total_pages is None:
                    del data["totalPages"]
                else:
                    data["totalPages"] = total_pages
                return CallbackResult(status=200, payload=envelope(data))

            m.get(LISTING_URL, callback=same, repeat=True)
            async with session() as cc:
                pager = cc.tokens.list(limit=3, concurrency=concurrency)
                seen: list[str] = []
                with pytest.raises(DecodeError) as info:
                    await drain(seen, pager)
        assert str(info.value) == NO_PROGRESS
        assert seen == ["tok001", "tok002", "tok003"]
        assert pager.next_page == 4  # pages 2 and 3 brought nothing: handed over whole
        assert len(sent(m)) <= 4 + concurrency

    async def test_a_list_that_shifts_by_a_whole_page_still_finishes(self) -> None:
        """Three tokens created in front between pages 1 and 2: page 2 repeats page 1."""
        listing = list(range(100, 90, -1))  # ids, newest first
        calls = 0

        async def fetch(number: int) -> Page[Any]:
            nonlocal calls
            calls += 1
            if calls == 2:
                listing[:0] = [203, 202, 201]
            chunk = listing[(number - 1) * 3 : number * 3]
            pages = -(-len(listing) // 3)
            return page_of(chunk, number, len(listing), pages, number < pages)

        pager = Pager(
            fetch, limit=3, key=lambda i: i["id"], order="newest_first", order_key=lambda i: i["id"]
        )
        seen = [item["id"] async for item in pager]
        assert seen == list(range(100, 90, -1))
        assert pager.stats.duplicates_dropped == 3
        assert pager.stats.complete is True


class TestCheckpointFormat:
    """A mangled checkpoint, or one from another version, is a ValueError naming what is wrong."""

    async def _checkpoint(self) -> str:
        with aioresponses() as m:
            add_listing(m, [token_json(n) for n in range(1, 8)], limit=3)
            async with session() as cc:
                pager = cc.tokens.list(limit=3)
                await pager.pages().__anext__()
                return pager.checkpoint()

    @staticmethod
    def _resign(outer: dict[str, Any]) -> str:
        return reseal(outer, API_KEY)

    async def resume_error(self, text: object) -> str:
        async with session() as cc:
            with pytest.raises(ValueError, match=r"^checkpoint") as info:
                cc.tokens.resume(text)  # type: ignore[arg-type]
        return str(info.value)

    async def test_a_checkpoint_without_waited_sum_reads_its_waited_as_both(self) -> None:
        outer = json.loads(await self._checkpoint())
        outer["state"]["stats"]["waited"] = 2.5
        del outer["state"]["stats"]["waited_sum"]
        async with session() as cc:
            pager = cc.tokens.resume(self._resign(outer))
        assert (pager.stats.waited, pager.stats.waited_sum) == (2.5, 2.5)

    @pytest.mark.parametrize("segment", ["..", ".", "%2E%2E", "%2e", ".%2E"])
    async def test_a_dot_sub_account_in_the_listing_is_refused(self, segment: str) -> None:
        outer = json.loads(await self._checkpoint())
        outer["state"]["listing"]["path"] = f"{TOKENS_PATH}/sub-account/{segment}"
        with aioresponses() as m:
            message = await self.resume_error(self._resign(outer))
        value = segment.replace("%2E", ".").replace("%2e", ".")
        assert message == f"checkpoint's sub-account id is a dot segment: {value!r}"
        assert sent(m) == []

    async def test_round_trip_needs_no_request(self) -> None:
        text = await self._checkpoint()
        with aioresponses() as m:
            async with session() as cc:
                pager = cc.tokens.resume(text)
        assert sent(m) == []
        assert pager.next_page == 2

    @pytest.mark.parametrize(
        ("mangle", "message"),
        [
            (lambda t: 42, "checkpoint must be a str, not int"),
            (lambda t: t[:-5], "checkpoint is not a cellcast_async checkpoint: not JSON"),
            (lambda t: "[]", "checkpoint is not a cellcast_async checkpoint: no 'format' marker"),
            (
                lambda t: t.replace('"version":2', '"version":1'),
                "checkpoint is format version 1; this cellcast_async reads version 2",
            ),
            (
                lambda t: t.replace('"page":2', '"page":3'),
                "checkpoint is not authentic: it was changed after it was written",
            ),
        ],
    )
    async def test_mangled(self, mangle: Any, message: str) -> None:
        text = await self._checkpoint()
        assert await self.resume_error(mangle(text)) == message

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("page", 0, "checkpoint field 'page' must be an integer >= 1, got 0"),
            ("limit", "3", "checkpoint field 'limit' must be an integer >= 1, got '3'"),
            (
                "remaining",
                -1,
                "checkpoint field 'remaining' must be null or an integer >= 0, got -1",
            ),
            (
                "partial",
                [None],
                "checkpoint field 'partial' must be a list of string or integer ids, got [None]",
            ),
            ("done", 1, "checkpoint field 'done' must be true or false, got 1"),
            ("stats", {}, "checkpoint field 'stats' must hold exactly the WalkStats fields"),
            ("listing", None, "checkpoint is not from cc.tokens: it names no listing"),
            (
                "listing",
                {"path": "/api/v1/other", "params": {"limit": "3"}},
                "checkpoint is for '/api/v1/apiClient/token' ... ",
            ),
        ],
    )
    async def test_bad_fields(self, field: str, value: Any, message: str) -> None:
        outer = json.loads(await self._checkpoint())
        outer["state"][field] = value
        if field == "listing" and value is not None:
            message = "checkpoint is for '/api/v1/other', not a token listing"
        assert await self.resume_error(self._resign(outer)) == message

    async def test_missing_field(self) -> None:
        outer = json.loads(await self._checkpoint())
        del outer["state"]["frontier"]
        assert (
            await self.resume_error(self._resign(outer)) == "checkpoint field 'frontier' is missing"
        )

    async def test_unknown_parameter_and_limit_mismatch(self) -> None:
        outer = json.loads(await self._checkpoint())
        outer["state"]["listing"]["params"]["page"] = "9"
        assert await self.resume_error(self._resign(outer)) == (
            "checkpoint has unknown listing parameters: ['page']"
        )
        outer = json.loads(await self._checkpoint())
        outer["state"]["limit"] = 4
        assert await self.resume_error(self._resign(outer)) == (
            "checkpoint's 'limit' does not match its listing's"
        )


class TestInjectedClock:
    """``CellcastSession(clock=, sleep=)`` reaches ``cc.tokens`` pagers: ``waited`` and
    ``elapsed`` are read on the same time line (once ``waited 31 s`` in ``0.006 s``)."""

    async def test_waited_is_within_elapsed(self) -> None:
        clock = FakeClock()
        page = envelope(list_data([token_json(1)], limit=1, total_pages=1))
        transport = FakeTransport(answer(UNAVAILABLE, status=503), answer(page))
        async with on_clock(clock, transport=transport) as cc:
            pager = cc.tokens.list(limit=1)
            assert [t.id async for t in pager] == ["tok001"]

        (wait,) = clock.waits  # one backoff before the retry, on the virtual clock
        assert pager.stats.retries == 1
        assert pager.stats.waited == pytest.approx(wait)
        assert pager.stats.elapsed == pytest.approx(wait)
