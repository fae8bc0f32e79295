"""A hostile listing server for the walk tests: a plain HTTP server on 127.0.0.1.

It runs on its own thread (``http.server``), so async tests and ``cli.main()`` (which
calls ``asyncio.run`` itself) can both talk to it. ``respond(method, path, query)``
decides every answer; after ``cap`` requests it answers 500 to anything, so a walk that
never ends on its own is still bounded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .._wire import SUB_ID, TOKENS_PATH, envelope, list_data, token_item

__all__ = [
    "API_KEY",
    "SUB_ID",
    "TOKENS_PATH",
    "Respond",
    "WalkServer",
    "envelope",
    "listing",
    "token_item",
]

API_KEY = "ck_live_adversar1al_9c4e2a7f1b8d3e6c0a5f2b9d7e4c1a8f6b3d0e5c"

# (status, body) or (status, body, headers)
Respond = Callable[[str, str, dict[str, str]], tuple[Any, ...]]


def listing(
    items: list[Any],
    *,
    page: int,
    limit: int,
    total: int | None,
    more: bool,
    total_pages: int | None = None,
) -> dict[str, Any]:
    """Cellcast's listing envelope (seed 000) around one page; ``total`` may be ``null``
    and ``totalPages`` left out, as a hostile server may."""
    data = list_data(items, page=page, limit=limit, total_pages=total_pages, has_next=more)
    data["total"] = total
    return envelope(data)


class WalkServer:
    """``with WalkServer(respond) as server:``; ``server.url``, ``server.pages`` (asked)."""

    def __init__(self, respond: Respond, *, cap: int = 5000) -> None:
        self.respond = respond
        self.cap = cap
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                parts = urlsplit(self.path)
                query = dict(parse_qsl(parts.query))
                with outer._lock:
                    outer.requests.append((self.command, parts.path, query))
                    over = len(outer.requests) > outer.cap
                    answer = (
                        (500, {"status": False, "message": "cap"})
                        if over
                        else outer.respond(self.command, parts.path, query)
                    )
                status, body = answer[0], answer[1]
                headers: dict[str, str] = answer[2] if len(answer) > 2 else {}
                raw = json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_PUT = do_DELETE = do_POST = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # serve_forever polls for shutdown() every poll_interval (0.5 s by default), and
        # every test waits that long on leaving the block: poll often instead.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def pages(self) -> list[int]:
        """The ``page`` of every listing request, in the order they came."""
        with self._lock:
            return [int(q["page"]) for _, _, q in self.requests if "page" in q]

    def __enter__(self) -> WalkServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
