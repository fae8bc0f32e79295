"""A ``createdAt`` at the edge of the calendar is a DecodeError, never a bare OverflowError.

``0001-01-01T00:00:00+05:00`` is in year 0 once in UTC and ``9999-12-31T23:59:59-05:00``
in year 10000: neither has a ``datetime`` (README "Models").
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from cellcast_async import CellcastSession, DecodeError
from cellcast_async.cli import main

from ._walk_server import API_KEY, TOKENS_PATH, WalkServer, envelope, listing, token_item

EDGES = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]
TOKEN_ID = f"{1:024x}"


def message(path: str, value: str) -> str:
    return f"GET {path} -> 200: timestamp out of range once in UTC (years 1 to 9999): {value!r}"


def serving(value: str) -> WalkServer:
    def respond(method: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
        token = token_item(1, createdAt=value)
        if path == TOKENS_PATH:
            return 200, listing([token], page=1, limit=10, total=1, more=False, total_pages=1)
        return 200, envelope(token)

    return WalkServer(respond)


class TestSdk:
    """``get`` and a walk raise the DecodeError, with the method, path and value."""

    @pytest.mark.parametrize("value", EDGES)
    async def test_get(self, value: str) -> None:
        with serving(value) as server:
            async with CellcastSession(api_key=API_KEY, base_url=server.url) as cc:
                with pytest.raises(DecodeError) as info:
                    await asyncio.wait_for(cc.tokens.get(TOKEN_ID), 30)
        assert str(info.value) == message(f"{TOKENS_PATH}/{TOKEN_ID}", value)
        assert info.value.__cause__ is None

    @pytest.mark.parametrize("concurrency", [1, 8])
    @pytest.mark.parametrize("value", EDGES)
    async def test_walk(self, value: str, concurrency: int) -> None:
        with serving(value) as server:
            async with CellcastSession(api_key=API_KEY, base_url=server.url) as cc:
                pager = cc.tokens.list(concurrency=concurrency)
                with pytest.raises(DecodeError) as info:
                    await asyncio.wait_for(pager.collect(), 30)
        assert str(info.value) == message(TOKENS_PATH, value)
        assert server.pages == [1]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


class TestCli:
    """``get``, ``list`` and ``audit``: exit 1 and one error line, no traceback."""

    @pytest.mark.parametrize("value", EDGES)
    @pytest.mark.parametrize(
        ("argv", "path"),
        [
            (["get", TOKEN_ID], f"{TOKENS_PATH}/{TOKEN_ID}"),
            (["list"], TOKENS_PATH),
            (["audit", "--quiet"], TOKENS_PATH),
        ],
        ids=["get", "list", "audit"],
    )
    def test_one_error_line(self, value: str, argv: list[str], path: str) -> None:
        with serving(value) as server:
            code, out, err = run(*argv, "--api-key", API_KEY, "--base-url", server.url)
        assert (code, out) == (1, "")
        assert err == f"error: {message(path, value)}\n"

    def test_a_year_1_token_is_aged_without_overflow(self) -> None:
        """The earliest instant that has a UTC datetime is a valid, very stale token."""
        with serving("0001-01-01T05:00:00+05:00") as server:
            code, out, err = run(
                "audit", "--quiet", "--json", "--api-key", API_KEY, "--base-url", server.url
            )
        assert (code, err) == (0, "")
        assert '"oldest_created_at": "0001-01-01T00:00:00+00:00"' in out

    @pytest.mark.parametrize("value", EDGES)
    def test_as_of_out_of_range_is_a_usage_error(self, value: str) -> None:
        with serving("2024-01-15T10:30:00.000Z") as server:
            code, out, err = run(
                "audit", "--as-of", value, "--api-key", API_KEY, "--base-url", server.url
            )
            assert server.requests == []
        assert (code, out) == (2, "")
        assert err.count("\n") == 1
        assert err.startswith("usage error: ")
        assert err.endswith(f"{value!r} is out of range once in UTC (years 1 to 9999)\n")
