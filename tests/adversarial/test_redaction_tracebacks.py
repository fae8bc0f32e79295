"""A traceback formatted with its frames' locals does not show the key.

pytest ``--showlocals``, rich's ``show_locals`` and Sentry print the locals of every
frame of a traceback. The SDK holds the key and the Authorization header as a ``str``
whose repr is masked, builds the request headers without a local of its own, and drops
the frames below the public call from the errors it raises (README, "Redaction").
Checked with the standard library's ``TracebackException(capture_locals=True)`` and
rich's ``Traceback(show_locals=True)``, on failing calls of every kind.
"""

from __future__ import annotations

import asyncio
import io
import json
import traceback
from collections.abc import Iterator

import pytest
from aiohttp import web
from rich.console import Console
from rich.traceback import Traceback

from cellcast_async import BadRequestError, CellcastSession, TransportError

from ._redaction_server import TOKEN_ID, EchoServer

KEY = 'ck_live_q"u\\o/te+eq=9f2a7c4e1b8d6f3a0e5c9b7d1a3f8e6c'
# Longer than rich's 80-character cut: rich prints a long string local as a slice.
LONG_KEY = "ck_live_" + "7d2f9a4c1e8b6d3f0a5c2e9b7d4f1a8c" * 4


def spellings(secret: str) -> set[str]:
    return {
        secret,
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        repr(secret.encode())[2:-1],
        secret[:60],  # a cut-short repr
        json.dumps(secret)[1:61],
        repr(secret)[1:61],
    }


def formatted(exc: BaseException) -> list[str]:
    """The traceback with locals, as the standard library and rich print it."""
    stdlib = "".join(
        traceback.TracebackException(
            type(exc), exc, exc.__traceback__, capture_locals=True
        ).format()
    )
    console = Console(file=io.StringIO(), width=250, color_system=None)
    console.print(Traceback.from_exception(type(exc), exc, exc.__traceback__, show_locals=True))
    rich = console.file.getvalue()  # type: ignore[attr-defined]
    return [stdlib, rich]


def assert_hidden(exc: BaseException, secret: str) -> list[str]:
    texts = formatted(exc)
    assert all("Traceback" in text for text in texts)
    leaks = [s[:20] for s in spellings(secret) for text in texts if s in text]
    assert leaks == []
    return texts


@pytest.fixture(scope="module")
def server() -> Iterator[EchoServer]:
    hostile = EchoServer()
    yield hostile
    hostile.close()


class TestFailingCalls:
    """Errors the SDK raises, and a cancellation in the middle of aiohttp's request."""

    async def test_an_api_error_whose_answer_echoes_the_key(self, server: EchoServer) -> None:
        async with CellcastSession(api_key=KEY, base_url=server.url, max_retries=0) as cc:
            with pytest.raises(BadRequestError) as info:
                await cc.tokens.get(TOKEN_ID)
        assert str(info.value).endswith("-> 400 key **** rejected: echo **** end")
        assert_hidden(info.value, KEY)

    @pytest.mark.parametrize("key", ["KEY", "LONG_KEY"])
    async def test_connection_refused(self, closed_port: int, key: str) -> None:
        async with CellcastSession(
            api_key=globals()[key], base_url=f"http://127.0.0.1:{closed_port}", max_retries=0
        ) as cc:
            with pytest.raises(TransportError) as info:
                await cc.tokens.get(TOKEN_ID)
        assert info.value.kind == "connect"
        assert_hidden(info.value, globals()[key])

    @pytest.mark.parametrize("key", ["KEY", "LONG_KEY"])
    async def test_cancelled_inside_aiohttp(self, key: str) -> None:
        """The CancelledError goes through aiohttp's frames: their headers show '****'."""
        arrived, release = asyncio.Event(), asyncio.Event()

        async def stall(request: web.Request) -> web.StreamResponse:
            arrived.set()
            await release.wait()
            return web.Response(status=204)

        app = web.Application()
        app.router.add_route("*", r"/{tail:[\s\S]*}", stall)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with CellcastSession(api_key=globals()[key], base_url=url) as cc:
                call = asyncio.create_task(cc.tokens.get(TOKEN_ID))
                await asyncio.wait_for(arrived.wait(), 10)
                call.cancel()
                with pytest.raises(asyncio.CancelledError) as info:
                    await call
        finally:
            release.set()
            await runner.cleanup()
        stdlib, rich = assert_hidden(info.value, globals()[key])
        # aiohttp's own frames hold the header: it is there, masked.
        assert "'Authorization': '****'" in stdlib
        assert "'Authorization': '****'" in rich


class TestTheConstructor:
    """A ValueError from the session's options, raised once the key was read."""

    def test_a_bad_option_after_the_key(self) -> None:
        with pytest.raises(ValueError, match=r"^rate_limit must be a positive number") as info:
            CellcastSession(api_key=KEY, rate_limit=-1)
        stdlib, _ = assert_hidden(info.value, KEY)
        assert "api_key = '****'" in stdlib

    def test_a_key_with_a_line_break(self) -> None:
        with pytest.raises(
            ValueError, match=r"^api_key must not contain CR, LF or other control characters$"
        ) as info:
            CellcastSession(api_key=KEY + "\r\nX-Injected: 1")
        assert_hidden(info.value, KEY)

    def test_a_key_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CELLCAST_API_KEY", KEY)
        with pytest.raises(ValueError, match=r"^rate_limit must be a positive number") as info:
            CellcastSession(rate_limit=float("nan"))
        assert_hidden(info.value, KEY)
