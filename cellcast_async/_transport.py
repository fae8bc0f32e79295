"""The one module that talks to aiohttp's client.

A transport is one coroutine, ``request()``, plus ``aclose()`` (httpx
``_transports/base.py``). :class:`AiohttpTransport` adds what every request needs:
the ``Authorization`` and ``User-Agent`` headers, a per-attempt timeout, retries with
backoff, and the single place where aiohttp's exceptions become ours
(:func:`_map_exceptions`, after httpx's ``map_exceptions``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import aiohttp
import attrs
from aiohttp import hdrs
from aiohttp.http_exceptions import ContentEncodingError
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from . import _protocol
from ._exceptions import DecodeError, TimeoutError, TransportError

__all__ = ["AiohttpTransport", "Response", "Transport"]

logger = logging.getLogger("cellcast_async")

# Failures that the same request will meet again: a certificate or TLS setup error.
_NOT_RETRIED = (aiohttp.ClientSSLError,)

# Looked up at call time so tests can swap it for a fake clock: the suite never sleeps.
_sleep = asyncio.sleep


@attrs.frozen
class Response:
    """One final answer: what the server said, and how many attempts it took.

    ``answer_lost`` is true when an earlier attempt got no answer at all (connection
    dropped, timeout): the server may have acted on it.
    """

    status: int
    reason: str | None
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)
    attempts: int = 1
    answer_lost: bool = False


class Transport(Protocol):
    """What ``CellcastSession`` needs from a transport."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> Response: ...

    async def aclose(self) -> None: ...


@contextlib.contextmanager
def _map_exceptions(method: str, path: str, timeout: float | None) -> Iterator[None]:
    """Translate aiohttp's and asyncio's failures into ours, keeping the cause."""
    try:
        yield
    except asyncio.TimeoutError as exc:  # includes aiohttp.ServerTimeoutError
        raise TimeoutError(
            f"no answer within {timeout:g} s" if timeout else "timed out",
            method=method,
            path=path,
        ) from exc
    except aiohttp.ClientError as exc:
        if isinstance(exc, aiohttp.ClientResponseError):
            _mask_request_headers(exc)
        undecodable = _content_encoding_failure(exc)
        if undecodable is not None:
            # An answer came, but its body is not what its Content-Encoding says: the
            # same request gets the same answer, so it is a DecodeError, not retried.
            # (aiohttp failed before handing over the status: status_code stays 0.)
            raise DecodeError(undecodable, method=method, path=path) from exc
        raise TransportError(
            f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
            method=method,
            path=path,
        ) from exc


def _content_encoding_failure(exc: BaseException) -> str | None:
    """What went wrong if ``exc`` comes from a body that its Content-Encoding cannot decode.

    aiohttp wraps that failure in ``ClientPayloadError`` (while the body is read) or in
    ``ClientResponseError`` (when it arrived with the headers); the cause says which.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ContentEncodingError):
            return f"the body does not decode as its Content-Encoding says ({seen.message})"
        seen = seen.__cause__ or seen.__context__
    return None


async def _read(raw: aiohttp.ClientResponse, method: str, path: str) -> bytes:
    """The whole body; an undecodable one is a DecodeError, or empty on an error status."""
    try:
        return await raw.read()
    except aiohttp.ClientPayloadError as exc:
        undecodable = _content_encoding_failure(exc)
        if undecodable is None:
            raise
        if 200 <= raw.status < 300:
            raise DecodeError(
                undecodable, status_code=raw.status, method=method, path=path
            ) from exc
        return b""  # an error answer: like an HTML error page, its status says enough


def _mask_request_headers(exc: aiohttp.ClientResponseError) -> None:
    """Mask the key in the request headers aiohttp hangs on this error.

    aiohttp raises ``ClientResponseError`` for a malformed answer with the request's
    ``request_info``, whose headers hold ``Authorization: Bearer <key>``, and its repr
    prints them. It stays our error's ``__cause__`` (its words help debugging), so the
    key is masked in place: DESIGN.md, the key never appears in a repr.
    """
    info = exc.request_info
    if hdrs.AUTHORIZATION not in info.headers:
        return
    headers = CIMultiDict(info.headers)
    headers[hdrs.AUTHORIZATION] = "Bearer ****"
    masked = aiohttp.RequestInfo(info.url, info.method, CIMultiDictProxy(headers), info.real_url)
    exc.request_info = masked
    # BaseException.args holds the same request_info, and pickling and tracebacks read it.
    exc.args = tuple(masked if arg is info else arg for arg in exc.args)


def _pool_slots(session: aiohttp.ClientSession) -> asyncio.Semaphore | None:
    """One slot per connection the session's pool allows to our host (None: no bound)."""
    connector = session.connector
    if connector is None:
        return None
    bounds = [n for n in (connector.limit, connector.limit_per_host) if n > 0]
    return asyncio.Semaphore(min(bounds)) if bounds else None


