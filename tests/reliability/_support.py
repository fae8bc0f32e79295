"""What only the reliability suite needs: its key, a fixed answer, and every text an
exception shows. Its servers (:class:`RawApp`, :class:`ByteServer`) are the suite's own
(``tests/_servers.py``), its answers are built from ``tests/_wire.py``, and its sandbox on
a thread is ``tests/_threaded_sandbox.py``'s.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Awaitable

import pytest
from aiohttp import web

from cellcast_async import TimeoutError

from .._exceptions_seen import exception_chain
from .._servers import ByteServer, Handler, RawApp
from .._wire import SUB_ID, TOKEN_ID, TOKENS_PATH, dumps, envelope, list_data, token_item

__all__ = [
    "API_KEY",
    "SUB_ID",
    "TOKENS_PATH",
    "TOKEN_ID",
    "ByteServer",
    "Handler",
    "RawApp",
    "answering",
    "dumps",
    "envelope",
    "exception_texts",
    "raises_timeout",
    "page_data",
    "token_item",
]

# Long and realistic, so that "never shown" means something.
API_KEY = "ck_live_reliab1e_7d2f9a4c1e8b6d3f0a5c2e9b7d4f1a8c6e3b0d5f"


def page_data(items: list[object], **overrides: object) -> dict[str, object]:
    """The ``data`` of a one-page Cellcast listing; ``overrides`` replace its fields."""
    return {**list_data(items), **overrides}


def answering(
    status: int = 200,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Handler:
    """A handler that always gives the same answer."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, headers=headers or {})

    return handler


def exception_texts(exc: BaseException) -> list[str]:
    """Every way an exception shows itself: str, repr, args and the formatted traceback."""
    texts = ["".join(traceback.format_exception(exc))]
    for link in exception_chain(exc):
        texts += [str(link), repr(link), repr(link.args)]
    return texts


async def raises_timeout(call: Awaitable[object]) -> TimeoutError:
    """Await ``call`` on a session with ``timeout=0.3``: it must raise
    :class:`cellcast_async.TimeoutError` close to the timeout (0.3 s to 1.5 s), which is
    returned for the test's own checks."""
    started = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        await call
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 1.5
    return info.value
