"""Everything the SDK raises on purpose.

    CellcastError                      root of everything the SDK raises on purpose
    ├── APIError                       the server answered with an error
    │   ├── BadRequestError            400: validation ("API name is required", ...)
    │   ├── AuthenticationError        401: missing, unknown or expired API key
    │   ├── PermissionDeniedError      403: e.g. a sub-account that is not yours
    │   ├── NotFoundError              404: e.g. "API token not found"
    │   ├── RateLimitError             429: slow down; ``.retry_after`` says how long
    │   └── ServerError                5xx
    ├── TransportError                 no usable answer: refused, reset, DNS, TLS
    │   └── TimeoutError               the request ran past its timeout
    └── DecodeError                    an answer that is not the documented JSON shape

Misuse found before a request is sent (an empty name, ``page=0``, ...) is a plain
:class:`ValueError`: nothing reached the network, so it is not a ``CellcastError``.

No message that leaves the SDK contains the API key or a token value: the request
pipeline passes every error through one redactor before it is raised (README,
"Reliability"), and text from the HTTP layer that could quote response bytes is never
copied into a message.

Every error pickles to an equal error (same class, ``str``, fields), for Ray,
multiprocessing and Celery.

:class:`ShapeError`, at the bottom, is internal: valid JSON of the wrong shape, which
the pipeline turns into a :class:`DecodeError` naming the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "CellcastError",
    "DecodeError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "ShapeError",
    "TimeoutError",
    "TransportError",
    "TransportErrorKind",
]


class CellcastError(Exception):
    """Root of every error the SDK raises on purpose.

    ``method`` and ``path`` name the request that failed (the path has no query string).
    """

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path

    def _where(self) -> str:
        return f"{self.method} {self.path}".strip()

    def __str__(self) -> str:
        where = self._where()
        return f"{where}: {self.message}" if where else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyword-only constructors do not fit Exception's default (cls, args): rebuild
        # from the instance's own fields instead, so every subclass pickles as it is.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(cls: type[CellcastError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


def _frozen_headers(headers: Mapping[str, str] | None) -> CIMultiDictProxy[str]:
    """A case-insensitive, read-only copy that pickles (a proxy of aiohttp's does not)."""
    return CIMultiDictProxy(CIMultiDict(headers or {}))


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The server's id for the request, from ``X-Request-Id`` or ``Request-Id``."""
    return headers.get("X-Request-Id") or headers.get("Request-Id") or None


class APIError(CellcastError):
    """The server answered with an error: ``.status_code``, ``.body`` (decoded JSON),
    ``.message``/``.detail`` ("Validation error"/"API name is required"), ``.headers``
    and ``.request_id`` (``X-Request-Id``/``Request-Id``, else ``None``).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        detail: str | None = None,
        body: Any = None,
        method: str = "",
        path: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.status_code = status_code
        self.detail = detail
        self.body = body
        self.headers: Mapping[str, str] = _frozen_headers(headers)
        self.request_id: str | None = request_id_of(self.headers)

    def __reduce__(self) -> tuple[Any, ...]:
        state = dict(self.__dict__)
        state["headers"] = CIMultiDict(self.headers)  # the read-only proxy does not pickle
        return (_rebuild_api_error, (type(self), self.args, state))

    def __str__(self) -> str:
        text = f"{self._where()} -> {self.status_code} {self.message}".lstrip(" ->")
        if self.detail and self.detail != self.message:
            text = f"{text}: {self.detail}"
        return text


class BadRequestError(APIError):
    """400: the server rejected the request's content (``.detail`` says what)."""


class AuthenticationError(APIError):
    """401: the API key is missing, unknown or expired."""


class PermissionDeniedError(APIError):
    """403: the key may not touch this resource (e.g. someone else's sub-account)."""


class NotFoundError(APIError):
    """404: no such token (or route)."""


class RateLimitError(APIError):
    """429: too many requests.

    ``retry_after`` is the server's ``Retry-After`` in seconds, or ``None`` if it sent none.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 429,
        detail: str | None = None,
        body: Any = None,
        method: str = "",
        path: str = "",
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            detail=detail,
            body=body,
            method=method,
            path=path,
            headers=headers,
        )
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: the server failed; GET, PUT and DELETE were already retried."""


# Every way an attempt can fail without a usable answer (README "Reliability"). A str at
# run time: ``exc.kind == "reset"`` works, and the type checker knows the twelve values.
TransportErrorKind = Literal[
    "connect",
    "disconnected",
    "reset",
    "connection",
    "network",
    "framing",
    "protocol",
    "tls",
    "url",
    "timeout",
    "deadline",
    "transport",
]


class TransportError(CellcastError):
    """No usable answer: connection refused or reset, DNS or TLS failure.

    ``.kind`` names it: ``connect``, ``disconnected``, ``reset``, ``connection``,
    ``network``, ``framing``, ``protocol``, ``tls``, ``url``, ``timeout``, ``deadline``
    or ``transport``.
    """

    _default_kind: ClassVar[TransportErrorKind] = "transport"

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        kind: TransportErrorKind | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.kind: TransportErrorKind = self._default_kind if kind is None else kind


class TimeoutError(TransportError):
    """The request ran past its ``timeout`` (one attempt) or its ``deadline`` (the call)."""

    _default_kind: ClassVar[TransportErrorKind] = "timeout"


class DecodeError(CellcastError):
    """An answer that is not the documented JSON shape; ``.status_code`` is its status (0:
    unknown). The body is never quoted: a broken ``create`` answer could hold a token.
    """

    def __init__(
        self, message: str, *, status_code: int = 0, method: str = "", path: str = ""
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.status_code = status_code

    def __str__(self) -> str:
        if not self.status_code:
            return super().__str__()
        return f"{self._where()} -> {self.status_code}: {self.message}".lstrip(" ->")


def _rebuild_api_error(
    cls: type[APIError], args: tuple[Any, ...], state: dict[str, Any]
) -> APIError:
    error: APIError = _rebuild(cls, args, state)
    error.headers = _frozen_headers(state["headers"])
    return error


class ShapeError(Exception):
    """Internal: a body that is valid JSON of the wrong shape.

    Raised by the page formats and the converter; the pipeline turns it into a
    :class:`DecodeError` that names the request. Its text never quotes a value.
    """
