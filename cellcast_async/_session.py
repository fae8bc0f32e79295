"""``CellcastSession``: configuration, the transport it owns, and ``.tokens``."""

from __future__ import annotations

import ipaddress
import logging
import os
import platform
import random
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from ._converters import make_converter
from ._governor import GovernorState, check_rate_limit, make_governor
from ._pipeline import (
    _UNSET,
    CallOptions,
    Clock,
    EventHooks,
    Pipeline,
    Sleep,
    check_event_hooks,
    check_max_retries,
    check_timeout,
    default_clock,
    default_sleep,
)
from ._protocol import RetryPolicy
from ._rate_store import check_rate_store, rate_scope
from ._redact import REMEMBERED, Redactor, hidden, register
from ._seal import CheckpointKey
from ._tokens import TokensResource
from ._tracing import Tracing
from ._transport import CLOSED, AiohttpTransport
from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "CellcastSession",
    "checkpoint_key",
]

DEFAULT_BASE_URL: Final = "https://api.cellcast.com"
API_KEY_ENV: Final = "CELLCAST_API_KEY"
BASE_URL_ENV: Final = "CELLCAST_BASE_URL"
DEFAULT_MAX_RESPONSE_BYTES: Final = 32 * 2**20

logger = logging.getLogger("cellcast_async")


