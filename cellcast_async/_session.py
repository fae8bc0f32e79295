"""``CellcastSession``: configuration, the transport it owns, and ``.tokens``."""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import platform
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import aiohttp

from ._converters import describe_failure, make_converter
from ._exceptions import DecodeError
from ._protocol import read_envelope
from ._tokens import TokensResource
from ._transport import AiohttpTransport, Response, Transport
from ._version import __version__

__all__ = ["DEFAULT_BASE_URL", "CellcastSession"]

R = TypeVar("R")

DEFAULT_BASE_URL: Final = "https://api.cellcast.com"
API_KEY_ENV: Final = "CELLCAST_API_KEY"
BASE_URL_ENV: Final = "CELLCAST_BASE_URL"

logger = logging.getLogger("cellcast_async")


def _resolve_api_key(api_key: str | None) -> str:
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV)
        if api_key is None:
            raise ValueError(f"no API key: pass api_key=... or set ${API_KEY_ENV}")
        source = f"${API_KEY_ENV}"
    else:
        source = "api_key"
    if not isinstance(api_key, str):
        raise ValueError(f"{source} must be a str, not {type(api_key).__name__}")
    if not api_key.strip():
        raise ValueError(f"{source} is empty")
    # A CR or LF would let the key split the Authorization header into two lines.
    # Never quote the key itself in the message.
    if any(ch in api_key for ch in "\r\n") or not api_key.isprintable():
        raise ValueError(f"{source} must not contain CR, LF or other control characters")
    return api_key


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _resolve_base_url(base_url: str | None) -> str:
    if base_url is None:
        base_url = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    if not isinstance(base_url, str):
        raise ValueError(f"base_url must be a str, not {type(base_url).__name__}")
    parts = urlsplit(base_url.strip())
    # First, so that no later message quotes a URL that holds a password.
    if parts.username is not None or parts.password is not None:
        raise ValueError("base_url must not carry credentials; pass api_key= instead")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {base_url!r}")
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number in 0-65535)
    except ValueError:
        raise ValueError(f"base_url has an invalid port, got {base_url!r}") from None
    if parts.query or parts.fragment:
        raise ValueError("base_url must not have a query string or fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(
            f"refusing plain http:// to {parts.hostname!r}: the API key would travel in the "
            "clear; use https:// (plain http is allowed only for loopback hosts)"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _user_agent(extra: str | None) -> str:
    agent = (
        f"cellcast-async/{__version__} python/{platform.python_version()}"
        f" aiohttp/{aiohttp.__version__}"
    )
    return f"{agent} {extra}" if extra else agent


class CellcastSession:
    """A connection to the Cellcast API: use it as ``async with CellcastSession() as cc``.

    - ``api_key``: your Bearer token; ``None`` reads ``$CELLCAST_API_KEY``.
    - ``base_url``: ``None`` reads ``$CELLCAST_BASE_URL``, else ``https://api.cellcast.com``.
      Plain ``http://`` is refused unless the host is loopback.
    - ``timeout``: seconds per attempt (``None``: no limit); ``max_retries``: extra
      attempts for what may be retried (DESIGN.md, "Rules every request follows").
    - ``session``: an ``aiohttp.ClientSession`` to use; it is never closed by us.

    One session is safe to share across thousands of concurrent tasks.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = 30.0,
        max_retries: int = 2,
        session: aiohttp.ClientSession | None = None,
        *,
        user_agent: str | None = None,
        connection_limit: int = 100,
    ) -> None:
        key = _resolve_api_key(api_key)
        self._base_url = _resolve_base_url(base_url)
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ValueError(
                f"timeout must be a positive number of seconds or None, got {timeout!r}"
            )
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if user_agent is not None and (not user_agent.isprintable() or not user_agent.strip()):
            raise ValueError("user_agent must be printable text")
        if (
            isinstance(connection_limit, bool)
            or not isinstance(connection_limit, int)
            or (connection_limit < 1)
        ):
            raise ValueError(f"connection_limit must be an int >= 1, got {connection_limit!r}")
        self._timeout = timeout
        self._max_retries = max_retries
        self._transport: Transport = AiohttpTransport(
            base_url=self._base_url,
            api_key=key,
            user_agent=_user_agent(user_agent),
            timeout=timeout,
            max_retries=max_retries,
            session=session,
            connection_limit=connection_limit,
        )
        self._converter = make_converter()
        self._closed = False
        self.tokens = TokensResource(self)
        """The sub-client API-token endpoints (seeds 000-003)."""

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @property
    def max_retries(self) -> int:
        return self._max_retries

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<CellcastSession {self._base_url} {state}>"

    async def __aenter__(self) -> CellcastSession:
        if self._closed:
            raise RuntimeError("this CellcastSession is closed; open a new one")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless it was injected). Safe to call twice."""
        self._closed = True
        await self._transport.aclose()

    # --- used by the resources ----------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> Response:
        if self._closed:
            raise RuntimeError("this CellcastSession is closed; open a new one")
        return await self._transport.request(method, path, params=params, json=json)

    def _decode(
        self, method: str, path: str, response: Response, decode: Callable[[dict[str, Any]], R]
    ) -> R:
        """The one place an answer becomes a result, an APIError or a DecodeError."""
        envelope = read_envelope(
            method, path, response.status, response.headers, response.body, reason=response.reason
        )
        try:
            return decode(envelope)
        except Exception as exc:  # any failure to read the shape is the server's, not ours
            raise DecodeError(
                describe_failure(exc), status_code=response.status, method=method, path=path
            ) from None

    async def _request(
        self,
        method: str,
        path: str,
        decode: Callable[[dict[str, Any]], R],
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> R:
        response = await self._send(method, path, params=params, json=json)
        return self._decode(method, path, response, decode)
