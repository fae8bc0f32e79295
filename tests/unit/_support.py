"""Shared fakes for the unit suite: a key, the answers most tests need, a paged fake
listing on aioresponses, a clock that moves only when the code sleeps, and
``FakeTransport``, a ``cellcast_async.Transport`` that needs no HTTP at all. Answers are
built from ``tests/_wire.py`` (``envelope``, ``list_data`` and ``TOKENS_PATH`` are
re-exported from there)."""

from __future__ import annotations

import copy
import json as jsonlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from aioresponses import CallbackResult, aioresponses
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from cellcast_async import CellcastSession, TransportResponse
from cellcast_async._transport import CLOSED

from .._wire import TOKENS_PATH, envelope, list_data, token_item

__all__ = [
    "ANY_TOKEN_URL",
    "API_KEY",
    "BASE_URL",
    "LISTING_URL",
    "OK",
    "SLOW_DOWN",
    "TOKENS_PATH",
    "TOKENS_URL",
    "TOKEN_PATH",
    "UNAVAILABLE",
    "Answer",
    "FakeClock",
    "FakeTransport",
    "Sent",
    "add_listing",
    "answer",
    "envelope",
    "exactly",
    "list_data",
    "on_clock",
    "pages_requested",
    "sent",
    "session",
    "token_json",
]

BASE_URL = "https://api.cellcast.com"
TOKENS_URL = BASE_URL + TOKENS_PATH
# Long and realistic, so that "never shown" is a meaningful check.
API_KEY = "ck_live_4f9a1c7e2b8d6f3a0e5c9b7d1a3f8e6c2b4d0a9f"
# Every token path: `.../token`, `.../token/<id>`, `.../token/sub-account/<id>`, any query.
ANY_TOKEN_URL = re.compile(r"^" + re.escape(TOKENS_URL) + r"(/.*)?(\?.*)?$")
# The listing (`.../token?...`), any query.
LISTING_URL = re.compile(r"^" + re.escape(TOKENS_URL) + r"\?.*$")


def session(**kwargs: Any) -> CellcastSession:
    """A session on the default base URL with the test key (overridable)."""
    kwargs.setdefault("api_key", API_KEY)
    return CellcastSession(**kwargs)


class FakeClock:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def on_clock(clock: FakeClock, **kwargs: Any) -> CellcastSession:
    """A :func:`session` whose clock and sleep are ``clock``'s."""
    return session(clock=clock, sleep=clock.sleep, **kwargs)


def token_json(n: int, **overrides: Any) -> dict[str, Any]:
    """Token number ``n`` as the listing of seed 000 sends it, with seed 000's masked value
    and an id (``tok001``) a test can read."""
    return token_item(
        n, **{"_id": f"tok{n:03d}", "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...", **overrides}
    )


# The answers most tests need: token 1 (at TOKEN_PATH), a 503's and a 429's bodies.
OK = envelope(token_json(1))
TOKEN_PATH = f"{TOKENS_PATH}/tok001"
UNAVAILABLE = {"status": False, "message": "Service Unavailable", "data": {}, "error": {}}
SLOW_DOWN = {"status": False, "message": "Too many requests", "data": {}, "error": {}}


def add_listing(
    m: aioresponses,
    items: Sequence[Mapping[str, Any]],
    *,
    limit: int,
    path: str = TOKENS_PATH,
    total_pages: int | None = None,
    has_next: Callable[[int], bool] | None = None,
    pages: Mapping[int, Sequence[Mapping[str, Any]]] | None = None,
    log: list[int] | None = None,
) -> None:
    """Serve ``items`` at ``path`` as Cellcast pages of ``limit``, any page, any number of times.

    ``pages`` replaces the items of some page numbers; ``total_pages`` and ``has_next``
    override what the server claims (to test a pager that must not believe it). Each
    requested page number is appended to ``log``, in the order the requests arrive.
    """
    chunks = [list(items[i : i + limit]) for i in range(0, len(items), limit)]
    claimed_pages = len(chunks) if total_pages is None else total_pages

    def handler(url: URL, **kwargs: Any) -> CallbackResult:
        number = int(url.query["page"])
        if log is not None:
            log.append(number)
        if pages is not None and number in pages:
            chunk = list(pages[number])
        else:
            chunk = chunks[number - 1] if 1 <= number <= len(chunks) else []
        data = list_data(
            copy.deepcopy(chunk),
            page=number,
            limit=limit,
            total=len(items),
            total_pages=claimed_pages,
            has_next=None if has_next is None else has_next(number),
        )
        return CallbackResult(status=200, payload=envelope(data))

    m.get(re.compile(r"^" + re.escape(BASE_URL + path) + r"\?.*$"), callback=handler, repeat=True)


def sent(m: aioresponses) -> list[tuple[str, URL, dict[str, Any]]]:
    """Every request aioresponses saw, as ``(method, url, kwargs)``."""
    return [
        (method, url, call.kwargs) for (method, url), calls in m.requests.items() for call in calls
    ]


def pages_requested(m: aioresponses) -> list[int]:
    """The ``page`` query parameter of every GET, in order of first request."""
    return [int(url.query["page"]) for method, url, _ in sent(m) if method == "GET"]


def exactly(message: str) -> str:
    """A ``pytest.raises(match=...)`` pattern for exactly ``message``."""
    return "^" + re.escape(message) + "$"


@attrs.frozen
class Sent:
    """One attempt a :class:`FakeTransport` was asked to send."""

    method: str
    path: str
    params: Mapping[str, str] | None
    json: Any
    headers: Mapping[str, str] | None
    timeout: float | None


Answer = Callable[[Sent], "TransportResponse | BaseException"]


def answer(
    payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> TransportResponse:
    """A JSON answer as a transport returns it."""
    return TransportResponse(
        status=status,
        reason=None,
        headers=CIMultiDictProxy(
            CIMultiDict({"Content-Type": "application/json", **(headers or {})})
        ),
        body=jsonlib.dumps(payload).encode(),
    )


class FakeTransport:
    """A ``cellcast_async.Transport`` in memory: the session's seam, with no aiohttp.

    Each ``send`` is recorded in ``sent`` and answered by the next of ``answers`` (the
    last one repeats): a ``TransportResponse`` is returned, an exception raised, a
    callable is called with the :class:`Sent` and its result used the same way.
    """

    def __init__(self, *answers: TransportResponse | BaseException | Answer) -> None:
        self.answers = list(answers)
        self.sent: list[Sent] = []
        self.closes = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        max_response_bytes: int | None = None,
    ) -> TransportResponse:
        if self._closed:
            raise RuntimeError(CLOSED)
        request = Sent(method, path, params, json, headers, timeout)
        self.sent.append(request)
        next_answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        result = next_answer(request) if callable(next_answer) else next_answer
        if isinstance(result, BaseException):
            raise result
        return result

    async def aclose(self) -> None:
        self.closes += 1
        self._closed = True
