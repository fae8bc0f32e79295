"""``CellcastSession``: configuration, the transport it owns, and ``.tokens``."""

from __future__ import annotations

import copy
import logging
import platform
import random
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import aiohttp

from ._converters import make_converter
from ._governor import GovernorState, make_governor
from ._options import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RESPONSE_BYTES,
    UNSET,
    Clock,
    EventHooks,
    SessionOptions,
    Sleep,
)
from ._pipeline import Pipeline
from ._rate_store import rate_scope
from ._redact import REMEMBERED, Redactor, hidden, register
from ._seal import CheckpointKey
from ._tokens import TokensResource
from ._tracing import Tracing
from ._transport import CLOSED, AiohttpTransport, Transport
from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "CellcastSession",
    "checkpoint_key",
]

logger = logging.getLogger("cellcast_async")


def _user_agent(extra: str | None) -> str:
    agent = (
        f"cellcast-async/{__version__} python/{platform.python_version()}"
        f" aiohttp/{aiohttp.__version__}"
    )
    return f"{agent} {extra}" if extra else agent


class CellcastSession:
    """A connection to the Cellcast API: use it as ``async with CellcastSession() as cc``.

    Its calls live on ``cc.tokens`` (:class:`TokensResource`: ``list``,
    ``list_for_sub_account``, ``get``, ``create``, ``update``, ``delete``, ``resume``).

    Parameters (README "Configuration"):

    - ``api_key``: your Bearer token; ``None`` reads ``$CELLCAST_API_KEY``.
    - ``base_url``: ``None`` reads ``$CELLCAST_BASE_URL``, else ``https://api.cellcast.com``.
      Plain ``http://`` is refused unless the host is loopback.
    - ``timeout``: seconds per attempt (``None``: no limit).
    - ``max_retries``: extra attempts for what may be retried (README, "Retries").
    - ``session``: an ``aiohttp.ClientSession`` to use; it is never closed by us.
    - ``user_agent``: text added to the ``User-Agent`` header.
    - ``connection_limit``: connections the session's own pool opens at most.
    - ``max_response_bytes``: cap on a (decompressed) body, ``None`` for none.
    - ``deadline``: seconds for a whole call, retries and waits included (``None``: none).
    - ``event_hooks``: ``{"request": [...], "response": [...]}``, called for every
      attempt with a :class:`RequestEvent` / :class:`ResponseEvent`.
    - ``trust_env``: use the proxy ``$HTTPS_PROXY``/``$HTTP_PROXY`` name (``$NO_PROXY``
      honoured) for the session's own pool.
    - ``clock``/``sleep``: for tests and simulations (defaults: ``time.monotonic``,
      ``asyncio.sleep``).
    - ``tracer_provider``: an OpenTelemetry ``TracerProvider`` for this session's spans
      (``None``: the global one); spans are made only with the ``otel`` extra installed.
    - ``rate_limit``: requests per second for the whole session, all tasks together
      (``None``: no cap); ``rate_store``: ``None`` (this process) or ``"redis://..."``
      to share the budget and 429 pauses with every process on the same key and URL.
    - ``transport``: a :class:`Transport` that sends each attempt instead of aiohttp
      (its docstring has the contract); not with ``session=``, and ``connection_limit``
      and ``trust_env`` are then the transport's business. Closing the session closes it.

    Properties: ``tokens``, ``base_url``, ``timeout``, ``max_retries``, ``deadline``,
    ``rate_limit``, ``governor_state``, ``closed``.

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
        transport: Transport | None = None,
    ) -> None:
        # Rebound first: a ValueError from a later option must not show the key among
        # this frame's locals (README, "Redaction").
        api_key = hidden(api_key)
        options = SessionOptions.check(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            deadline=deadline,
            user_agent=user_agent,
            connection_limit=connection_limit,
            max_response_bytes=max_response_bytes,
            event_hooks=event_hooks,
            trust_env=trust_env,
            clock=clock,
            sleep=sleep,
            rate_limit=rate_limit,
            rate_store=rate_store,
            transport=transport,
            session=session,
        )
        key = options.api_key
        self._base_url = options.base_url
        agent = _user_agent(options.user_agent)
        # The key, and every full token value the session receives (README, "Redaction").
        self._redactor = Redactor([key], remember=REMEMBERED)
        register(self._redactor)
        self._transport: Transport = options.transport or AiohttpTransport(
            base_url=self._base_url,
            api_key=key,
            user_agent=agent,
            session=session,
            connection_limit=options.connection_limit,
            trust_env=options.trust_env,
        )
        self._governor = make_governor(
            options.rate_limit,
            options.rate_store,
            # The slow derivation runs only when a shared store needs the scope.
            rate_scope(key, self._base_url) if options.rate_store is not None else "",
            clock=options.clock,
            sleep=options.sleep,
        )
        self._pipeline = Pipeline(
            transport=self._transport,
            converter=make_converter(),
            options=options.call,
            redactor=self._redactor,
            hooks=options.hooks,
            public_headers={"User-Agent": agent, "Accept": "application/json"},
            max_response_bytes=options.max_response_bytes,
            clock=options.clock,
            sleep=options.sleep,
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
        timeout: float | None = UNSET,
        max_retries: int = UNSET,
        deadline: float | None = UNSET,
        headers: Mapping[str, str] | None = UNSET,
    ) -> CellcastSession:
        """A view of this session with other per-call options.

        It shares the connection pool and all state, and needs no closing (closing it
        does nothing; closing the session ends its views too). ``headers`` are added to
        every request; ``Authorization`` cannot be set this way.
        """
        options = self._pipeline.options.changed(
            timeout=timeout, max_retries=max_retries, deadline=deadline, headers=headers
        )
        view = copy.copy(self)
        view._pipeline = self._pipeline.with_call_options(options)
        view._view_of = self._view_of or self
        view.tokens = TokensResource(view._pipeline, self._checkpoint_key)
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
