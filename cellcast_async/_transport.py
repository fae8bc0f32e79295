"""The one module that talks to aiohttp's client.

A transport sends one attempt and returns what came back: ``send()`` plus ``aclose()``
(httpx ``_transports/base.py``). Retries, deadlines and everything else a call needs
live in the request pipeline above it. :class:`AiohttpTransport` adds what every
attempt needs (``Authorization``, ``User-Agent``, a timeout, a cap on the body) and
is the single place where aiohttp's exceptions become ours (:func:`_translate`).

aiohttp's exception texts can quote the bytes it failed to parse (a status line, a
chunk header, a body), and those bytes may hold a token: so no aiohttp text is ever
copied into ours and no aiohttp exception is chained. Each failure is named by its kind
instead (README, "Reliability"); an ``OSError`` underneath, which holds only the
operating system's words, is kept as the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any, Final, Protocol

import aiohttp
import attrs
from aiohttp.http_exceptions import (
    ContentEncodingError,
    ContentLengthError,
    HttpProcessingError,
    TransferEncodingError,
)
from yarl import URL

from ._exceptions import CellcastError, DecodeError, TransportError, TransportErrorKind
from ._exceptions import TimeoutError as AttemptTimeoutError  # not the builtin asyncio raises
from ._redact import Hidden

__all__ = ["CLOSED", "AiohttpTransport", "Response", "Transport"]

_CHUNK = 64 * 1024
CLOSED: Final = "this CellcastSession is closed; open a new one"


@attrs.frozen
class Response:
    """One attempt's answer: what the server said, and how long it took.

    Public as ``cellcast_async.TransportResponse``: what a :class:`Transport` returns.
    ``status`` is the HTTP status (any: a 404 or a 503 is an answer, not a failure);
    ``reason`` its phrase or None; ``headers`` the answer's headers (a case-insensitive
    mapping is best: ``Retry-After`` and ``Content-Type`` are looked up by name);
    ``body`` the whole body, already decompressed; ``elapsed`` the seconds from
    sending to the answer.
    """

    status: int
    # Server text, like the body: a reason phrase may echo the key, and a traceback
    # formatted with locals prints this object's repr (README "Redaction").
    reason: str | None = attrs.field(repr=False)
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)
    elapsed: float = 0.0


class Transport(Protocol):
    """What the request pipeline needs from a transport: one attempt at a time.

    Pass one as ``CellcastSession(transport=...)`` to send requests some other way than
    aiohttp (another HTTP client, a recording, an in-memory fake in tests). Everything
    else (retries, deadlines, the rate governor, hooks, decoding, redaction) stays the
    session's. The contract:

    - ``send(method, path, *, params, json, headers, timeout, max_response_bytes)``
      sends ONE attempt and returns a :class:`TransportResponse` for every answer the server
      gives, whatever its status: never retry, never follow a redirect, never raise
      for a 4xx or 5xx. ``path`` is already percent-encoded and starts with ``/``
      (join it to your base URL as is); ``params`` is the query string, ``json`` the
      body to send as JSON (``None``: no body); ``headers`` are extra per-call headers
      to send. The transport adds what every attempt needs beyond them: the
      ``Authorization: Bearer <key>`` header, ``User-Agent`` and
      ``Accept: application/json`` (the session does not hand it the key).
      ``timeout`` bounds the attempt in seconds (``None``: none); a body longer than
      ``max_response_bytes`` (``None``: no cap) must not be read whole.
    - When no usable answer comes, ``send`` raises :class:`TransportError` with a
      ``kind`` (``TransportErrorKind``; ``"reset"``, ``"connect"``, ... are retried,
      ``"tls"`` and ``"url"`` are not), or its subclass :class:`TimeoutError` when
      ``timeout`` passed; a body that cannot be read as sent (over the cap, a broken
      Content-Encoding) is a :class:`DecodeError`. Messages must never quote the key
      or the body. Any other exception fails the call as it is.
    - ``aclose()`` releases what the transport holds; the session calls it each time
      it is closed, so it must be safe to call twice. Afterwards ``closed`` is True and
      ``send`` raises ``RuntimeError``.
    - ``send`` is called from many tasks at once: it must be safe to share.
    """

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
    ) -> Response:
        """Send one attempt; the answer whatever its status, or a :class:`TransportError`."""
        ...

    async def aclose(self) -> None:
        """Release what the transport holds; safe to call twice."""
        ...

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has run: ``send`` then raises ``RuntimeError``."""
        ...


