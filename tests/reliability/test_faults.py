"""Faults injected by the sandbox: nothing lost, nothing duplicated, nothing hangs or lingers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import time
import warnings
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from cellcast_async import (
    ApiToken,
    CellcastSession,
    DecodeError,
    NotFoundError,
    Pager,
    RateLimitError,
    ServerError,
    TimeoutError,
    TransportError,
)
from cellcast_async.sandbox import Faults, Sandbox

from .._threaded_sandbox import ThreadedSandbox
from ._support import TOKENS_PATH, RawApp, dumps, envelope, raises_timeout, token_item

if TYPE_CHECKING:
    from ..conftest import FakeSleep

FAULT_KINDS = ("500", "502", "503", "429", "drop")


def session(sb: Sandbox, **kwargs: Any) -> CellcastSession:
    return CellcastSession(api_key=sb.api_key, base_url=sb.url, **kwargs)


def ids(tokens: Iterable[ApiToken]) -> list[str]:
    return [token.id for token in tokens]


def page_walk(listing: list[str], limit: int) -> Iterator[list[str]]:
    """What a page-number walk is served, page by page, while the caller changes ``listing``
    between pages (the sandbox's rules: a page says whether it is the last one)."""
    number = 1
    while True:
        chunk = listing[(number - 1) * limit : number * limit]
        last = not chunk or number >= math.ceil(len(listing) / limit)
        yield chunk
        if last:
            return
        number += 1


async def drain_into(
    into: list[str], walk: AsyncIterable[ApiToken], each: Callable[[int], None] | None = None
) -> None:
    """Append each id of ``walk`` to ``into`` (kept when the walk fails); call ``each``."""
    async for token in walk:
        into.append(token.id)
        if each is not None:
            each(len(into))


async def walk_changing(
    pager: Pager[ApiToken], change: Callable[[list[str]], Awaitable[None]]
) -> list[str]:
    """The ids a walk yields; ``change(walked so far)`` runs after the last item of each
    page, before the next page is asked for."""
    walked: list[str] = []
    boundary = pager.next_page
    async for token in pager:
        walked.append(token.id)
        if pager.next_page != boundary:  # the last item of a page
            boundary = pager.next_page
            await change(walked)
    return walked


def once(chunks: Iterable[list[str]]) -> list[str]:
    """The items of ``chunks`` in order, each id once."""
    return list(dict.fromkeys(i for chunk in chunks for i in chunk))


class TestBigWalkUnderFaults:
    """A 5,000-token walk through about 20% failing requests yields every token once, in order."""

    @pytest.mark.slow
    @pytest.mark.parametrize("concurrency", [1, 8])
    async def test_every_token_exactly_once_in_order(
        self, concurrency: int, fake_sleep: FakeSleep, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="cellcast_async")
        async with Sandbox(seed=11, tokens=5000) as sb:
            async with session(sb, max_retries=12) as cc:
                reference = ids(await cc.tokens.list(limit=100).collect())
                sb.reset_requests()
                sb.faults = Faults(
                    error_rate=0.2, kinds=FAULT_KINDS, retry_after=1, seed=concurrency
                )
                walked = ids(await cc.tokens.list(limit=100, concurrency=concurrency).collect())
            requests = list(sb.requests)

        assert len(reference) == len(set(reference)) == 5000
        assert walked == reference
        # 50 pages answered once each (page 1 twice at concurrency 8: the read that
        # proves the list stayed quiet); every other request was a fault, then a retry.
        assert sorted({int(r.query["page"]) for r in requests}) == list(range(1, 51))
        failures = len(requests) - (50 if concurrency == 1 else 51)
        assert failures >= 5
        retries = [r for r in caplog.records if r.getMessage().startswith("retrying ")]
        assert len(retries) == failures
        # README "Rate limits": a 429 among admitted answers is "a little too fast" (a
        # slower pace, no pause), and no hold or retry waits past a Retry-After of 1 s.
        assert max(fake_sleep.delays, default=0.0) <= 1.0 + 1e-6


class TestResumeAfterRetriesRunOut:
    """When a page fails for good the error is typed, and ``next_page`` resumes losslessly."""

    @pytest.mark.parametrize(
        ("fault", "error", "message"),
        [
            (
                "503",
                ServerError,
                " -> 503 Service unavailable: Service temporarily unavailable",
            ),
            ("500", ServerError, " -> 500 Internal server error: Something went wrong"),
            ("502", ServerError, " -> 502 Bad Gateway"),
            ("504", ServerError, " -> 504 Gateway Timeout"),
            ("drop", TransportError, ": the server closed the connection without an answer"),
        ],
    )
    async def test_retried_faults_sequential(
        self, sb: Sandbox, fault: str, error: type[Exception], message: str
    ) -> None:
        async with session(sb, max_retries=2) as cc:
            reference = ids(await cc.tokens.list(limit=10).collect())
            sb.reset_requests()
            sb.script({4: fault, 5: fault, 6: fault})  # page 4, then both its retries
            pager = cc.tokens.list(limit=10)
            seen: list[str] = []
            with pytest.raises(error) as info:
                await drain_into(seen, pager)
            assert type(info.value) is error
            assert str(info.value) == f"GET {TOKENS_PATH}{message}"
            assert pager.next_page == 4
            assert [int(r.query["page"]) for r in sb.requests] == [1, 2, 3, 4, 4, 4]
            rest = ids(await cc.tokens.list(limit=10, page=pager.next_page).collect())

        assert seen == reference[:30]
        assert seen + rest == reference

    @pytest.mark.parametrize(
        ("fault", "error"),
        [
            (("429", 120.0), RateLimitError),  # longer than we wait: raised at once
            ("malformed", DecodeError),  # an answer, not a lost one: never retried
        ],
    )
    async def test_faults_that_are_not_retried(
        self, sb: Sandbox, fault: Any, error: type[Exception]
    ) -> None:
        async with session(sb, max_retries=5) as cc:
            reference = ids(await cc.tokens.list(limit=10).collect())
            sb.reset_requests()
            sb.script({3: fault})
            pager = cc.tokens.list(limit=10)
            seen: list[str] = []
            with pytest.raises(error) as info:
                await drain_into(seen, pager)
            assert type(info.value) is error
            assert len(sb.requests) == 3
            rest = ids(await cc.tokens.list(limit=10, page=pager.next_page).collect())

        if isinstance(info.value, RateLimitError):
            assert info.value.retry_after == 120.0
        assert pager.next_page == 3
        assert seen + rest == reference

    async def test_timeouts_run_out(self, sb: Sandbox) -> None:
        async with session(sb, max_retries=1, timeout=0.2) as cc:
            reference = ids(await cc.tokens.list(limit=25).collect())
            sb.reset_requests()
            sb.script({2: "hang", 3: "hang"})
            pager = cc.tokens.list(limit=25)
            seen: list[str] = []
            with pytest.raises(TimeoutError) as info:
                await drain_into(seen, pager)
            rest = ids(await cc.tokens.list(limit=25, page=pager.next_page).collect())

        assert str(info.value) == f"GET {TOKENS_PATH}: no answer within 0.2 s"
        assert pager.next_page == 2
        assert seen + rest == reference

    async def test_with_concurrency_8(self, sb: Sandbox) -> None:
        async with session(sb, max_retries=2) as cc:
            reference = ids(await cc.tokens.list(limit=5).collect())
            pager = cc.tokens.list(limit=5, concurrency=8)
            seen: list[str] = []

            def fail_from_now_on(count: int) -> None:
                if count == 12:  # mid page 3, pages ahead already in flight
                    sb.faults = Faults(error_rate=1.0, kinds=("503",))

            with pytest.raises(ServerError) as info:
                await drain_into(seen, pager, fail_from_now_on)
            sb.faults = Faults()
            rest = ids(await cc.tokens.list(limit=5, page=pager.next_page, concurrency=8).collect())

        assert info.value.status_code == 503
        assert len(seen) % 5 == 0
        assert len(seen) >= 15
        assert pager.next_page == len(seen) // 5 + 1
        assert seen + rest == reference


class TestListChangesUnderWalk:
    """Tokens created and deleted between pages: nothing is yielded twice; what is missed."""

    async def test_creates_ahead_are_never_yielded_and_nothing_twice(self, sb: Sandbox) -> None:
        sub = sb.sub_account_ids[0]
        async with session(sb) as cc:
            reference = ids(await cc.tokens.list(limit=10).collect())
            batches: list[list[str]] = []

            async def create_three(walked: list[str]) -> None:
                # Three new tokens before the next page: newest first, so in front.
                batches.append(
                    [
                        (await cc.tokens.create(f"Mid-walk {len(batches)}.{n}", sub)).id
                        for n in range(3)
                    ]
                )

            walked = await walk_changing(cc.tokens.list(limit=10), create_three)

        listing = list(reference)
        served: list[list[str]] = []
        for chunk in page_walk(listing, 10):
            served.append(chunk)
            listing[:0] = reversed(batches[len(served) - 1])
        created = {i for batch in batches for i in batch}
        assert walked == once(served)
        assert walked == reference  # every token there all along: once, in order
        assert not created & set(walked)  # created behind the walk: never seen
        # The server did hand the walk the same tokens twice (the list shifted under it).
        assert sum(map(len, served)) > len(reference)

    async def test_deletes_behind_are_repaired(self, sb: Sandbox) -> None:
        """Deletions behind the walk shift tokens onto pages already read: those are read again."""
        async with session(sb) as cc:
            reference = ids(await cc.tokens.list(limit=10).collect())
            deleted: list[str] = []

            async def delete_two(walked: list[str]) -> None:
                # Two tokens of the page just read are deleted before the next page.
                for victim in walked[-10:-8]:
                    await cc.tokens.delete(victim)
                    deleted.append(victim)

            pager = cc.tokens.list(limit=10)
            walked = await walk_changing(pager, delete_two)

        survivors = [i for i in reference if i not in deleted]
        stats = pager.stats
        assert len(walked) == len(set(walked))
        assert deleted
        assert set(survivors) <= set(walked)  # before issue 11, 16 of them were missed
        assert stats.complete is True
        assert 0 < stats.refetched_pages <= 8 + stats.pages // 2


class TestCreateNeverTwice:
    """``create`` under 500s and dropped connections creates each token at most once."""

    async def test_scripted(self, sb: Sandbox) -> None:
        sub = sb.sub_account_ids[0]
        sb.script({1: ("429", 0.0), 3: "500", 4: "drop", 6: "502", 7: "503"})
        outcomes: list[str] = []
        async with session(sb, max_retries=3) as cc:
            for n in range(6):
                try:
                    await cc.tokens.create(f"Scripted {n}", sub)
                    outcomes.append("created")
                except (ServerError, TransportError) as exc:
                    outcomes.append(type(exc).__name__)

        # 429 is the one answer POST is retried on; 500/502/503 and a drop are final.
        assert outcomes == [
            "created",
            "ServerError",
            "TransportError",
            "created",
            "ServerError",
            "ServerError",
        ]
        names = [r.json["name"] for r in sb.requests if r.method == "POST"]
        assert names == [f"Scripted {n}" for n in (0, 0, 1, 2, 3, 4, 5)]
        # The drop happened after the sandbox applied it: that token exists, once.
        assert sb.tokens_created == 3

    @pytest.mark.parametrize("drop_before_apply", [False, True])
    async def test_random_faults_concurrently(self, sb: Sandbox, drop_before_apply: bool) -> None:
        subs = sb.sub_account_ids
        sb.faults = Faults(
            error_rate=0.5,
            kinds=("500", "502", "503", "drop"),
            mutations_only=True,
            drop_before_apply=drop_before_apply,
            seed=3,
        )
        names = [f"Concurrent {n}" for n in range(80)]
        async with session(sb, max_retries=5) as cc:
            results = await asyncio.gather(
                *(cc.tokens.create(name, subs[n % len(subs)]) for n, name in enumerate(names)),
                return_exceptions=True,
            )
            sb.faults = Faults()
            listed = {
                t.name for t in await cc.tokens.list(limit=100, search="Concurrent").collect()
            }

        created = [r for r in results if not isinstance(r, BaseException)]
        drops = [r for r in results if type(r) is TransportError]
        server = [r for r in results if type(r) is ServerError]
        assert len(created) + len(drops) + len(server) == 80
        assert drops  # the faults did happen
        assert server
        # Every name was sent exactly once: no POST was ever resent.
        posted = sorted(r.json["name"] for r in sb.requests if r.method == "POST")
        assert posted == sorted(names)
        applied = len(created) + (0 if drop_before_apply else len(drops))
        assert sb.tokens_created == applied == len(listed)
        assert {t.name for t in created} <= listed


class TestTimeouts:
    """A server that accepts and never answers ends in TimeoutError close to the timeout."""

    async def test_hang_ends_in_timeout(self, sb: Sandbox) -> None:
        sb.script({1: "hang"})
        token_id = sb.sub_account_ids[0]
        async with session(sb, timeout=0.3, max_retries=0) as cc:
            error = await raises_timeout(cc.tokens.get(token_id))

        assert str(error) == f"GET {TOKENS_PATH}/{token_id}: no answer within 0.3 s"
        assert error.kind == "timeout"
        assert error.__cause__ is None

    async def test_hang_then_answer_is_retried(self, sb: Sandbox) -> None:
        async with session(sb, timeout=0.3, max_retries=1) as cc:
            page = await cc.tokens.list(limit=3)
            sb.reset_requests()
            sb.script({1: "hang"})
            started = time.monotonic()
            token = await cc.tokens.get(page.items[0].id)
            elapsed = time.monotonic() - started

        assert token == page.items[0]
        assert 0.3 <= elapsed < 1.5
        assert len(sb.requests) == 2

    async def test_create_that_hangs_is_not_resent(self, sb: Sandbox) -> None:
        sb.script({1: "hang"})
        async with session(sb, timeout=0.3, max_retries=3) as cc:
            await raises_timeout(cc.tokens.create("Hung", sb.sub_account_ids[0]))

        assert [r.method for r in sb.requests] == ["POST"]


async def one_token(request: web.Request) -> web.StreamResponse:
    """The token the path asks for."""
    token_id = request.match_info["tail"].rsplit("/", 1)[-1]
    return web.Response(
        body=dumps(envelope(token_item(_id=token_id))), content_type="application/json"
    )


class TestSharedSessionUnderLoad:
    """2,000 concurrent ``get`` calls on one session all complete, within the pool's bound."""

    @pytest.mark.parametrize("pool", ["own", pytest.param("injected", marks=pytest.mark.soak)])
    async def test_2000_concurrent_gets(self, pool: str) -> None:
        ids_ = [f"{n:024x}" for n in range(2000)]
        # Each answer takes 8 ms; 2,000 of them through 8 connections take two seconds,
        # twice the per-attempt timeout: only the time on the wire may count. (The timeout
        # leaves a second for a loaded machine's stalls: 0.5 s once ran out on two busy cores.)
        async with contextlib.AsyncExitStack() as stack:
            app = await stack.enter_async_context(RawApp(one_token, latency=0.008))
            options: dict[str, Any] = {"connection_limit": 8}
            if pool == "injected":
                connector = aiohttp.TCPConnector(limit=0, limit_per_host=8)
                options = {"session": aiohttp.ClientSession(connector=connector)}
                stack.push_async_callback(options["session"].close)
            cc = await stack.enter_async_context(
                CellcastSession(
                    api_key="k" * 32, base_url=app.url, timeout=1.0, max_retries=0, **options
                )
            )
            results = await asyncio.gather(*(cc.tokens.get(i) for i in ids_))

        assert [token.id for token in results] == ids_
        assert len(app.requests) == 2000
        assert app.max_in_flight == 8  # the pool was full, and never more than full
        assert len(app.peers) <= 8  # connections the server ever saw

    async def test_cancelled_callers_give_their_connections_back(self) -> None:
        ids_ = [f"{n:024x}" for n in range(400)]
        async with (
            RawApp(one_token, latency=0.02) as app,
            CellcastSession(
                api_key="k" * 32, base_url=app.url, timeout=2, max_retries=0, connection_limit=4
            ) as cc,
        ):
            calls = asyncio.gather(*(cc.tokens.get(i) for i in ids_))
            while len(app.requests) < 20:  # noqa: ASYNC110 - the server's own count
                await asyncio.sleep(0.005)
            calls.cancel()  # 4 on the wire, the rest waiting for a connection
            with pytest.raises(asyncio.CancelledError):
                await calls
            await asyncio.sleep(0.1)  # the server finishes what it was answering
            app.max_in_flight = 0
            again = await asyncio.wait_for(
                asyncio.gather(*(cc.tokens.get(i) for i in ids_[:100])), 10
            )

        assert [token.id for token in again] == ids_[:100]
        assert app.max_in_flight == 4


async def settled_tasks() -> set[asyncio.Task[Any]]:
    """Tasks other than this one, after letting the loop turn a few times."""
    for _ in range(10):
        await asyncio.sleep(0)
    return asyncio.all_tasks() - {asyncio.current_task()}


class TrackedResponse(aiohttp.ClientResponse):
    """A ClientResponse that remembers every instance, to check each one is closed."""

    made: list[TrackedResponse] = []  # noqa: RUF012 - reset by each test

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        TrackedResponse.made.append(self)


@pytest.fixture
def live() -> Iterator[ThreadedSandbox]:
    """A sandbox on another thread whose every answer takes 0.3 s: requests are in flight."""
    with ThreadedSandbox(seed=2, tokens=200, faults=Faults(latency=0.3)) as sandbox:
        yield sandbox


class TestCancellation:
    """Cancelling a task mid ``async for`` leaves no task, response or session behind."""

    @staticmethod
    async def walk_then_cancel(
        cc: CellcastSession, live: ThreadedSandbox, concurrency: int
    ) -> None:
        seen: list[str] = []
        reached = asyncio.Event()

        async def consume() -> None:
            async for token in cc.tokens.list(limit=10, concurrency=concurrency):
                seen.append(token.id)
                if len(seen) == 20:
                    reached.set()

        task = asyncio.ensure_future(consume())
        await reached.wait()
        # Page 3 (and with concurrency, pages after it) is now at the server, unanswered.
        # (The sandbox's thread records a request when it arrives: wait for the one the
        # consumer is blocked on, which on a loaded machine can lag behind the walk.)
        while len(live.sb.requests) < max(3, len(seen) // 10 + 1):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Cancelled while waiting for a page that was asked for and not yet answered.
        assert len(seen) % 10 == 0
        assert len(seen) >= 20
        assert len(live.sb.requests) > len(seen) // 10

    @pytest.mark.parametrize("concurrency", [1, 8])
    async def test_own_session(self, live: ThreadedSandbox, concurrency: int) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop = asyncio.get_running_loop()
            reported: list[dict[str, Any]] = []
            loop.set_exception_handler(lambda _, context: reported.append(context))
            cc = CellcastSession(api_key=live.sb.api_key, base_url=live.sb.url)
            async with cc:
                await self.walk_then_cancel(cc, live, concurrency)
                assert await settled_tasks() == set()
            del cc
            gc.collect()
            await asyncio.sleep(0)
            loop.set_exception_handler(None)

        assert await settled_tasks() == set()
        unclosed = [str(w.message) for w in caught if "Unclosed" in str(w.message)]
        assert unclosed == []
        assert reported == []

    @pytest.mark.parametrize("concurrency", [1, 8])
    async def test_every_response_is_closed(self, live: ThreadedSandbox, concurrency: int) -> None:
        TrackedResponse.made = []
        loop = asyncio.get_running_loop()
        loop.set_debug(True)  # aiohttp warns of an unclosed response only in debug mode
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                async with aiohttp.ClientSession(response_class=TrackedResponse) as http:
                    cc = CellcastSession(
                        api_key=live.sb.api_key, base_url=live.sb.url, session=http
                    )
                    async with cc:
                        await self.walk_then_cancel(cc, live, concurrency)
                    assert await settled_tasks() == set()
                    made = list(TrackedResponse.made)
                    assert len(made) >= 3
                    assert [r.closed for r in made] == [True] * len(made)
                    del made
                    TrackedResponse.made = []
                    gc.collect()
        finally:
            loop.set_debug(False)

        assert [str(w.message) for w in caught if "Unclosed" in str(w.message)] == []

    async def test_session_owned_by_the_cancelled_task(self, live: ThreadedSandbox) -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            started = asyncio.Event()

            async def job() -> None:
                async with CellcastSession(api_key=live.sb.api_key, base_url=live.sb.url) as cc:
                    async for _ in cc.tokens.list(limit=10, concurrency=8):
                        started.set()

            task = asyncio.ensure_future(job())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            gc.collect()

        assert await settled_tasks() == set()
        assert [str(w.message) for w in caught if "Unclosed" in str(w.message)] == []


class TestDeleteAfterLostAnswer:
    """A DELETE whose answer was lost is retried, and its 404 counts as done (once)."""

    async def test_drop_then_404(self, sb: Sandbox) -> None:
        async with session(sb, max_retries=2) as cc:
            victim = (await cc.tokens.list(limit=1)).items[0].id
            sb.reset_requests()
            sb.script({1: "drop"})
            await cc.tokens.delete(victim)
            with pytest.raises(NotFoundError):
                await cc.tokens.get(victim)

        assert [r.method for r in sb.requests] == ["DELETE", "DELETE", "GET"]
