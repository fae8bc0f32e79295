"""OpenTelemetry spans for calls and walks (README "OpenTelemetry").

One :class:`Tracing` per session. When ``opentelemetry-api`` (the ``otel`` extra) is
installed, each call is a CLIENT span named ``cellcast.<operation>`` and each walk an
INTERNAL span with one event per page. When it is not, nothing of OpenTelemetry is
imported and every method below is an empty call on a shared no-op object.

Attributes follow OpenTelemetry's HTTP semantic conventions (``http.request.method``,
``url.path``, ``http.response.status_code``, ``http.request.resend_count``,
``error.type``, ``server.address``, ``server.port``). Nothing that could hold a secret is
ever recorded: no query string (a ``search=`` filter is the user's words), no header, no
body, no exception message: only class names, numbers, the method and the path.

A call span is made current while the call runs, so whatever the call does underneath
(aiohttp's own instrumentation, if the user has it) nests below it. A walk span is never
made current across a ``yield``: an async generator resumes in its consumer's context,
and a context attached in one step and detached in another corrupts it. Page calls reach
the walk span explicitly instead: ``tracing.call(..., parent=walk)``, or a
``with walk.activate():`` block with no ``yield`` inside (tasks created in that block,
such as prefetched pages, copy the walk span into their own context).

How the request pipeline uses it::

    with tracing.call("tokens.get", "GET", path) as span:      # current while it runs
        ...                                                    # each attempt, then:
        span.attempt(status=503, retry=True)                   # (status=None, error=exc
        span.attempt(status=200, retry=False)                  #  when no answer came)
        span.set_result(200)                                   # or span.set_error(exc)

    with tracing.walk("tokens.list", path) as walk:            # may hold a yield
        with walk.activate():                                  # no yield in here
            page = await fetch(number)                         # + prefetch tasks created
        walk.page(number=page.page, items=len(page.items), total=page.total)
        yield page
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

from ._version import __version__

__all__ = ["CallSpan", "Tracing", "WalkSpan", "otel_available"]

TRACER_NAME: Final = "cellcast_async"
SPAN_PREFIX: Final = "cellcast."

# Semantic convention attribute names, spelled once (opentelemetry-semantic-conventions
# is not a dependency of opentelemetry-api, so its constants are not imported).
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
HTTP_REQUEST_RESEND_COUNT: Final = "http.request.resend_count"
URL_PATH: Final = "url.path"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"

# Ours, under the library's own namespace.
ATTEMPT_EVENT: Final = "cellcast.attempt"
ATTEMPT_NUMBER: Final = "cellcast.attempt.number"
ATTEMPT_RETRY: Final = "cellcast.attempt.retry"
PAGE_EVENT: Final = "cellcast.page"
PAGE_NUMBER: Final = "cellcast.page.number"
PAGE_ITEMS: Final = "cellcast.page.items"
PAGE_TOTAL: Final = "cellcast.page.total"
WALK_PAGES: Final = "cellcast.walk.pages"
WALK_ITEMS: Final = "cellcast.walk.items"

_KNOWN_METHODS: Final = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)

# Ending a call or a walk this way is the caller's choice, not a failure of the call:
# the span records what happened (error.type) but its status stays unset.
_NOT_FAILURES: Final = (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt)

_otel: Any = None  # the loaded modules once looked for: a _Otel, or False if absent


class _Otel:
    """The few OpenTelemetry API objects used, imported once per process."""

    def __init__(self) -> None:
        import opentelemetry.context as context
        import opentelemetry.trace as trace

        self.trace = trace
        self.attach = context.attach
        self.detach = context.detach
        self.set_span_in_context = trace.set_span_in_context
        self.client = trace.SpanKind.CLIENT
        self.internal = trace.SpanKind.INTERNAL
        self.Status = trace.Status
        self.ERROR = trace.StatusCode.ERROR


def _load() -> _Otel | None:
    global _otel
    if _otel is None:
        # find_spec first: when the package is absent, nothing is imported at all (not
        # even a half-imported namespace package left in sys.modules).
        try:
            _otel = _Otel() if importlib.util.find_spec("opentelemetry") else False
        except (ImportError, ValueError):  # ValueError: a broken half-import left behind
            _otel = False
    return _otel or None


def otel_available() -> bool:
    """Whether ``opentelemetry-api`` can be imported here (the ``otel`` extra)."""
    return _load() is not None


def _server(base_url: str | None) -> dict[str, Any]:
    """``server.address``/``server.port`` of ``base_url``: the host only, never userinfo."""
    if not base_url:
        return {}
    try:
        parts = urlsplit(base_url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return {}
    if not host:
        return {}
    attributes: dict[str, Any] = {SERVER_ADDRESS: host}
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme.lower())
    if port is not None:
        attributes[SERVER_PORT] = port
    return attributes


def _path_only(path: str) -> str:
    # A query may hold the user's search words; url.path never carries it.
    return path.split("?", 1)[0].split("#", 1)[0]


def _method(method: str) -> str:
    method = method.upper()
    # The convention's spelling for a method it does not know (keeps cardinality bounded).
    return method if method in _KNOWN_METHODS else "_OTHER"


_S = TypeVar("_S", bound="_Span")


class _Span:
    """A span as a sync context manager: leaving the block ends it, failed with the
    block's error if there is one. This base class records nothing."""

    __slots__ = ()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end(error=exc)

    def end(self, *, error: BaseException | None = None) -> None:
        """End the span (once; later calls do nothing), failed if ``error`` is given."""


