"""Every option of a session and of a call: their types, defaults and validation.

    CellcastSession(...)  -> SessionOptions.check(...)   once, before anything is built
    cc.with_options(...)  -> CallOptions.changed(...)    a view's per-call options
    cc.tokens.list(...)   -> check_concurrency, check_max_items, check_max_pages (the
                             pager's own options)

Misuse is a ``ValueError`` raised here, before anything is sent (README
"Configuration"); no message quotes the API key or a URL's password. The arguments of
one request (ids, page, limit, status, name) are checked where the request is built, in
``_protocol``. What is checked here is trusted from here on: the governor, the rate store
and the pager take these options as they are, never checking them again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

import attrs

from ._protocol import RetryPolicy, check_int
from ._redact import hidden

if TYPE_CHECKING:
    from ._transport import Transport

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "UNSET",
    "CallOptions",
    "Clock",
    "EventHook",
    "EventHooks",
    "SessionOptions",
    "Sleep",
    "check_concurrency",
    "check_event_hooks",
    "check_headers",
    "check_max_items",
    "check_max_pages",
    "check_max_retries",
    "check_rate_limit",
    "check_rate_store",
    "check_timeout",
    "check_transport",
    "default_clock",
    "default_sleep",
]

DEFAULT_BASE_URL: Final = "https://api.cellcast.com"
API_KEY_ENV: Final = "CELLCAST_API_KEY"
BASE_URL_ENV: Final = "CELLCAST_BASE_URL"
DEFAULT_MAX_RESPONSE_BYTES: Final = 32 * 2**20

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# The defaults, looked up at each use: the suite swaps them for a fake clock whose
# sleep records each wait and moves the clock instead of waiting (tests/conftest.py).
# Code that wants its own clock passes ``clock=``/``sleep=`` to the session instead.
_clock: Clock = time.monotonic
_sleep: Sleep = asyncio.sleep


def default_clock() -> float:
    return _clock()


async def default_sleep(seconds: float) -> None:
    await _sleep(seconds)


# "Not passed" for with_options, where None is a value (no timeout, no deadline).
UNSET: Final[Any] = object()

EventHook = Callable[[Any], Any]
EventHooks = Mapping[str, Sequence[EventHook]]
_HOOK_KINDS: Final = ("request", "response")


# --- per-call options ----------------------------------------------------------------


def check_event_hooks(hooks: object) -> dict[str, tuple[EventHook, ...]]:
    """``{"request": [...], "response": [...]}`` with callables only, else ValueError."""
    if hooks is None:
        return {kind: () for kind in _HOOK_KINDS}
    if not isinstance(hooks, Mapping):
        raise ValueError(f"event_hooks must be a dict, not {type(hooks).__name__}")
    unknown = sorted(str(k) for k in hooks if k not in _HOOK_KINDS)
    if unknown:
        raise ValueError(f"event_hooks takes 'request' and 'response', not {unknown[0]!r}")
    checked: dict[str, tuple[EventHook, ...]] = {}
    for kind in _HOOK_KINDS:
        listed = hooks.get(kind, ())
        if callable(listed) or isinstance(listed, (str, bytes)):
            raise ValueError(f"event_hooks[{kind!r}] must be a list of callables")
        listed = tuple(listed)
        if not all(callable(h) for h in listed):
            raise ValueError(f"event_hooks[{kind!r}] must be a list of callables")
        checked[kind] = listed
    return checked


def check_headers(headers: object) -> dict[str, str]:
    """Extra request headers: str to str, no CR/LF, and never ``Authorization``."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ValueError(f"headers must be a dict, not {type(headers).__name__}")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError("headers must map str names to str values")
        if not name or not name.isprintable() or any(c in name for c in " :\t"):
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        if not value.isprintable():
            # Never quote the value: it may be a credential of the user's.
            raise ValueError(f"header {name!r} must not contain CR, LF or control characters")
        if name.lower() == "authorization":
            raise ValueError("headers cannot set Authorization: pass api_key= to the session")
        checked[name] = value
    return checked


def check_timeout(value: object, what: str) -> float | None:
    """A positive, finite number of seconds, or None (no limit)."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{what} must be a positive number of seconds or None, got {value!r}")
    return float(value)


def check_max_retries(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"max_retries must be an int >= 0, got {value!r}")
    return value


def check_concurrency(value: object) -> int | Literal["auto"]:
    """A positive int (fixed pages in flight) or ``"auto"`` (``_walk_auto.AdaptiveConcurrency``)."""
    if isinstance(value, str) and value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"concurrency must be a positive integer or 'auto', got {value!r}")
    return value


def check_max_items(max_items: object) -> int | None:
    return None if max_items is None else check_int(max_items, "max_items", 0)


def check_max_pages(max_pages: object) -> int | None:
    """None (derived from the first ``total``; README "Paging") or an int >= 1."""
    return None if max_pages is None else check_int(max_pages, "max_pages", 1)


def check_rate_limit(value: object) -> float | None:
    """``None`` (no cap) or a positive, finite number of requests per second."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"rate_limit must be a positive number of requests per second or None, got {value!r}"
        )
    rate = float(value)
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(
            f"rate_limit must be a positive number of requests per second or None, got {value!r}"
        )
    return rate


