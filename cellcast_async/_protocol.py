"""The Cellcast token API as pure functions: no I/O, no aiohttp.

Everything here is a function of its arguments (gidgethub ``sansio`` style): request
paths, query strings and bodies on the way out; ``(status, headers, body)`` to a result
or an exception on the way back; and the retry rules between the two.
"""

from __future__ import annotations

import ipaddress
import json
import math
import random
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

import attrs

from ._exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    DecodeError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ShapeError,
)
from ._models import TokenStatus

__all__ = [
    "TOKENS_PATH",
    "RetryPolicy",
    "ShapeError",
    "backoff_delay",
    "check_int",
    "check_limit",
    "check_name",
    "check_page",
    "check_status",
    "create_body",
    "delete_done",
    "is_retryable",
    "retry_delay",
    "list_params",
    "parse_retry_after",
    "read_envelope",
    "read_rate_headers",
    "segment",
    "sub_account_tokens_path",
    "token_path",
    "update_body",
]

# seeds/000-003: every endpoint lives under this one path.
TOKENS_PATH: Final = "/api/v1/apiClient/token"

_STATUSES: Final = frozenset(s.value for s in TokenStatus)


# --- on the way out ------------------------------------------------------------------


def _check_text(value: str, what: str) -> str:
    # A lone surrogate (what Python makes of bytes that are not UTF-8 in argv or a file
    # name) cannot be sent: refused here, as misuse, not as a codec error mid-call.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{what} is not valid Unicode text (a lone surrogate at index {exc.start})"
        ) from None
    return value


