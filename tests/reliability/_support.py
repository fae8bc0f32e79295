"""Helpers for the reliability suite: tiny servers on 127.0.0.1 and a sandbox on a thread.

- :class:`RawApp`: a bare ``aiohttp.web`` app whose every answer the test decides, that
  records each request, the client ports it came from and how many were in flight at once.
- :class:`ByteServer`: a raw ``asyncio`` server that writes fixed bytes, for answers that
  are not even HTTP.
- :class:`LiveSandbox`: a :class:`Sandbox` on its own thread and event loop, so that the
  test's loop holds only the SDK's own tasks (and ``cli.main()`` can run ``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from .._exceptions_seen import exception_chain
from .._threaded_sandbox import ThreadedSandbox

T = TypeVar("T")

TOKENS_PATH = "/api/v1/apiClient/token"
# Long and realistic, so that "never shown" means something.
API_KEY = "ck_live_reliab1e_7d2f9a4c1e8b6d3f0a5c2e9b7d4f1a8c6e3b0d5f"
TOKEN_ID = "6877b1234567890abcdef123"
SUB_ID = "6877a383d68781beb3b14110"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_item(n: int = 1, **overrides: Any) -> dict[str, Any]:
    """A token as seed 000's listing sends it."""
    item: dict[str, Any] = {
        "_id": f"{n:024x}",
        "name": f"Token {n}",
        "token": "ccst_****************************************abcd",
        "status": "active",
        "createdAt": "2024-01-15T10:30:00.000Z",
        "subAccount": {
            "_id": SUB_ID,
            "name": "Sub Client Name",
            "email": "sub@example.com",
            "companyName": "Sub Client Company",
        },
    }
    item.update(overrides)
    return item


def envelope(data: Any, **overrides: Any) -> dict[str, Any]:
    """Cellcast's success envelope (seeds 000-003) around ``data``."""
    body: dict[str, Any] = {
        "app_type": "web",
        "status": True,
        "message": "OK",
        "message_type": "toast",
        "data": data,
        "error": {},
    }
    body.update(overrides)
    return body


def page_data(items: list[Any], **overrides: Any) -> dict[str, Any]:
    """The ``data`` of a one-page Cellcast listing."""
    data: dict[str, Any] = {
        "items": items,
        "total": len(items),
        "page": 1,
        "limit": 10,
        "totalPages": 1,
        "hasNextPage": False,
        "hasPrevPage": False,
    }
    data.update(overrides)
    return data


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


@dataclass
class Seen:
    """One request as a :class:`RawApp` received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RawApp:
    """A bare aiohttp.web app on 127.0.0.1: ``handler`` decides every answer."""

    handler: Handler
    latency: float = 0.0
    requests: list[Seen] = field(default_factory=list)
    peers: set[tuple[str, int]] = field(default_factory=set)
    in_flight: int = 0
    max_in_flight: int = 0
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> RawApp:
        app = web.Application()
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer is not None:
            self.peers.add((peer[0], peer[1]))
        self.requests.append(Seen(request.method, request.raw_path, dict(request.headers), body))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            return await self.handler(request)
        finally:
            self.in_flight -= 1


def answering(
    status: int = 200,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Handler:
    """A handler that always gives the same answer."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, headers=headers or {})

    return handler


class ByteServer:
    """A raw asyncio server on 127.0.0.1: reads a request head, writes ``chunks``, then
    closes (or, with ``stall``, keeps the connection open without another byte).

    Each chunk is written after ``pause`` seconds, so ``chunks`` can drip a body.
    """

    def __init__(self, *chunks: bytes, pause: float = 0.0, stall: bool = False) -> None:
        self.chunks = chunks
        self.pause = pause
        self.stall = stall
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._stop = asyncio.Event()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> ByteServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._stop.set()
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            for chunk in self.chunks:
                if self.pause:
                    await asyncio.sleep(self.pause)
                if writer.is_closing():
                    return
                writer.write(chunk)
                await writer.drain()
            if self.stall:
                await self._stop.wait()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


class LiveSandbox(ThreadedSandbox):
    """A :class:`Sandbox` served from a background thread's own event loop."""


def exception_texts(exc: BaseException) -> list[str]:
    """Every way an exception shows itself: str, repr, args and the formatted traceback."""
    texts = ["".join(traceback.format_exception(exc))]
    for link in exception_chain(exc):
        texts += [str(link), repr(link), repr(link.args)]
    return texts