class CallSpan(_Span):
    """The span of one whole call, all its attempts (a sync context manager).

    This base class is the disabled one: every method does nothing.
    """

    __slots__ = ()

    def attempt(
        self, *, status: int | None, retry: bool, error: BaseException | None = None
    ) -> None:
        """Record one HTTP attempt: its status (None: no answer) and whether one follows."""

    def set_result(self, status: int) -> None:
        """Record the status of the answer the call returns."""

    def set_error(self, exc: BaseException) -> None:
        """Record the error the call raises (its class name, and its status if any)."""


class WalkSpan(_Span):
    """The span of one whole walk, with an event per page.

    Use it as ``with tracing.walk(...) as walk:`` (it is never made current, so the block
    may ``yield``) or call :meth:`end` yourself. This base class is the disabled one.
    """

    __slots__ = ()

    def page(self, *, number: int, items: int, total: int | None) -> None:
        """Record a page handed over: its number, its items, the server's total if told."""

    @contextmanager
    def activate(self) -> Iterator[None]:
        """Make the walk span current for a block that does not ``yield``."""
        yield


_NOOP_CALL: Final = CallSpan()
_NOOP_WALK: Final = WalkSpan()


def _error_type(exc: BaseException) -> str:
    return type(exc).__name__


class _OtelSpan:
    """What an OpenTelemetry span of ours holds, and how it records a failure."""

    __slots__ = ("_otel", "_recording", "_span")

    def __init__(self, otel: _Otel, span: Any) -> None:
        self._otel = otel
        self._span = span
        # A span nobody samples (or a no-op provider): skip building attributes for it.
        self._recording: bool = span.is_recording()

    def _failed(self, error: BaseException) -> None:
        """Name ``error``'s class on the recording span; the status is an error unless
        the error is a planned stop (:data:`_NOT_FAILURES`)."""
        name = _error_type(error)
        self._span.set_attribute(ERROR_TYPE, name)
        if not isinstance(error, _NOT_FAILURES):
            # The description is the class name only: an exception's message may quote
            # the server's words, and span data leaves the process.
            self._span.set_status(self._otel.Status(self._otel.ERROR, name))


class _OtelCallSpan(_OtelSpan, CallSpan):
    __slots__ = ("_attempts", "_errored", "_token")

    def __init__(self, otel: _Otel, span: Any) -> None:
        super().__init__(otel, span)
        self._attempts = 0
        self._errored = False
        self._token: Any = None

    def __enter__(self) -> _OtelCallSpan:
        otel = self._otel
        self._token = otel.attach(otel.set_span_in_context(self._span))
        return self

    def end(self, *, error: BaseException | None = None) -> None:
        try:
            if error is not None and not self._errored:
                self.set_error(error)
        finally:
            if self._token is not None:
                self._otel.detach(self._token)
                self._token = None
            self._span.end()

    def attempt(
        self, *, status: int | None, retry: bool, error: BaseException | None = None
    ) -> None:
        self._attempts += 1
        if not self._recording:
            return
        span = self._span
        if self._attempts > 1:
            span.set_attribute(HTTP_REQUEST_RESEND_COUNT, self._attempts - 1)
        event: dict[str, Any] = {ATTEMPT_NUMBER: self._attempts, ATTEMPT_RETRY: retry}
        if status is not None:
            event[HTTP_RESPONSE_STATUS_CODE] = status
        if error is not None:
            event[ERROR_TYPE] = _error_type(error)
        span.add_event(ATTEMPT_EVENT, event)

    def set_result(self, status: int) -> None:
        if self._recording:
            self._span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status)

    def set_error(self, exc: BaseException) -> None:
        self._errored = True
        if not self._recording:
            return
        status = getattr(exc, "status_code", None)
        # DecodeError's 0 means "no status": only a real HTTP status is an attribute.
        if isinstance(status, int) and not isinstance(status, bool) and status >= 100:
            self._span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status)
        self._failed(exc)