class AiohttpTransport:
    """Sends requests with aiohttp, retrying what the rules allow.

    An injected ``aiohttp.ClientSession`` is used as it is and never closed; otherwise
    one is created on first use and closed by :meth:`aclose`. Retries follow
    DESIGN.md: GET, PUT and DELETE on a lost answer, 429, 500, 502, 503 and 504; POST
    only on 429; exponential backoff with full jitter, or the server's ``Retry-After``.
    Redirects are never followed, so the key cannot travel to another host.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        user_agent: str,
        timeout: float | None = 30.0,
        max_retries: int = 2,
        session: aiohttp.ClientSession | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        retry_after_cap: float = 60.0,
        connection_limit: int = 100,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "User-Agent": user_agent,
            "Accept": "application/json",
        }
        self._timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_retries = max_retries
        self._session = session
        self._owns_session = session is None
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._retry_after_cap = retry_after_cap
        self._connection_limit = connection_limit
        self._slots = None if session is None else _pool_slots(session)
        self._rng = random.Random()
        self._closed = False

    def __repr__(self) -> str:
        return f"<AiohttpTransport {self._base_url} retries={self._max_retries}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this CellcastSession is closed; open a new one")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connection_limit),
            )
            # aiohttp >= 3.10 silently resends a GET/PUT/DELETE once when the connection
            # drops. That hides a lost answer from us: a DELETE that was applied, then
            # resent, would come back 404 and look like a failure. Our own retries cover
            # a stale keep-alive connection, and count against max_retries as documented.
            # (aiohttp's own test client turns it off the same way.)
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
            self._slots = _pool_slots(self._session)
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> Response:
        """Send ``method path`` until it gets a final answer, or raise a TransportError."""
        # The path is already percent-encoded segment by segment (_protocol.segment):
        # encoded=True stops yarl from decoding %2E%2E back into a "..".
        url = URL(self._base_url + path, encoded=True)
        if params:
            url = url.update_query(params)
        answer_lost = False
        attempt = 0
        while True:
            # Each attempt, not just the first: the session may be closed during a backoff.
            client = self._client()
            try:
                # Wait for a free connection before the attempt's clock starts: aiohttp's
                # timeout also runs while a request queues for the pool, so thousands of
                # calls sharing one session would time out without ever being sent.
                async with self._slots or contextlib.nullcontext():
                    started = time.monotonic()
                    with _map_exceptions(method, path, self._timeout):
                        async with client.request(
                            method,
                            url,
                            json=json,
                            headers=self._headers,
                            timeout=self._client_timeout,
                            allow_redirects=False,
                            # An injected session may raise_for_status=True: the status is
                            # ours to map (APIError, retries), not a ClientResponseError.
                            raise_for_status=False,
                        ) as raw:
                            body = await _read(raw, method, path)
                response = Response(
                    status=raw.status,
                    reason=raw.reason,
                    headers=raw.headers,
                    body=body,
                    attempts=attempt + 1,
                    answer_lost=answer_lost,
                )
            except TransportError as exc:
                if (
                    attempt >= self._max_retries
                    or not _protocol.is_retryable(method, None)
                    or isinstance(exc.__cause__, _NOT_RETRIED)
                ):
                    raise
                answer_lost = True
                delay = self._backoff(attempt)
                outcome = type(exc).__name__
            else:
                logger.debug(
                    "%s %s -> %d in %.1f ms (attempt %d)",
                    method,
                    path,
                    response.status,
                    (time.monotonic() - started) * 1000,
                    attempt + 1,
                )
                if attempt >= self._max_retries or not _protocol.is_retryable(
                    method, response.status
                ):
                    return response
                retry_after = _protocol.parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is not None and retry_after > self._retry_after_cap:
                    return response  # longer than we will wait: the caller sees retry_after
                delay = self._backoff(attempt) if retry_after is None else retry_after
                outcome = str(response.status)
            attempt += 1
            logger.debug(
                "retrying %s %s after %s: attempt %d of %d in %.3f s",
                method,
                path,
                outcome,
                attempt + 1,
                self._max_retries + 1,
                delay,
            )
            await _sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return _protocol.backoff_delay(
            attempt, base=self._backoff_base, cap=self._backoff_cap, rng=self._rng
        )

    async def aclose(self) -> None:
        """Close the aiohttp session if this transport created it. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