def _check_id(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a str, not {type(value).__name__}")
    _check_text(value, what)
    if not value.strip():
        raise ValueError(f"{what} must not be empty")
    if not value.strip("."):
        # "." and ".." are dot segments: a proxy that normalises paths (RFC 3986 5.2.4)
        # climbs them, even percent-encoded, and the request leaves
        # /api/v1/apiClient/token/ with the key on it (README "Tokens"). No real id is
        # made only of dots, so every such id is refused.
        raise ValueError(f"{what} must not be made only of dots, got {value!r}")
    return value


def segment(value: object, what: str) -> str:
    """Percent-encode ``value`` as exactly one path segment.

    ``/``, ``?``, ``#`` and ``%`` are all encoded, and an id made only of dots (``.``,
    ``..``) is refused, so that no id can climb out of ``/api/v1/apiClient/token/``.
    """
    return quote(_check_id(value, what), safe="")


def token_path(token_id: object) -> str:
    """``/api/v1/apiClient/token/:id`` (seeds 000, 002, 003)."""
    return f"{TOKENS_PATH}/{segment(token_id, 'token_id')}"


def sub_account_tokens_path(sub_account_id: object) -> str:
    """``/api/v1/apiClient/token/sub-account/:subAccountId`` (seed 000)."""
    return f"{TOKENS_PATH}/sub-account/{segment(sub_account_id, 'sub_account_id')}"


def check_int(value: object, what: str, minimum: int) -> int:
    """An int (not a bool) ``>= minimum``, else ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def check_page(page: object) -> int:
    return check_int(page, "page", 1)


def check_limit(limit: object) -> int:
    return check_int(limit, "limit", 1)


def check_status(status: object) -> str:
    """``active`` or ``inactive`` (seed 002), as a :class:`TokenStatus` or a str."""
    if isinstance(status, TokenStatus):
        return status.value
    if isinstance(status, str) and status in _STATUSES:
        return status
    raise ValueError(f"status must be 'active' or 'inactive' (or a TokenStatus), got {status!r}")


def check_name(name: object) -> str:
    if not isinstance(name, str):
        raise ValueError(f"name must be a str, not {type(name).__name__}")
    if not name.strip():
        raise ValueError("name must not be empty or blank")
    return _check_text(name, "name")


def list_params(
    *,
    sub_account_id: str | None = None,
    status: TokenStatus | str | None = None,
    search: str | None = None,
    page: int,
    limit: int,
) -> dict[str, str]:
    """Query parameters for a token listing (seed 000 names), only those that are set."""
    params: dict[str, str] = {}
    if sub_account_id is not None:
        params["subAccountId"] = _check_id(sub_account_id, "sub_account_id")
    if status is not None:
        params["status"] = check_status(status)
    if search is not None:
        if not isinstance(search, str):
            raise ValueError(f"search must be a str, not {type(search).__name__}")
        params["search"] = _check_text(search, "search")
    params["page"] = str(check_page(page))
    params["limit"] = str(check_limit(limit))
    return params


def create_body(name: str, sub_account_id: str) -> dict[str, str]:
    """Body of ``POST /api/v1/apiClient/token`` (seed 001)."""
    return {
        "name": check_name(name),
        "subAccountId": _check_id(sub_account_id, "sub_account_id"),
    }


def update_body(name: str | None, status: TokenStatus | str | None) -> dict[str, str]:
    """Body of ``PUT /api/v1/apiClient/token/:id`` (seed 002): at least one field."""
    if name is None and status is None:
        raise ValueError("update needs at least one of name= or status=")
    body: dict[str, str] = {}
    if name is not None:
        body["name"] = check_name(name)
    if status is not None:
        body["status"] = check_status(status)
    return body


# --- retries -------------------------------------------------------------------------

# README "Retries": what may be sent again, and after which answers.
_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_IDEMPOTENT: Final = frozenset({"GET", "PUT", "DELETE", "HEAD", "OPTIONS"})
# Failures the same request will meet again (see TransportError.kind).
_FINAL_FAILURES: Final = frozenset({"tls", "url", "deadline"})


@attrs.frozen
class RetryPolicy:
    """How many times to retry, and how long to wait (README, "Retries")."""

    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    retry_after_cap: float = 60.0


def is_retryable(method: str, status: int | None) -> bool:
    """Whether a request may be sent again after this outcome.

    ``status`` is ``None`` for a transport failure (no answer). POST is retried only
    on 429, the one answer that promises nothing was done.
    """
    if method in _IDEMPOTENT:
        return status is None or status in _RETRY_STATUSES
    return status == 429


def retry_delay(
    method: str,
    outcome: int | str,
    headers: Mapping[str, str],
    attempt: int,
    policy: RetryPolicy,
    *,
    jitter: float,
    now: datetime | None = None,
) -> float | None:
    """Seconds to wait before sending again, or ``None``: give up and report this outcome.

    The one retry decision of the SDK. ``outcome`` is the answer's status, or the
    ``kind`` of a transport failure; ``attempt`` counts from 0 for the attempt that just
    ended; ``jitter`` is drawn by the caller from ``[0, 1)`` (full jitter). A
    ``Retry-After`` is honoured when sent, unless it is longer than the policy's cap:
    then the caller gets the error with its ``retry_after`` at once.
    """
    if attempt >= policy.max_retries:
        return None
    if isinstance(outcome, str):
        if outcome in _FINAL_FAILURES or not is_retryable(method, None):
            return None
        return backoff_delay(attempt, base=policy.backoff_base, cap=policy.backoff_cap, u=jitter)
    if not is_retryable(method, outcome):
        return None
    retry_after = parse_retry_after(headers.get("Retry-After"), now)
    if retry_after is None:
        return backoff_delay(attempt, base=policy.backoff_base, cap=policy.backoff_cap, u=jitter)
    return None if retry_after > policy.retry_after_cap else retry_after


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    ``None`` when absent or unusable, and also when negative or a date already past:
    a server that says "retry before now" would get a burst of instant retries, so the
    normal backoff applies instead.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            # OverflowError: a server-sent hour, day or offset too big for a C int.
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        return None
    return seconds


def backoff_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    rng: random.Random | None = None,
    u: float | None = None,
) -> float:
    """Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2**attempt)]``.

    ``u`` in ``[0, 1)`` is the jitter itself (pure); else it is drawn from ``rng``.
    """
    # 2.0**1024 overflows a float; long before that the cap has taken over.
    ceiling = min(cap, base * (2.0 ** min(attempt, 64)))
    if u is None:
        u = (rng or random).random()
    return u * ceiling


def delete_done(status: int, body: bytes, *, answer_lost: bool) -> bool:
    """Whether a DELETE answer means "deleted" without reading an envelope (seed 003).

    An empty 2xx (``204 No Content``, or a 200 with no body) is done; so is a 404 after an
    attempt whose answer was lost: that attempt deleted it.
    """
    if 200 <= status < 300:
        return not body.strip()
    return status == 404 and answer_lost


# --- on the way back -----------------------------------------------------------------

_ERROR_CLASSES: Final[dict[int, type[APIError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}

# An envelope with "status": false on a 2xx: the seeds' own messages name the kind.
_CLASS_BY_MESSAGE: Final[dict[str, type[APIError]]] = {
    "validation error": BadRequestError,
    "bad request": BadRequestError,
    "unauthorized": AuthenticationError,
    "token expired": AuthenticationError,
    "forbidden": PermissionDeniedError,
    "not found": NotFoundError,
    "too many requests": RateLimitError,
}


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # nothing said: let the body speak for itself
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError
        pass
    # Raised outside the except block, so no __context__ is kept: a UnicodeDecodeError
    # holds the whole body (its repr shows it) and a JSONDecodeError its text, and the
    # body of a broken answer to create can hold a full token.
    raise ShapeError("the body is not valid JSON")


def _error_words(body: Any) -> tuple[str | None, str | None]:
    """``(message, detail)`` from an error body, either shape the seeds show.

    Envelope: ``{"status": false, "message", "error": {"message"}}``;
    401: ``{"code", "message", "stack"}`` (the stack is never kept in the message).
    """
    if not isinstance(body, dict):
        return None, None
    message = body.get("message")
    error = body.get("error")
    detail = error.get("message") if isinstance(error, dict) else None
    return (
        message if isinstance(message, str) else None,
        detail if isinstance(detail, str) else None,
    )


def error_for(
    method: str,
    path: str,
    status: int,
    body: Any,
    *,
    reason: str | None = None,
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> APIError:
    """The exception for an error answer: the class by HTTP status, the words from the body."""
    message, detail = _error_words(body)
    if 200 <= status < 300:
        cls = _CLASS_BY_MESSAGE.get((message or "").lower(), APIError)
    elif status >= 500:
        cls = ServerError
    else:
        cls = _ERROR_CLASSES.get(status, APIError)
    text = message or detail or reason or f"HTTP {status}"
    kwargs: dict[str, Any] = {
        "status_code": status,
        "detail": detail,
        "body": body,
        "method": method,
        "path": path,
        "headers": headers,
    }
    if cls is RateLimitError:
        kwargs["retry_after"] = retry_after
    return cls(text, **kwargs)


def _not_followed(location: str | None) -> str:
    """Why a 3xx is an error, and where it pointed.

    ``Location`` is the server's text: it is quoted only when it parses as a URL, and
    never with its userinfo, query or fragment (any of them may hold a secret).
    """
    shown = _shown_location(location)
    if shown is None:
        return "a redirect, not followed (check base_url)"
    return f"redirect to {shown} not followed (check base_url)"


def _is_ipv6(host: str | None) -> bool:
    try:
        return host is not None and isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


def _shown_location(location: str | None) -> str | None:
    if not location or not location.strip():
        return None
    try:
        parts = urlsplit(location.strip())
        host = parts.hostname  # without userinfo; raises on bad brackets
        port = parts.port  # raises on a port that is not a number
    except ValueError:
        return None
    if not location.isprintable():
        return None
    if "[" in parts.netloc.rpartition("@")[2] and not _is_ipv6(host):
        # Python 3.11+'s urlsplit refuses a bracketed host that is not an IPv6 address;
        # 3.10's takes "[not-an-address]" as a name. Check it here so every Python gives
        # the same message (README "Reliability": redirects).
        return None
    netloc = "" if host is None else (f"[{host}]" if ":" in host else host)
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) or None


def read_envelope(
    method: str,
    path: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    reason: str | None = None,
) -> dict[str, Any]:
    """Turn one answer into its JSON envelope, or raise what it means.

    - 4xx/5xx: the :class:`APIError` subclass for the status, with the server's words.
    - 3xx: an :class:`APIError` that says where it pointed: redirects are never followed.
    - 2xx whose envelope says ``"status": false``: an :class:`APIError` too.
    - 2xx that is not a JSON object: :class:`DecodeError`.
    """
    retry_after = parse_retry_after(headers.get("Retry-After")) if status == 429 else None
    if status >= 300 or status < 200:
        try:
            parsed: Any = _loads(body) if body else None
        except ShapeError:
            parsed = None  # an HTML error page: the status alone decides
        error = error_for(
            method,
            path,
            status,
            parsed,
            reason=reason,
            retry_after=retry_after,
            headers=headers,
        )
        if 300 <= status < 400:
            error.detail = _not_followed(headers.get("Location"))
        raise error
    content_type = headers.get("Content-Type")
    if not _is_json(content_type):
        raise DecodeError(
            f"expected a JSON answer, got {content_type!r}",
            status_code=status,
            method=method,
            path=path,
        )
    if not body:
        raise DecodeError("the answer is empty", status_code=status, method=method, path=path)
    try:
        envelope = _loads(body)
    except ShapeError as exc:
        raise DecodeError(str(exc), status_code=status, method=method, path=path) from None
    if not isinstance(envelope, dict):
        raise DecodeError(
            "expected a JSON object envelope", status_code=status, method=method, path=path
        )
    if envelope.get("status") is False:
        raise error_for(method, path, status, envelope, reason=reason, headers=headers)
    return envelope


# ---------------------------------------------------------------------------- rate-limit headers


def read_rate_headers(headers: Mapping[str, str], unix_now: float) -> tuple[float, float] | None:
    """(remaining requests, seconds until reset) from the first rate-limit header family
    present (README "Rate limits"): ``RateLimit: limit=, remaining=, reset=`` or
    ``RateLimit: "p";r=..;t=..`` (IETF drafts), ``X-RateLimit-Remaining/-Reset``, then
    ``RateLimit-Remaining/-Reset``. ``unix_now`` turns a reset sent as a Unix time into
    seconds.

    A family with a missing, negative or unreadable part is ignored, as if absent.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    if "ratelimit" in lower:
        found = _ietf_structured(lower["ratelimit"])
        if found is not None:
            return found
    for prefix in ("x-ratelimit-", "ratelimit-"):
        remaining = _header_number(lower.get(prefix + "remaining"))
        reset = _header_number(lower.get(prefix + "reset"))
        if remaining is None or reset is None:
            continue
        if reset > 1e9:
            # Some servers (GitHub) send the reset as a Unix time rather than seconds.
            reset = reset - unix_now
        if reset <= 0:
            continue
        return remaining, reset
    return None


def _header_number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip().strip('"'))
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


def _ietf_structured(value: str) -> tuple[float, float] | None:
    """``limit=100, remaining=50, reset=30`` (draft 06/07) or ``"p";r=50;t=30`` (draft 08+).

    With several policies in one header, the one that allows the lowest rate wins.
    """
    best: tuple[float, float] | None = None
    flat: dict[str, str] = {}
    for item in value.split(","):
        params: dict[str, str] = {}
        for part in item.split(";"):
            key, sep, raw = part.strip().partition("=")
            if sep:
                params[key.strip().lower()] = raw.strip()
        flat.update(params)
        remaining, reset = _header_number(params.get("r")), _header_number(params.get("t"))
        if remaining is None or reset is None or reset <= 0:
            continue
        if best is None or remaining / reset < best[0] / best[1]:
            best = (remaining, reset)
    if best is not None:
        return best
    remaining, reset = _header_number(flat.get("remaining")), _header_number(flat.get("reset"))
    if remaining is not None and reset is not None and reset > 0:
        return remaining, reset
    return None
