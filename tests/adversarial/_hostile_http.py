"""A server on 127.0.0.1 that answers ``get`` correctly but with hostile rate-limit
headers (README "Rate limits": what a header says is capped and floored).

Each request gets the next set of headers from ``headers`` (the last one repeats), so a
test can send a tiny budget once and then take it away.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from .._servers import serve_app
from .._wire import TOKEN_ID, dumps, envelope, token_item
from ..reliability._support import API_KEY

__all__ = ["API_KEY", "TOKEN_ID", "HostileHeaders"]


class HostileHeaders:
    """``async with HostileHeaders([{...}, {...}]) as server``: ``server.url``, ``.seen``."""

    def __init__(self, headers: Sequence[dict[str, str]]) -> None:
        self.headers = list(headers) or [{}]
        self.seen = 0
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def _handle(self, request: web.Request) -> web.Response:
        headers = self.headers[min(self.seen, len(self.headers) - 1)]
        self.seen += 1
        return web.Response(
            body=dumps(envelope(token_item(1))),
            headers={"Content-Type": "application/json", **headers},
        )

    async def __aenter__(self) -> HostileHeaders:
        self._runner, self._port = await serve_app(self._handle)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
