"""Limits nobody stated: a body cap, UTC times, Retry-After in the past, large limits."""

from __future__ import annotations

import asyncio
import gzip
import re
import tracemalloc
import zlib
from datetime import timedelta, timezone

import pytest
from aiohttp import web

from cellcast_async import CellcastSession, DecodeError

from ._support import API_KEY, TOKEN_ID, RawApp, dumps, envelope, page_data, token_item

MIB = 2**20


def gzip_bomb(inflated: int) -> bytes:
    """A gzip stream of ``inflated`` zero bytes, built without holding them in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    block = bytes(MIB)
    parts = [compressor.compress(block) for _ in range(inflated // MIB)]
    parts.append(compressor.flush())
    return b"".join(parts)


def serving(body: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> RawApp:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=status,
            body=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    return RawApp(handler)


async def get(app: RawApp, **options: object) -> object:
    async with CellcastSession(api_key=API_KEY, base_url=app.url, max_retries=0, **options) as cc:  # type: ignore[arg-type]
        return await cc.tokens.get(TOKEN_ID)


class TestMaxResponseBytes:
    """``max_response_bytes`` stops the read once the decompressed body passes it."""

    async def test_default_is_32_mib(self) -> None:
        from cellcast_async._session import DEFAULT_MAX_RESPONSE_BYTES

        assert DEFAULT_MAX_RESPONSE_BYTES == 32 * MIB

    async def test_a_body_under_the_cap_is_read(self) -> None:
        body = dumps(envelope(token_item()))
        async with serving(body) as app:
            token = await get(app, max_response_bytes=len(body))
        assert token.id == f"{1:024x}"  # type: ignore[attr-defined]

    async def test_a_plain_body_over_the_cap(self) -> None:
        body = dumps(envelope(token_item(name="x" * 5000)))
        async with serving(body) as app:
            with pytest.raises(DecodeError) as info:
                await get(app, max_response_bytes=4096)
        assert str(info.value) == (
            f"GET /api/v1/apiClient/token/{TOKEN_ID} -> 200: "
            "the answer is larger than max_response_bytes (4,096 bytes)"
        )
        assert info.value.__cause__ is None
        assert info.value.__context__ is None

    async def test_chunked_body_with_no_length_over_the_cap(self) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(64):
                await response.write(b" " * 1024)
            await response.write_eof()
            return response

        async with RawApp(handler) as app:
            with pytest.raises(DecodeError, match=r"larger than max_response_bytes \(8,192"):
                await get(app, max_response_bytes=8192)

    async def test_an_error_answer_over_the_cap(self) -> None:
        async with serving(b"x" * 10_000, status=500) as app:
            with pytest.raises(DecodeError) as info:
                await get(app, max_response_bytes=1000)
        assert info.value.status_code == 500

    async def test_none_means_no_cap(self) -> None:
        body = dumps(envelope(token_item(name="x" * (2 * MIB))))
        async with serving(body) as app:
            token = await get(app, max_response_bytes=None)
        assert len(token.name) == 2 * MIB  # type: ignore[attr-defined]

    async def test_a_gzip_bomb_costs_about_the_cap(self) -> None:
        """64 MiB of zeros in about 64 KB: the read stops near the 1 MiB cap."""
        bomb = gzip_bomb(64 * MIB)
        assert len(bomb) < 100_000
        async with serving(bomb, headers={"Content-Encoding": "gzip"}) as app:
            tracemalloc.start()
            try:
                with pytest.raises(DecodeError, match=r"larger than max_response_bytes"):
                    await get(app, max_response_bytes=MIB)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        # The whole bomb would be 64 MiB (twice that while joined); we stay near the cap.
        assert peak < 8 * MIB

    async def test_gzip_under_the_cap_is_read(self) -> None:
        body = gzip.compress(dumps(envelope(token_item())))
        async with serving(body, headers={"Content-Encoding": "gzip"}) as app:
            token = await get(app, max_response_bytes=10_000)
        assert token.name == "Token 1"  # type: ignore[attr-defined]

    @pytest.mark.parametrize("value", [0, -1, 1.5, "32", True])
    def test_misuse(self, value: object) -> None:
        message = f"max_response_bytes must be an int >= 1 or None, got {value!r}"
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            CellcastSession(api_key=API_KEY, max_response_bytes=value)  # type: ignore[arg-type]


class TestTimesAreUTC:
    """``created_at`` is always UTC, whatever offset the server wrote."""

    @pytest.mark.parametrize(
        ("sent", "hour", "minute"),
        [
            ("2024-01-15T10:30:00+05:30", 5, 0),
            ("2024-01-15T10:30:00-02:00", 12, 30),
            ("2024-01-15T10:30:00.000Z", 10, 30),
            ("2024-01-15T10:30:00", 10, 30),
        ],
    )
    async def test_offsets_become_utc(self, sent: str, hour: int, minute: int) -> None:
        async with serving(dumps(envelope(token_item(createdAt=sent)))) as app:
            token = await get(app)
        created = token.created_at  # type: ignore[attr-defined]
        assert created.tzinfo is timezone.utc
        assert created.utcoffset() == timedelta(0)
        assert (created.hour, created.minute) == (hour, minute)


class TestLargeLimits:
    """The SDK sets no upper bound on ``limit``: the real API may accept more than 1000."""

    async def test_limit_5000_is_sent_as_is(self) -> None:
        seen: list[str] = []

        async def handler(request: web.Request) -> web.StreamResponse:
            seen.append(request.query["limit"])
            data = page_data([token_item()], limit=5000)
            return web.Response(body=dumps(envelope(data)), content_type="application/json")

        async with (
            RawApp(handler) as app,
            CellcastSession(api_key=API_KEY, base_url=app.url) as cc,
        ):
            page = await cc.tokens.list(limit=5000)
        assert seen == ["5000"]
        assert page.limit == 5000


class TestServerThatIgnoresPage:
    """A server that sends the same items for every page ends the walk, not loops it."""

    @pytest.mark.parametrize("total_pages", [None, 10**9])
    @pytest.mark.parametrize("concurrency", [1, 8])
    async def test_same_page_forever(self, total_pages: int | None, concurrency: int) -> None:
        asked: list[str] = []

        async def handler(request: web.Request) -> web.StreamResponse:
            asked.append(request.query["page"])
            data = page_data([token_item(n) for n in range(1, 11)], hasNextPage=True, page=None)
            data["totalPages"] = total_pages
            data["total"] = None
            return web.Response(body=dumps(envelope(data)), content_type="application/json")

        async with (
            RawApp(handler) as app,
            CellcastSession(api_key=API_KEY, base_url=app.url, max_retries=0) as cc,
        ):
            with pytest.raises(DecodeError) as info:
                async for _ in cc.tokens.list(limit=10, concurrency=concurrency):
                    pass
        assert str(info.value) == (
            "GET /api/v1/apiClient/token: the server seems to ignore 'page': 3 pages in a row"
            " brought no new item"
        )
        # Page 1 brought 10, then three pages of nothing new; prefetch may have asked a few more.
        assert 4 <= len(asked) <= 4 + concurrency


class TestReviewFindings:
    """A deadline bounds the wait for a pooled connection; an unreadable answer still
    counts as an attempt."""

    async def test_deadline_covers_the_wait_for_a_free_connection(self) -> None:
        async def slow(request: web.Request) -> web.StreamResponse:
            return web.Response(body=dumps(envelope(token_item())), content_type="application/json")

        app = RawApp(slow, latency=0.3)
        async with (
            app,
            CellcastSession(
                api_key=API_KEY, base_url=app.url, connection_limit=1, deadline=0.45
            ) as cc,
        ):
            results = await asyncio.gather(
                *(cc.tokens.get(TOKEN_ID) for _ in range(3)), return_exceptions=True
            )
        kinds = sorted(type(r).__name__ for r in results)
        # One connection, 0.3 s an answer: the first call fits, the others wait for the
        # connection and run out of their 0.45 s while waiting or answering.
        assert kinds == ["ApiToken", "TimeoutError", "TimeoutError"]
        for result in results:
            if isinstance(result, Exception):
                assert str(result).endswith("the call's deadline of 0.45 s passed")
        assert app.max_in_flight == 1

    async def test_a_body_over_the_cap_is_a_counted_attempt(self) -> None:
        data = page_data([token_item(n, name="x" * 2000) for n in range(1, 11)])
        async with (
            serving(dumps(envelope(data))) as app,
            CellcastSession(api_key=API_KEY, base_url=app.url, max_response_bytes=1000) as cc,
        ):
            pager = cc.tokens.list(limit=10)
            with pytest.raises(DecodeError, match="max_response_bytes"):
                await pager.collect()
        assert (pager.stats.requests, pager.stats.retries, pager.stats.items) == (1, 0, 0)