def _chain_of(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _framing_failure(exc: BaseException) -> str | None:
    """What broke in a body aiohttp could not read, named without quoting it.

    aiohttp's parser reports a bad chunk header as a ``BadHttpMessage`` when it arrives
    with the head; its text is only looked at, to tell that case apart, never copied.
    """
    for seen in _chain_of(exc):
        if isinstance(seen, TransferEncodingError) or (
            isinstance(seen, HttpProcessingError) and "chunk" in str(seen.message).lower()
        ):
            return "the answer's chunked framing is broken"
        if isinstance(seen, ContentLengthError):
            return "the answer ended before the length its Content-Length promised"
    return None


def _encoding_failure(exc: BaseException) -> bool:
    return any(isinstance(seen, ContentEncodingError) for seen in _chain_of(exc))


_UNDECODABLE = "the body does not decode as its Content-Encoding says"


def _describe(
    exc: aiohttp.ClientError, base_url: URL
) -> tuple[TransportErrorKind, str, OSError | None]:
    """``(kind, message, safe cause)`` for an aiohttp failure; never its own text."""
    host = f"{base_url.host}:{base_url.port}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "tls", f"the certificate of {host} could not be verified", None
    if isinstance(exc, aiohttp.ClientSSLError):
        return "tls", f"the TLS handshake with {host} failed", None
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        why = os_error.strerror or type(os_error).__name__
        return "connect", f"cannot connect to {host}: {why}", os_error
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected", "the server closed the connection without an answer", None
    framing = _framing_failure(exc)
    if framing is not None:  # while reading the body, or parsed with the head
        return "framing", framing, None
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "framing", "the answer's body could not be read", None
    if isinstance(exc, aiohttp.ClientResponseError):
        return "protocol", "the answer is not valid HTTP (status line or headers)", None
    if isinstance(exc, ConnectionResetError):
        return "reset", "the connection was reset", None
    if isinstance(exc, aiohttp.ClientOSError):
        why = exc.strerror or "the connection failed"
        return "network", f"network error: {why}", None
    if isinstance(exc, aiohttp.InvalidURL):
        return "url", "the request URL is not valid", None
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "connection", "the connection failed", None
    return "transport", f"the HTTP layer failed ({type(exc).__name__})", None


def _translate(
    exc: BaseException, method: str, path: str, timeout: float | None, base_url: URL
) -> tuple[CellcastError, OSError | None] | None:
    """Our error for an aiohttp or asyncio failure (module docstring: never its text)."""
    if isinstance(exc, asyncio.TimeoutError):  # includes aiohttp.ServerTimeoutError
        message = f"no answer within {timeout:g} s" if timeout else "timed out"
        return AttemptTimeoutError(message, method=method, path=path), None
    if not isinstance(exc, aiohttp.ClientError):
        return None
    if _encoding_failure(exc):
        # An answer came, but its body is not what its Content-Encoding says: the same
        # request gets the same answer, so it is a DecodeError, not retried.
        # (aiohttp failed before handing over the status: status_code stays 0.)
        return DecodeError(_UNDECODABLE, method=method, path=path), None
    kind, message, cause = _describe(exc, base_url)
    return TransportError(message, method=method, path=path, kind=kind), cause


class _TooLarge(Exception):
    pass


async def _read(raw: aiohttp.ClientResponse, cap: int | None) -> bytes:
    """The whole (decompressed) body, read in chunks and stopped once it passes ``cap``.

    aiohttp inflates a compressed body as it is read, with flow control: stopping the
    read stops the inflating, so a gzip bomb costs about ``cap``, not its inflated size.
    """
    if cap is None:
        return await raw.read()
    if not raw.headers.get("Content-Encoding") and (raw.content_length or 0) > cap:
        raise _TooLarge
    body = bytearray()
    async for chunk in raw.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > cap:
            raise _TooLarge
    return bytes(body)


async def _read_answer(
    raw: aiohttp.ClientResponse, method: str, path: str, cap: int | None
) -> bytes:
    try:
        return await _read(raw, cap)
    except _TooLarge:
        raw.close()  # drop the connection: the rest of the body is never read
        message = f"the answer is larger than max_response_bytes ({cap:,} bytes)"
    except aiohttp.ClientPayloadError as exc:
        if not _encoding_failure(exc):
            raise
        if not 200 <= raw.status < 300:
            return b""  # an error answer: like an HTML error page, its status says enough
        message = _UNDECODABLE
    # Raised out here, not in the except blocks, so that no __context__ is kept.
    raise DecodeError(message, status_code=raw.status, method=method, path=path)


def _env_proxy(url: URL) -> str | None:
    """The proxy ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY`` name for ``url``, unless
    ``NO_PROXY`` exempts its host (the rules of ``urllib.request``, as httpx follows them)."""
    proxies = urllib.request.getproxies_environment()
    # proxy_bypass_environment: urllib's own NO_PROXY rules (absent from typeshed).
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not url.host or bypass(url.host, proxies):
        return None
    return proxies.get(url.scheme) or proxies.get("all") or None


def _pool_slots(session: aiohttp.ClientSession) -> asyncio.Semaphore | None:
    """One slot per connection the session's pool allows to our host (None: no bound)."""
    connector = session.connector
    if connector is None:
        return None
    bounds = [n for n in (connector.limit, connector.limit_per_host) if n > 0]
    return asyncio.Semaphore(min(bounds)) if bounds else None


class AiohttpTransport:
    """Sends one attempt with aiohttp.

    An injected ``aiohttp.ClientSession`` is used as it is and never closed; otherwise
    one is created on first use and closed by :meth:`aclose`; with ``trust_env`` its
    requests go through the proxy the environment names for the base URL. Redirects are
    never followed, so the key cannot travel to another host.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        user_agent: str,
        session: aiohttp.ClientSession | None = None,
        connection_limit: int = 100,
        trust_env: bool = True,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._url = URL(self._base_url)
        # Hidden: the header's repr is masked wherever it goes, aiohttp's frames included,
        # so a traceback formatted with locals does not show it (README, "Redaction").
        self._headers: dict[str, str] = {
            "Authorization": Hidden(f"Bearer {api_key}"),
            "User-Agent": user_agent,
            "Accept": "application/json",
        }
        self._session = session
        self._owns_session = session is None
        self._connection_limit = connection_limit
        # The proxy for our one host, read from the environment once, here. aiohttp's own
        # trust_env would look it up again in a worker thread for every request: two
        # thread hops per request, a third of a CPU-bound walk (benchmarks/audit.py).
        self._proxy = _env_proxy(self._url) if trust_env and session is None else None
        self._slots = None if session is None else _pool_slots(session)
        self._closed = False

    def __repr__(self) -> str:
        return f"<AiohttpTransport {self._base_url}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError(CLOSED)
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
    ) -> Response:
        """Send ``method path`` once and return the answer, or raise a TransportError."""
        client = self._client()
        # The path is already percent-encoded segment by segment (_protocol.segment):
        # encoded=True stops yarl from decoding %2E%2E back into a "..".
        url = URL(self._base_url + path, encoded=True)
        if params:
            url = url.update_query(params)
        # Wait for a free connection before the attempt's clock starts: aiohttp's
        # timeout also runs while a request queues for the pool, so thousands of calls
        # sharing one session would time out without ever being sent.
        async with self._slots or contextlib.nullcontext():
            started = time.monotonic()
            try:
                async with client.request(
                    method,
                    url,
                    json=json,
                    # Built in the call: no local of ours holds the Authorization header.
                    headers={**headers, **self._headers} if headers else self._headers,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    allow_redirects=False,
                    proxy=self._proxy,
                    # An injected session may raise_for_status=True: the status is ours
                    # to map (APIError, retries), not a ClientResponseError.
                    raise_for_status=False,
                ) as raw:
                    body = await _read_answer(raw, method, path, max_response_bytes)
            except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
                translated = _translate(exc, method, path, timeout, self._url)
                if translated is None:
                    raise
            else:
                translated = None
        if translated is not None:
            # Raised outside the except block: neither __cause__ nor __context__ holds
            # aiohttp's exception (only a bare OSError, whose text is the system's).
            error, cause = translated
            raise error from cause
        return Response(
            status=raw.status,
            reason=raw.reason,
            headers=raw.headers,
            body=body,
            elapsed=time.monotonic() - started,
        )

    async def aclose(self) -> None:
        """Close the aiohttp session if this transport created it. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