def check_rate_store(value: object) -> str | None:
    """``None`` (in-process) or a ``redis://`` / ``rediss://`` URL with a host.

    Messages quote the scheme only, never the URL: it may carry a password.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"rate_store must be None or a redis:// URL, got a {type(value).__name__}")
    scheme, sep, _ = value.partition("://")
    if not sep:
        raise ValueError("rate_store must be None or a redis:// URL, got a string with no scheme")
    if scheme.lower() not in ("redis", "rediss"):
        raise ValueError(f"rate_store must be None or a redis:// URL, got {scheme!r}")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ValueError(
            "rate_store has an invalid host or port; expected e.g. redis://127.0.0.1:6379/0"
        ) from None
    if not host:
        raise ValueError("rate_store must name a host, e.g. redis://127.0.0.1:6379/0")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError("rate_store's database must be a number, e.g. redis://127.0.0.1:6379/0")
    return value


@attrs.frozen
class CallOptions:
    """What ``with_options`` can change for the calls of a view (README, "Configuration")."""

    timeout: float | None = 30.0
    policy: RetryPolicy = attrs.field(factory=RetryPolicy)
    deadline: float | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)

    def changed(
        self,
        *,
        timeout: object = UNSET,
        max_retries: object = UNSET,
        deadline: object = UNSET,
        headers: object = UNSET,
    ) -> CallOptions:
        """These options with those passed (not ``UNSET``) checked and changed; headers
        are added to the ones already set. The one ``with_options``."""
        changes: dict[str, Any] = {}
        if timeout is not UNSET:
            changes["timeout"] = check_timeout(timeout, "timeout")
        if max_retries is not UNSET:
            changes["policy"] = attrs.evolve(
                self.policy, max_retries=check_max_retries(max_retries)
            )
        if deadline is not UNSET:
            changes["deadline"] = check_timeout(deadline, "deadline")
        if headers is not UNSET:
            changes["headers"] = {**self.headers, **check_headers(headers)}
        return attrs.evolve(self, **changes)


# --- session options -----------------------------------------------------------------


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


def _check_user_agent(user_agent: str | None) -> str | None:
    if user_agent is not None and (not user_agent.isprintable() or not user_agent.strip()):
        raise ValueError("user_agent must be printable text")
    return user_agent


def _check_connection_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"connection_limit must be an int >= 1, got {value!r}")
    return value


def _check_max_response_bytes(value: object) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"max_response_bytes must be an int >= 1 or None, got {value!r}")
    return value


def check_transport(transport: object, session: object) -> Transport | None:
    """None (aiohttp's, the default) or an object with ``send``, ``aclose`` and ``closed``
    (the ``Transport`` protocol); never together with ``session=``, which it would ignore."""
    if transport is None:
        return None
    if session is not None:
        raise ValueError("pass session= or transport=, not both: a transport sends its own way")
    if not (
        callable(getattr(transport, "send", None))
        and callable(getattr(transport, "aclose", None))
        and hasattr(transport, "closed")
    ):
        raise ValueError(
            "transport must have send(), aclose() and closed (see cellcast_async.Transport),"
            f" not {type(transport).__name__}"
        )
    return transport  # type: ignore[return-value]  # checked by shape, as Protocols are


@attrs.frozen
class SessionOptions:
    """A session's options, every one checked (README "Configuration").

    ``api_key`` is a hidden string: its repr is masked, and this class leaves it out
    of its own repr too (README "Redaction").
    """

    api_key: str = attrs.field(repr=False)
    base_url: str
    call: CallOptions
    user_agent: str | None
    connection_limit: int
    max_response_bytes: int | None
    hooks: Mapping[str, tuple[EventHook, ...]]
    trust_env: bool
    clock: Clock
    sleep: Sleep
    rate_limit: float | None
    rate_store: str | None = attrs.field(repr=False)  # a Redis URL may hold a password
    transport: Transport | None = None

    @classmethod
    def check(
        cls,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: object,
        max_retries: object,
        deadline: object,
        user_agent: str | None,
        connection_limit: object,
        max_response_bytes: object,
        event_hooks: object,
        trust_env: bool,
        clock: Clock | None,
        sleep: Sleep | None,
        rate_limit: object,
        rate_store: object,
        transport: object = None,
        session: object = None,
    ) -> SessionOptions:
        """Every option checked, in the order of the session's parameters' importance:
        the key and URL first, so that no later message can be reached with a bad one."""
        # Rebound first: a ValueError from a later option must not show the key among
        # this frame's locals (README, "Redaction").
        api_key = hidden(api_key)
        key = _resolve_api_key(api_key)
        url = _resolve_base_url(base_url)
        rate = check_rate_limit(rate_limit)
        store = check_rate_store(rate_store)
        call = CallOptions(
            timeout=check_timeout(timeout, "timeout"),
            policy=RetryPolicy(max_retries=check_max_retries(max_retries)),
            deadline=check_timeout(deadline, "deadline"),
        )
        return cls(
            api_key=key,
            base_url=url,
            call=call,
            user_agent=_check_user_agent(user_agent),
            connection_limit=_check_connection_limit(connection_limit),
            max_response_bytes=_check_max_response_bytes(max_response_bytes),
            hooks=check_event_hooks(event_hooks),
            trust_env=trust_env,
            clock=clock or default_clock,
            sleep=sleep or default_sleep,
            rate_limit=rate,
            rate_store=store,
            transport=check_transport(transport, session),
        )
