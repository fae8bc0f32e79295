"""Redaction: the one mechanism that keeps secrets out of every text the SDK lets out.

A :class:`Redactor` knows the session's API key; :meth:`Redactor.for_answer` adds every
token value found in the answer being handled. :meth:`Redactor.scrub` rewrites an
error in place (message, detail, body, headers) before the pipeline raises it, and
:class:`LogRedactor` does the same for every record on the ``cellcast_async`` logger.

A secret is removed in each encoding a text can carry it in: as it is, JSON-escaped,
percent-encoded, and as a ``str``/``bytes`` repr would print it; anything shaped like
``Bearer <credential>`` goes too (README, "Reliability").
"""

from __future__ import annotations

import json
import logging
import re
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final
from urllib.parse import quote

from multidict import CIMultiDict

from ._exceptions import APIError, CellcastError, _frozen_headers

__all__ = ["MASK", "LogRedactor", "Redactor", "token_values"]

MASK: Final = "****"

# "Bearer <anything up to a space or a quote>", in any case: an echoed Authorization header.
_BEARER: Final = re.compile(r"(?i)\b(bearer)(\s+|%20|\+)[^\s\"'\\,;]+")

# A spelling this long is masked wherever it stands; a shorter one only between
# characters that cannot be part of a credential.
_ANYWHERE: Final = 8
_ALONE: Final = r"(?<![\w\-.~+/=%]){}(?![\w\-.~+/=%])"

# JSON keys whose string values are credentials wherever they sit in an answer.
_SECRET_KEYS: Final = frozenset({"token", "apikey", "api_key", "key", "secret", "accesstoken"})


def _encodings(secret: str) -> Iterator[str]:
    """Every spelling of ``secret`` a message, a JSON text or a repr may hold."""
    yield secret
    yield json.dumps(secret)[1:-1]
    yield json.dumps(secret, ensure_ascii=False)[1:-1]
    yield quote(secret, safe="")
    yield repr(secret)[1:-1]
    yield repr(secret.encode("utf-8", "surrogatepass"))[2:-1]


def token_values(value: Any, *, depth: int = 0) -> Iterator[str]:
    """Each string found under a credential-like key anywhere in decoded JSON."""
    if depth > 64:  # a hostile answer nested without end: what is deeper is not quoted
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and str(key).lower() in _SECRET_KEYS:
                yield item
            elif isinstance(item, (dict, list)):
                yield from token_values(item, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from token_values(item, depth=depth + 1)


class Redactor:
    """Removes a fixed set of secrets (and ``Bearer ...``) from text and decoded JSON."""

    __slots__ = ("__weakref__", "_pattern", "_secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = frozenset(s for s in secrets if s)
        spellings = {form for s in self._secrets for form in _encodings(s) if form}
        # Longest first, so that a secret inside a longer one goes whole. A long secret
        # goes wherever it stands; a short one (a test key like "k") only where it
        # stands alone, or every "k" of every message would be masked.
        alternatives = [
            re.escape(form) if len(form) >= _ANYWHERE else _ALONE.format(re.escape(form))
            for form in sorted(spellings, key=len, reverse=True)
        ]
        self._pattern = re.compile("|".join(alternatives)) if alternatives else None

    def __repr__(self) -> str:
        return f"<Redactor of {len(self._secrets)} secrets>"

    def for_answer(self, body: Any) -> Redactor:
        """This redactor plus every token value found in ``body`` (decoded JSON or bytes)."""
        if isinstance(body, (bytes, bytearray)):
            try:
                body = json.loads(body)
            except (ValueError, RecursionError):
                return self  # not JSON: it was never parsed, and never quoted either
        found = set(token_values(body))
        return Redactor(self._secrets | found) if found - self._secrets else self

    def text(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)

    def value(self, value: Any, *, depth: int = 0) -> Any:
        """A copy of decoded JSON with every string redacted (keys included)."""
        if isinstance(value, str):
            return self.text(value)
        if depth > 64:
            return None
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v, depth=depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, depth=depth + 1) for v in value]
        return value

    def headers(self, headers: Mapping[str, str]) -> CIMultiDict[str]:
        return CIMultiDict((k, self.text(v)) for k, v in headers.items())

    def scrub(self, error: CellcastError) -> CellcastError:
        """Redact ``error`` in place, and cut from its chain what may quote an answer.

        Our errors in the chain are redacted; a suppressed ``__context__`` is dropped;
        anything else (a library's exception, whose text or args may hold response
        bytes) is cut off, except a builtin ``OSError``, which holds only the system's words.
        """
        seen: set[int] = set()
        current: BaseException | None = error
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            if isinstance(current, CellcastError):
                self._scrub_one(current)
            if current.__suppress_context__:
                current.__context__ = None
            following = current.__cause__ or current.__context__
            if following is not None and not _may_chain(following):
                current.__cause__ = current.__context__ = None
                current.__suppress_context__ = True
                following = None
            current = following
        return error

    def _scrub_one(self, error: CellcastError) -> None:
        error.message = self.text(error.message)
        error.args = tuple(self.text(a) if isinstance(a, str) else a for a in error.args)
        if isinstance(error, APIError):
            if error.detail is not None:
                error.detail = self.text(error.detail)
            error.body = self.value(error.body)
            error.headers = _frozen_headers(self.headers(error.headers))
            if error.request_id is not None:
                error.request_id = self.text(error.request_id)


def _may_chain(exc: BaseException) -> bool:
    if isinstance(exc, CellcastError):
        return True
    return isinstance(exc, OSError) and type(exc).__module__ == "builtins"


# Every live session's redactor: the log filter masks all their keys.
_live: weakref.WeakSet[Redactor] = weakref.WeakSet()


def register(redactor: Redactor) -> None:
    _live.add(redactor)
    _install_log_filter()


class LogRedactor(logging.Filter):
    """A filter on the ``cellcast_async`` logger: each record leaves with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        redactors = list(_live)
        message = record.getMessage()
        for redactor in redactors:
            message = redactor.text(message)
        if not redactors:
            message = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", message)
        record.msg = message
        record.args = None
        return True


def _install_log_filter() -> None:
    logger = logging.getLogger("cellcast_async")
    if not any(isinstance(f, LogRedactor) for f in logger.filters):
        logger.addFilter(LogRedactor())
