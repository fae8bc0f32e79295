"""Replies of the wrong shape from a Redis (README "Rate limits": anything read from Redis
is untrusted). A fake Redis on 127.0.0.1 answers every script call with the bytes under
test: the governor falls back in-process with one WARNING saying what was wrong, its task
never dies, and no call fails because of it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cellcast_async import CellcastSession
from cellcast_async._governor import make_governor

from ._fake_redis import FakeRedis, array, bulk
from ._hostile_http import API_KEY, TOKEN_ID, HostileHeaders

WRONG_SHAPE = "expected [kind, seconds, note]"
CASES = [
    (b":1\r\n", f"sent a reply of the wrong shape (an integer, {WRONG_SHAPE})"),
    (b"*0\r\n", f"sent a reply of the wrong shape (an empty array, {WRONG_SHAPE})"),
    (
        array(bulk("abc"), bulk("0")),
        f"sent a reply of the wrong shape (an array of 2, {WRONG_SHAPE})",
    ),
    (
        array(bulk("abc"), bulk("0"), bulk("")),
        f"sent a reply of the wrong shape (a kind that is not 0, 1 or 2, {WRONG_SHAPE})",
    ),
    (b"+OK\r\n", f"sent a reply of the wrong shape (a string, {WRONG_SHAPE})"),
    (
        array(b":1\r\n", bulk("nan"), bulk("")),
        f"sent a reply of the wrong shape (seconds that are not a number, {WRONG_SHAPE})",
    ),
    (array(b":0\r\n", bulk("1e9"), bulk("")), "sent a wait of more than 61 s"),
    (
        array(b":1\r\n", bulk("0"), bulk("\x1b[2J")),
        "sent a reply of the wrong shape (a string for a note)",
    ),
    (
        array(b":1\r\n", bulk("0"), bulk("evil 1")),
        "sent a reply of the wrong shape (an unknown note)",
    ),
    (b"-ERR boom\r\n", "failed (ResponseError)"),
]
IDS = [":1", "empty", "2 items", "abc kind", "+OK", "nan", "1e9 s", "escape note", "note", "-ERR"]


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reached the loop's exception handler (e.g. "Task exception was never retrieved")."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(previous)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


class TestMalformedReplies:
    """Each malformed reply: one exact WARNING, the calls go on in-process."""

    @pytest.mark.parametrize(("reply", "problem"), CASES, ids=IDS)
    async def test_acquire_falls_back(
        self,
        reply: bytes,
        problem: str,
        caplog: pytest.LogCaptureFixture,
        loop_errors: list[dict[str, Any]],
    ) -> None:
        """Three acquisitions all succeed; the warning names the store and the problem."""
        async with FakeRedis(reply) as fake:
            governor = make_governor(None, fake.url, "scope")
            with caplog.at_level(logging.WARNING, logger="cellcast_async"):
                try:
                    for _ in range(3):
                        await asyncio.wait_for(governor.acquire(), 10)
                    state = governor.state
                finally:
                    await governor.aclose()
            assert fake.script_calls == 1  # asked once, then never again
        where = fake.url
        assert warnings_of(caplog) == [
            f"rate store {where} {problem}; rate limiting continues in this process only"
        ]
        assert state.store == "memory (rate store failed)"
        assert state.acquired == 3
        assert loop_errors == []

    @pytest.mark.parametrize(
        "reply", [b":1\r\n", b"*0\r\n", b"+OK\r\n"], ids=[":1", "empty", "+OK"]
    )
    async def test_shared_pause_falls_back(
        self, reply: bytes, caplog: pytest.LogCaptureFixture, loop_errors: list[dict[str, Any]]
    ) -> None:
        """A 429 whose shared pause gets a wrong reply: this process still pauses, the
        background write never dies unseen."""
        async with FakeRedis(reply) as fake:
            governor = make_governor(None, fake.url, "scope")
            with caplog.at_level(logging.WARNING, logger="cellcast_async"):
                try:
                    governor.observe(status=429, headers=None, retry_after=0.2, elapsed=0.01)
                    held = governor.state.paused_until
                    await asyncio.wait_for(asyncio.gather(*governor._background), 10)
                    waited = await asyncio.wait_for(governor.acquire(), 10)
                finally:
                    await governor.aclose()
        assert held is not None  # held here at once, whatever Redis answered
        assert waited > 0.0
        assert len(warnings_of(caplog)) == 1
        assert "rate limiting continues in this process only" in warnings_of(caplog)[0]
        assert loop_errors == []

    async def test_refusal_with_no_limit_asked(self, caplog: pytest.LogCaptureFixture) -> None:
        """'No slot within your limit' when no limit was asked: not a refusal, a fallback."""
        async with FakeRedis(array(b":2\r\n", bulk("5"), bulk(""))) as fake:
            governor = make_governor(None, fake.url, "scope")
            with caplog.at_level(logging.WARNING, logger="cellcast_async"):
                try:
                    await asyncio.wait_for(governor.acquire(), 10)
                finally:
                    await governor.aclose()
        assert warnings_of(caplog) == [
            f"rate store {fake.url} sent a refusal although no limit on the wait was asked;"
            " rate limiting continues in this process only"
        ]


class TestSession:
    """Through a whole session: the calls succeed, nothing but the one WARNING."""

    @pytest.mark.parametrize(("reply", "problem"), CASES[:5], ids=IDS[:5])
    async def test_calls_succeed(
        self, reply: bytes, problem: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        async with FakeRedis(reply) as fake, HostileHeaders([{}]) as server:
            with caplog.at_level(logging.WARNING, logger="cellcast_async"):
                async with CellcastSession(
                    api_key=API_KEY, base_url=server.url, rate_store=fake.url
                ) as cc:
                    tokens = await asyncio.gather(*(cc.tokens.get(TOKEN_ID) for _ in range(5)))
                    store = cc.governor_state.store
        assert len(tokens) == 5
        assert server.seen == 5
        assert store == "memory (rate store failed)"
        assert warnings_of(caplog) == [
            f"rate store {fake.url} {problem}; rate limiting continues in this process only"
        ]
        assert API_KEY not in caplog.text
