"""Servers on 127.0.0.1 for the whole suite; each fake server of a test folder is built
from these (no test talks to anything but 127.0.0.1).

- :func:`serve_app`: an ``aiohttp.web`` app on a free port, with one catch-all handler
  or routes of its own.
- :class:`BackgroundLoop`: an event loop on its own thread, for a server that must not
  share the test's loop (``cli.main()`` runs ``asyncio.run`` itself; cancellation and
  timing tests want the test's loop to hold only the SDK's tasks).
- :class:`RawApp`: an app whose every answer the test decides, recording each request,
  the client ports and how many were in flight at once.
- :class:`ByteServer`: a raw ``asyncio`` server that writes fixed bytes, for answers that
  are not even HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")
L = TypeVar("L", bound="BackgroundLoop")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve_app(
    handler: Handler | None = None, *, app: web.Application | None = None
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` (or one that sends every method and path to ``handler``) on
    127.0.0.1; the runner (``await runner.cleanup()`` stops it) and the port."""
    if app is None:
        assert handler is not None
        app = web.Application()
        app.router.add_route("*", r"/{tail:[\s\S]*}", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, int(runner.addresses[0][1])


class BackgroundLoop:
    """An event loop running on its own daemon thread until :meth:`close`."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the background loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def call(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` on the loop's thread, so it never races a request handler."""

        async def call() -> T:
            return fn()

        return self.run(call())

    def __enter__(self: L) -> L:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def _stop(self) -> None:
        """What to stop on the loop before it ends (a subclass's server)."""

    def close(self) -> None:
        self.run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


class ThreadedApp(BackgroundLoop):
    """An ``aiohttp.web`` app (see :func:`serve_app`) served from a :class:`BackgroundLoop`."""

    def __init__(self, handler: Handler | None = None, *, app: web.Application | None = None):
        super().__init__()
        self._runner, self.port = self.run(serve_app(handler, app=app))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _stop(self) -> None:
        await self._runner.cleanup()


@dataclass
class Seen:
    """One request as a :class:`RawApp` received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RawApp:
    """``async with RawApp(handler) as app``: ``handler`` decides every answer."""

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
        self._runner, self.port = await serve_app(self._handle)
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