def _resolve_api_key(api_key: str | None) -> str:
    # Hidden from here on: a traceback formatted with locals shows '****' (README, "Redaction").
    api_key = hidden(api_key)
    if api_key is None:
        api_key = hidden(os.environ.get(API_KEY_ENV))
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
    # Quoted only when it looks like a URL: a key passed in its place must not show.
    shown = (
        repr(base_url)
        if "://" in base_url
        else f"{len(base_url)} characters with no scheme (not quoted: it may be a key)"
    )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL with a host, got {shown}")
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number in 0-65535)
    except ValueError:
        raise ValueError(f"base_url has an invalid port, got {shown}") from None
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
      attempts for what may be retried (README, "Retries"); ``deadline``: seconds for a
      whole call, retries and waits included (``None``: none).
    - ``session``: an ``aiohttp.ClientSession`` to use; it is never closed by us.
    - ``max_response_bytes``: cap on a (decompressed) body, ``None`` for none.
    - ``event_hooks``: ``{"request": [...], "response": [...]}``, called for every attempt.
    - ``clock``/``sleep``: for tests and simulations (defaults: ``time.monotonic``,
      ``asyncio.sleep``).
    - ``rate_limit``: requests per second for the whole session, all tasks together
      (``None``: no cap); ``rate_store``: ``None`` (this process) or ``"redis://..."``
      to share the budget and 429 pauses with every process on the same key and URL.
    - ``tracer_provider``: an OpenTelemetry ``TracerProvider`` for this session's spans
      (``None``: the global one); spans are made only with the ``otel`` extra installed.

    One session is safe to share across thousands of concurrent tasks;
    :meth:`with_options` gives views of it with other per-call options.
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
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
        deadline: float | None = None,
        event_hooks: EventHooks | None = None,
        trust_env: bool = True,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        tracer_provider: Any | None = None,
        rate_limit: float | None = None,
        rate_store: str | None = None,
    ) -> None:
        # Rebound first: a ValueError from a later option must not show the key among
        # this frame's locals (README, "Redaction").
        api_key = hidden(api_key)
        key = _resolve_api_key(api_key)
        self._base_url = _resolve_base_url(base_url)
        checked_rate = check_rate_limit(rate_limit)
        checked_store = check_rate_store(rate_store)
        options = CallOptions(
            timeout=check_timeout(timeout, "timeout"),
            policy=RetryPolicy(max_retries=check_max_retries(max_retries)),
            deadline=check_timeout(deadline, "deadline"),
        )
        if user_agent is not None and (not user_agent.isprintable() or not user_agent.strip()):
            raise ValueError("user_agent must be printable text")
        if (
            isinstance(connection_limit, bool)
            or not isinstance(connection_limit, int)
            or (connection_limit < 1)
        ):
            raise ValueError(f"connection_limit must be an int >= 1, got {connection_limit!r}")
        if max_response_bytes is not None and (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes < 1
        ):
            raise ValueError(
                f"max_response_bytes must be an int >= 1 or None, got {max_response_bytes!r}"
            )
        hooks = check_event_hooks(event_hooks)
        agent = _user_agent(user_agent)
        # The key, and every full token value the session receives (README, "Redaction").
        self._redactor = Redactor([key], remember=REMEMBERED)
        register(self._redactor)
        self._transport = AiohttpTransport(
            base_url=self._base_url,
            api_key=key,
            user_agent=agent,
            session=session,
            connection_limit=connection_limit,
            trust_env=trust_env,
        )
        pipeline_clock = clock or default_clock
        pipeline_sleep = sleep or default_sleep
        self._governor = make_governor(
            checked_rate,
            checked_store,
            # The slow derivation runs only when a shared store needs the scope.
            rate_scope(key, self._base_url) if checked_store is not None else "",
            clock=pipeline_clock,
            sleep=pipeline_sleep,
        )
        self._pipeline = Pipeline(
            transport=self._transport,
            converter=make_converter(),
            options=options,
            redactor=self._redactor,
            hooks=hooks,
            public_headers={"User-Agent": agent, "Accept": "application/json"},
            max_response_bytes=max_response_bytes,
            clock=pipeline_clock,
            sleep=pipeline_sleep,
            rng=random.Random(),
            governor=self._governor,
            tracing=Tracing(tracer_provider, base_url=self._base_url),
        )
        self._view_of: CellcastSession | None = None
        self._checkpoint_key = CheckpointKey(key)
        self.tokens = TokensResource(self._pipeline, self._checkpoint_key)
        """The sub-client API-token endpoints (seeds 000-003)."""

    def with_options(
        self,
        *,
        timeout: float | None = _UNSET,
        max_retries: int = _UNSET,
        deadline: float | None = _UNSET,
        headers: Mapping[str, str] | None = _UNSET,
    ) -> CellcastSession:
        """A view of this session with other per-call options.

        It shares the connection pool and all state, and needs no closing (closing it
        does nothing; closing the session ends its views too). ``headers`` are added to
        every request; ``Authorization`` cannot be set this way.
        """
        pipeline = self._pipeline.with_options(
            timeout=timeout, max_retries=max_retries, deadline=deadline, headers=headers
        )
        view = object.__new__(CellcastSession)
        view.__dict__.update(self.__dict__)
        view._pipeline = pipeline
        view._view_of = self._view_of or self
        view.tokens = TokensResource(pipeline, self._checkpoint_key)
        return view

    @property
    def base_url(self) -> str:
        """The API's address in use, without a trailing slash."""
        return self._base_url

    @property
    def timeout(self) -> float | None:
        """Seconds allowed for each attempt (``None``: no limit)."""
        return self._pipeline.options.timeout

    @property
    def max_retries(self) -> int:
        """Extra attempts for a call that may be retried (README "Retries")."""
        return self._pipeline.options.policy.max_retries

    @property
    def deadline(self) -> float | None:
        """Seconds for a whole call, retries and waits included (``None``: no deadline)."""
        return self._pipeline.options.deadline

    @property
    def rate_limit(self) -> float | None:
        """Requests per second for the whole session (``None``: no client-side cap)."""
        return self._governor.state.rate_limit

    @property
    def governor_state(self) -> GovernorState:
        """What the rate governor is doing now: paused until when, the rate in force."""
        return self._governor.state

    @property
    def closed(self) -> bool:
        """Whether the session was closed; a call on a closed session is a RuntimeError."""
        return self._transport.closed

    def __repr__(self) -> str:
        if "_transport" not in self.__dict__:  # a traceback with locals, mid-__init__
            return "<CellcastSession (not set up)>"
        state = "closed" if self.closed else "open"
        view = " view" if self._view_of is not None else ""
        return f"<CellcastSession{view} {self._base_url} {state}>"

    async def __aenter__(self) -> CellcastSession:
        if self.closed:
            raise RuntimeError(CLOSED)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless it was injected). Safe to call twice.

        On a ``with_options`` view this does nothing: the session it came from owns the pool.
        """
        if self._view_of is None:
            # The transport first: it marks the session closed at once, so a call woken
            # by the governor's close reports the session closed, not the governor.
            try:
                await self._transport.aclose()
            finally:
                await self._governor.aclose()


def checkpoint_key(session: CellcastSession) -> CheckpointKey:
    """The key that seals ``session``'s checkpoints; the CLI seals its audit files with it
    too (README "Long audits")."""
    return session._checkpoint_key