class _OtelWalkSpan(_OtelSpan, WalkSpan):
    __slots__ = ("_ended", "_items", "_pages")

    def __init__(self, otel: _Otel, span: Any) -> None:
        super().__init__(otel, span)
        self._pages = 0
        self._items = 0
        self._ended = False

    def page(self, *, number: int, items: int, total: int | None) -> None:
        self._pages += 1
        self._items += items
        if not self._recording:
            return
        event: dict[str, Any] = {PAGE_NUMBER: number, PAGE_ITEMS: items}
        if total is not None:
            event[PAGE_TOTAL] = total
        self._span.add_event(PAGE_EVENT, event)

    def end(self, *, error: BaseException | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        span = self._span
        if self._recording:
            span.set_attribute(WALK_PAGES, self._pages)
            span.set_attribute(WALK_ITEMS, self._items)
            # Closing a walk early (break, aclose) is GeneratorExit: not an error at all.
            if error is not None and not isinstance(error, GeneratorExit):
                self._failed(error)
        span.end()

    @contextmanager
    def activate(self) -> Iterator[None]:
        otel = self._otel
        token = otel.attach(otel.set_span_in_context(self._span))
        try:
            yield
        finally:
            otel.detach(token)


class Tracing:
    """Spans for one session's calls and walks (README "OpenTelemetry").

    ``tracer_provider``: an OpenTelemetry ``TracerProvider``; None uses the global one
    (set by the user's ``trace.set_tracer_provider``, even after this is built).
    ``base_url``: where the calls go, for ``server.address``/``server.port`` (the host
    only). ``enabled=False`` turns tracing off even when OpenTelemetry is installed.
    ``call_kind``: the kind of call spans, ``"client"`` (the default) or ``"internal"``.
    """

    __slots__ = ("_call_kind", "_otel", "_server", "_tracer", "enabled")

    def __init__(
        self,
        tracer_provider: Any | None = None,
        *,
        base_url: str | None = None,
        enabled: bool = True,
        call_kind: Literal["client", "internal"] = "client",
    ) -> None:
        if call_kind not in ("client", "internal"):
            raise ValueError(f"call_kind must be 'client' or 'internal', not {call_kind!r}")
        otel = _load() if enabled else None
        self.enabled: bool = otel is not None
        """True when spans are made: opentelemetry-api is installed and not turned off."""
        self._otel = otel
        self._tracer: Any = None
        self._server = _server(base_url)
        self._call_kind: Any = None
        if otel is not None:
            self._tracer = otel.trace.get_tracer(
                TRACER_NAME, __version__, tracer_provider=tracer_provider
            )
            self._call_kind = otel.client if call_kind == "client" else otel.internal

    def __repr__(self) -> str:
        return f"<Tracing enabled={self.enabled}>"

    def call(
        self, operation: str, method: str, path: str, *, parent: WalkSpan | None = None
    ) -> CallSpan:
        """The span of one call, e.g. ``call("tokens.get", "GET", "/api/v1/...")``.

        Its parent is ``parent``'s walk span when given, else the current span. Use it
        as ``with``: the span is current inside, and ends on exit (an exception leaving
        the block is recorded unless :meth:`CallSpan.set_error` already was).
        """
        otel = self._otel
        if otel is None:
            return _NOOP_CALL
        attributes = {
            **self._server,
            HTTP_REQUEST_METHOD: _method(method),
            URL_PATH: _path_only(path),
        }
        context = None
        if isinstance(parent, _OtelWalkSpan):
            context = otel.set_span_in_context(parent._span)
        span = self._tracer.start_span(
            SPAN_PREFIX + operation,
            context=context,
            kind=self._call_kind,
            attributes=attributes,
            # Recorded here by hand, without the exception's message.
            record_exception=False,
            set_status_on_exception=False,
        )
        return _OtelCallSpan(otel, span)

    def walk(self, operation: str, path: str) -> WalkSpan:
        """The span of one walk, e.g. ``walk("tokens.list", "/api/v1/apiClient/token")``.

        Started now, as a child of the current span; never made current (see the module
        docstring). End it with ``with`` or :meth:`WalkSpan.end`.
        """
        otel = self._otel
        if otel is None:
            return _NOOP_WALK
        attributes = {**self._server, URL_PATH: _path_only(path)}
        span = self._tracer.start_span(
            SPAN_PREFIX + operation,
            kind=otel.internal,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        return _OtelWalkSpan(otel, span)
