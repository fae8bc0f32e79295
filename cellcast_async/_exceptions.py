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

No message built here ever contains the API key or a token value: the server's own
words come from its error envelope, and that never carries secrets.
"""

from __future__ import annotations

from typing import Any

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
    "TimeoutError",
    "TransportError",
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


class APIError(CellcastError):
    """The server answered with an error: ``.status_code``, ``.body`` (decoded JSON),
    ``.message`` ("Validation error") and ``.detail`` ("API name is required").
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
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.status_code = status_code
        self.detail = detail
        self.body = body

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
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, status_code=status_code, detail=detail, body=body, method=method, path=path
        )
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: the server failed; GET, PUT and DELETE were already retried."""


class TransportError(CellcastError):
    """No usable answer: connection refused or reset, DNS or TLS failure."""


class TimeoutError(TransportError):
    """The request ran past its timeout (``CellcastSession(timeout=...)``)."""


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
