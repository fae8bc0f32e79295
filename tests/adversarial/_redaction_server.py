"""A hostile Cellcast on its own thread: it echoes a secret back in a chosen encoding.

On its own thread and event loop (``tests/_servers.py``), so that both the SDK (on the
test's loop) and ``cli.main()`` (which runs ``asyncio.run`` itself) can talk to it.
127.0.0.1 only.

- ``POST /api/v1/apiClient/token`` answers 201 with a fresh full token value (seed 001).
- ``GET /api/v1/apiClient/token/full`` answers 200 with a token whose value is full.
- ``GET /api/v1/apiClient/token/huge`` answers a 400 of 5 MB (see ``_huge``).
- Any other request answers 400 and echoes :attr:`EchoServer.secret` (the caller's key
  by default), encoded by :attr:`EchoServer.encode`, into every field a server controls:
  ``message``, ``error.message``, ``data``, a header, ``X-Request-Id`` and the reason.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .._servers import ThreadedApp
from .._wire import SUB_ID, TOKEN_ID, TOKENS_PATH, envelope

__all__ = ["ENCODINGS", "HUGE_CUT", "TOKEN_ID", "EchoServer"]


def _all_u(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


# Each encoding a server may echo a secret in (README, "Redaction"), as the server's
# text holds it once its JSON is parsed.
ENCODINGS: dict[str, Callable[[str], str]] = {
    "plain": lambda s: s,
    "percent-upper": lambda s: quote(s, safe=""),
    "percent-lower": lambda s: re.sub("%..", lambda m: m.group().lower(), quote(s, safe="")),
    "percent-partial": lambda s: quote(s),  # '/' left as it is, as many servers do
    "json": lambda s: json.dumps(s)[1:-1],
    "json-php": lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),
    "json-all-u": _all_u,
    "json-all-u-upper": lambda s: _all_u(s).upper().replace("\\U", "\\u"),
    "base64": _b64,
    "base64-unpadded": lambda s: _b64(s).rstrip("="),
    "base64url": _b64url,
    "base64url-unpadded": lambda s: _b64url(s).rstrip("="),
    "hex": lambda s: binascii.hexlify(s.encode()).decode(),
    "hex-upper": lambda s: binascii.hexlify(s.encode()).decode().upper(),
    "html-named": lambda s: html.escape(s),
    "html-decimal": lambda s: "".join(f"&#{ord(c)};" for c in s),
    "html-hex": lambda s: "".join(f"&#x{ord(c):x};" for c in s),
    "str-repr": lambda s: repr(s)[1:-1],
    "bytes-repr": lambda s: repr(s.encode())[2:-1],
}


class EchoServer(ThreadedApp):
    """The hostile server; ``secret=None`` echoes the request's own Bearer key."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.encode: Callable[[str], str] = ENCODINGS["plain"]
        self.created: list[str] = []
        super().__init__(self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == TOKENS_PATH:
            value = "ccst_" + secrets.token_urlsafe(30)
            self.created.append(value)
            return _json(201, envelope(_item(value), message="API token created successfully"))
        if request.method == "GET" and request.path == f"{TOKENS_PATH}/full":
            value = "ccst_" + secrets.token_urlsafe(30)
            self.created.append(value)
            return _json(200, envelope(_item(value)))
        if request.path == f"{TOKENS_PATH}/huge":
            return self._huge(request)
        secret = self.secret
        if secret is None:
            secret = request.headers["Authorization"].removeprefix("Bearer ")
        echo = self.encode(secret)
        body = {
            "status": False,
            "message": f"key {echo} rejected",
            "data": {"echo": echo},
            "error": {"message": f"echo {echo} end"},
        }
        headers = {"X-Echo": f"was {echo}", "X-Request-Id": f"req-{echo}"}
        return _json(400, body, headers=headers, reason=f"Bad {echo}")

    def _huge(self, request: web.Request) -> web.StreamResponse:
        """A 400 whose message is 100,000 characters with the key across the 65,536th,
        and whose body holds 5 MB of strings."""
        key = request.headers["Authorization"].removeprefix("Bearer ")
        message = "x" * (HUGE_CUT - 10) + key + "y" * (100_000 - HUGE_CUT - len(key) + 10)
        body = {
            "status": False,
            "message": message,
            "data": [f"{key} {n:090d}" for n in range(50_000)],
            "error": {},
        }
        return _json(400, body)


HUGE_CUT = 65_536


def _item(value: str) -> dict[str, Any]:
    return {
        "_id": TOKEN_ID,
        "name": "Production API",
        "token": value,
        "status": "active",
        "subAccountId": SUB_ID,
        "createdAt": "2024-01-15T10:30:00.000Z",
    }


def _json(
    status: int, body: Any, *, headers: dict[str, str] | None = None, reason: str | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        reason=reason,
    )
