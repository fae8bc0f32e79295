"""``rate_limit=`` and ``rate_store=`` on the session: misuse before anything is sent, and
one governor shared by every view and task of a session."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aioresponses import aioresponses

from cellcast_async import CellcastSession, TimeoutError

from ._support import (
    ANY_TOKEN_URL,
    API_KEY,
    OK,
    SLOW_DOWN,
    exactly,
    sent,
    session,
)


class TestMisuse:
    """Bad rate options are a ValueError at construction: nothing is ever sent."""

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (0, "rate_limit must be a positive number of requests per second or None, got 0"),
            (-5, "rate_limit must be a positive number of requests per second or None, got -5"),
            (
                float("inf"),
                "rate_limit must be a positive number of requests per second or None, got inf",
            ),
            (True, "rate_limit must be a positive number of requests per second or None, got True"),
            ("10", "rate_limit must be a positive number of requests per second or None, got '10'"),
        ],
    )
    def test_rate_limit(self, value: object, message: str) -> None:
        with aioresponses() as m, pytest.raises(ValueError, match=exactly(message)):
            CellcastSession(api_key=API_KEY, rate_limit=value)  # type: ignore[arg-type]
        assert sent(m) == []

    @pytest.mark.parametrize(
        "store", ["memcached://127.0.0.1:11211", "http://127.0.0.1:6379", "127.0.0.1:6379"]
    )
    def test_rate_store_scheme(self, store: str) -> None:
        with pytest.raises(ValueError, match=r"^rate_store must be None or a redis:// URL"):
            CellcastSession(api_key=API_KEY, rate_store=store)

    def test_rate_store_message_never_quotes_a_password(self) -> None:
        with pytest.raises(ValueError, match="rate_store") as info:
            CellcastSession(api_key=API_KEY, rate_store="memcached://user:pa55word@host:1/0")
        assert "pa55word" not in str(info.value)


class TestOneGovernorPerSession:
    """Views and tasks share the session's governor: a 429 pauses them all."""

    async def test_views_share_the_governor(self) -> None:
        cc = session(rate_limit=50)
        view = cc.with_options(timeout=1.0)
        assert view._governor is cc._governor
        assert view.rate_limit == cc.rate_limit == 50.0
        await cc.aclose()

    async def test_a_429_pauses_every_task(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=429, payload=SLOW_DOWN, headers={"Retry-After": "2"})
            m.get(ANY_TOKEN_URL, payload=OK, repeat=True)
            async with session() as cc:
                await asyncio.gather(*(cc.tokens.get("tok001") for _ in range(5)))
                state = cc.governor_state
        assert state.rate_limited == 1
        # The four others waited in the pause too: each wait ends when the pause does.
        assert len(fake_sleep.delays) >= 1
        assert max(fake_sleep.delays) == pytest.approx(2.0, abs=0.05)

    async def test_a_pause_longer_than_the_deadline_fails_at_once(self, fake_sleep: Any) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=429, payload=SLOW_DOWN, headers={"Retry-After": "30"})
            m.get(ANY_TOKEN_URL, payload=OK, repeat=True)
            async with session(max_retries=0) as cc:
                with pytest.raises(Exception, match="Too many requests"):
                    await cc.tokens.get("tok001")
                with pytest.raises(TimeoutError, match="wait for the rate limit") as info:
                    await cc.with_options(deadline=5.0).tokens.get("tok001")
        assert info.value.kind == "deadline"
        assert len(sent(m)) == 1  # the second call never went out
        assert fake_sleep.delays == []
