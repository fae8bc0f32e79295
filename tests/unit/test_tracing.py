"""OpenTelemetry spans (README "OpenTelemetry"), on a real SDK with its in-memory exporter."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import AsyncGenerator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from cellcast_async import (
    CellcastSession,
    DecodeError,
    NotFoundError,
    Page,
    Pager,
    ServerError,
    TransportError,
    _tracing,
)
from cellcast_async._tracing import CallSpan, Tracing, WalkSpan
from cellcast_async.sandbox import Sandbox

from .. import _subprocess
from .._wire import TOKENS_PATH

T = TypeVar("T")

BASE_URL = "https://user:hunter2@api.cellcast.com"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def tracing(provider: TracerProvider) -> Tracing:
    return Tracing(provider, base_url=BASE_URL)


def only(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def by_name(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


def everything_recorded(exporter: InMemorySpanExporter) -> str:
    """Every name, attribute, event and status text of every finished span, as one text."""
    parts: list[Any] = []
    for span in exporter.get_finished_spans():
        parts += [span.name, dict(span.attributes or {}), span.status.description]
        for event in span.events:
            parts += [event.name, dict(event.attributes or {})]
        for link in span.links:
            parts.append(dict(link.attributes or {}))
    return json.dumps(parts, default=str)


def fail_inside(
    span: CallSpan, error: BaseException, before: Callable[[CallSpan], object] | None = None
) -> None:
    """Run a call span's block that (after ``before``, if given) raises ``error``."""
    with span as current:
        if before is not None:
            before(current)
        raise error


class TestCallSpan:
    """tracing.call() is one CLIENT span per call, named cellcast.<operation>."""

    def test_name_kind_and_request_attributes(
        self, tracing: Tracing, exporter: InMemorySpanExporter
    ) -> None:
        """Method, path and the host (without userinfo) follow the HTTP conventions."""
        with tracing.call("tokens.get", "get", f"{TOKENS_PATH}/abc"):
            pass
        span = only(exporter)
        assert span.name == "cellcast.tokens.get"
        assert span.kind is SpanKind.CLIENT
        assert dict(span.attributes or {}) == {
            "http.request.method": "GET",
            "url.path": f"{TOKENS_PATH}/abc",
            "server.address": "api.cellcast.com",
            "server.port": 443,
        }
        assert "hunter2" not in everything_recorded(exporter)
        assert span.status.status_code is StatusCode.UNSET
        assert span.instrumentation_scope is not None
        assert span.instrumentation_scope.name == "cellcast_async"

    def test_query_never_recorded(self, tracing: Tracing, exporter: InMemorySpanExporter) -> None:
        """url.path drops the query and fragment: a search filter is the user's words."""
        with tracing.call("tokens.list", "GET", f"{TOKENS_PATH}?search=payroll&page=2#x"):
            pass
        span = only(exporter)
        assert (span.attributes or {})["url.path"] == TOKENS_PATH
        assert "payroll" not in everything_recorded(exporter)

    def test_unknown_method_is_other(
        self, tracing: Tracing, exporter: InMemorySpanExporter
    ) -> None:
        """A method the convention does not know is recorded as _OTHER."""
        with tracing.call("tokens.brew", "BREW", TOKENS_PATH):
            pass
        assert (only(exporter).attributes or {})["http.request.method"] == "_OTHER"

    @pytest.mark.parametrize(
        ("base_url", "server"),
        [
            ("http://127.0.0.1:8080", {"server.address": "127.0.0.1", "server.port": 8080}),
            ("http://localhost", {"server.address": "localhost", "server.port": 80}),
            ("https://[::1]:9443/x", {"server.address": "::1", "server.port": 9443}),
            (None, {}),
            ("not a url", {}),
            ("https://h:99999999", {}),
        ],
    )
    def test_server_attributes(
        self,
        provider: TracerProvider,
        exporter: InMemorySpanExporter,
        base_url: str | None,
        server: dict[str, Any],
    ) -> None:
        """server.address/port come from the base URL; an unreadable one adds neither."""
        with Tracing(provider, base_url=base_url).call("tokens.get", "GET", TOKENS_PATH):
            pass
        attributes = dict(only(exporter).attributes or {})
        assert {k: v for k, v in attributes.items() if k.startswith("server.")} == server

    def test_attempts_count_resends(self, tracing: Tracing, exporter: InMemorySpanExporter) -> None:
        """Each attempt is an event; http.request.resend_count counts the retries."""
        with tracing.call("tokens.get", "GET", TOKENS_PATH) as span:
            span.attempt(status=None, retry=True, error=TransportError("reset"))
            span.attempt(status=503, retry=True)
            span.attempt(status=200, retry=False)
            span.set_result(200)
        recorded = only(exporter)
        attributes = dict(recorded.attributes or {})
        assert attributes["http.request.resend_count"] == 2
        assert attributes["http.response.status_code"] == 200
        assert [(e.name, dict(e.attributes or {})) for e in recorded.events] == [
            (
                "cellcast.attempt",
                {
                    "cellcast.attempt.number": 1,
                    "cellcast.attempt.retry": True,
                    "error.type": "TransportError",
                },
            ),
            (
                "cellcast.attempt",
                {
                    "cellcast.attempt.number": 2,
                    "cellcast.attempt.retry": True,
                    "http.response.status_code": 503,
                },
            ),
            (
                "cellcast.attempt",
                {
                    "cellcast.attempt.number": 3,
                    "cellcast.attempt.retry": False,
                    "http.response.status_code": 200,
                },
            ),
        ]
        assert recorded.status.status_code is StatusCode.UNSET

    def test_one_attempt_has_no_resend_count(
        self, tracing: Tracing, exporter: InMemorySpanExporter
    ) -> None:
        """A call answered at the first attempt was not resent: no resend_count."""
        with tracing.call("tokens.get", "GET", TOKENS_PATH) as span:
            span.attempt(status=200, retry=False)
            span.set_result(200)
        assert "http.request.resend_count" not in (only(exporter).attributes or {})

    def test_set_error_records_class_and_status(
        self, tracing: Tracing, exporter: InMemorySpanExporter
    ) -> None:
        """error.type is the class name, the status its status, the span status ERROR."""
        error = NotFoundError("Token not found", status_code=404, method="GET", path=TOKENS_PATH)

        def before(span: CallSpan) -> None:
            span.attempt(status=404, retry=False)
            span.set_error(error)

        with pytest.raises(NotFoundError):
            fail_inside(tracing.call("tokens.get", "GET", TOKENS_PATH), error, before)
        recorded = only(exporter)
        attributes = dict(recorded.attributes or {})
        assert attributes["error.type"] == "NotFoundError"
        assert attributes["http.response.status_code"] == 404
        assert recorded.status.status_code is StatusCode.ERROR
        assert recorded.status.description == "NotFoundError"
        # Recorded by hand, once, with no exception event carrying the message.
        assert [e.name for e in recorded.events] == ["cellcast.attempt"]
        assert "Token not found" not in everything_recorded(exporter)

    def test_escaping_exception_recorded(
        self, tracing: Tracing, exporter: InMemorySpanExporter
    ) -> None:
        """An exception leaving the block is recorded even without set_error."""
        with pytest.raises(ServerError), tracing.call("tokens.get", "GET", TOKENS_PATH):
            raise ServerError("Internal error", status_code=502)
        recorded = only(exporter)
        assert (recorded.attributes or {})["error.type"] == "ServerError"
        assert (recorded.attributes or {})["http.response.status_code"] == 502
        assert recorded.status.status_code is StatusCode.ERROR
        assert recorded.events == ()

    def test_decode_error_without_status(
        self, tracing: Tracing, exporter: InMemorySpanExporter
    ) -> None:
        """A DecodeError's status 0 ("no status") is not a status code attribute."""
        with pytest.raises(DecodeError), tracing.call("tokens.get", "GET", TOKENS_PATH):
            raise DecodeError("not JSON", status_code=0)
        attributes = dict(only(exporter).attributes or {})
        assert attributes["error.type"] == "DecodeError"
        assert "http.response.status_code" not in attributes

    def test_cancelled_is_not_a_failure(
        self, tracing: Tracing, exporter: InMemorySpanExporter
    ) -> None:
        """A cancelled call says so in error.type but its status stays unset."""
        with pytest.raises(asyncio.CancelledError), tracing.call("tokens.get", "GET", TOKENS_PATH):
            raise asyncio.CancelledError
        recorded = only(exporter)
        assert (recorded.attributes or {})["error.type"] == "CancelledError"
        assert recorded.status.status_code is StatusCode.UNSET

    def test_current_inside_and_restored_after(
        self, tracing: Tracing, provider: TracerProvider, exporter: InMemorySpanExporter
    ) -> None:
        """The call span is current inside the block, a child of the span current before."""
        outer_tracer = provider.get_tracer("user")
        with outer_tracer.start_as_current_span("user.request") as outer:
            with tracing.call("tokens.get", "GET", TOKENS_PATH):
                inner = trace.get_current_span()
            assert trace.get_current_span() is outer
        call = by_name(exporter, "cellcast.tokens.get")[0]
        assert inner.get_span_context().span_id == span_id(call)
        assert parent_id(call) == outer.get_span_context().span_id
        assert call.context is not None
        assert call.context.trace_id == outer.get_span_context().trace_id

    def test_context_restored_after_an_error(
        self, tracing: Tracing, provider: TracerProvider
    ) -> None:
        """An exception leaving a call or activate() block still restores the context."""
        with provider.get_tracer("user").start_as_current_span("user.job") as job:
            with pytest.raises(ServerError):
                fail_inside(
                    tracing.call("tokens.get", "GET", TOKENS_PATH),
                    ServerError("x", status_code=500),
                )
            assert trace.get_current_span() is job
            walk = tracing.walk("tokens.list", TOKENS_PATH)
            with pytest.raises(KeyError), walk.activate():
                raise KeyError("k")
            assert trace.get_current_span() is job
            walk.end()

    def test_internal_kind(self, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
        """call_kind="internal" makes call spans INTERNAL (for a CLIENT span per attempt)."""
        with Tracing(provider, call_kind="internal").call("tokens.get", "GET", TOKENS_PATH):
            pass
        assert only(exporter).kind is SpanKind.INTERNAL

    def test_bad_call_kind(self, provider: TracerProvider) -> None:
        """Any other call_kind is refused."""
        with pytest.raises(
            ValueError, match=r"^call_kind must be 'client' or 'internal', not 'server'$"
        ):
            Tracing(provider, call_kind="server")  # type: ignore[arg-type]

    def test_unsampled_span_costs_no_attributes(self, exporter: InMemorySpanExporter) -> None:
        """With a sampler that drops everything, the calls run and nothing is exported."""
        provider = TracerProvider(sampler=ALWAYS_OFF)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracing = Tracing(provider)

        def before(span: CallSpan) -> None:
            span.attempt(status=500, retry=False)
            span.set_result(500)

        with pytest.raises(ServerError):
            fail_inside(
                tracing.call("tokens.get", "GET", TOKENS_PATH),
                ServerError("boom", status_code=500),
                before,
            )
        walk = tracing.walk("tokens.list", TOKENS_PATH)
        walk.page(number=1, items=10, total=10)
        walk.end()
        assert exporter.get_finished_spans() == ()
        provider.shutdown()


class TestWalkSpan:
    """tracing.walk() is one INTERNAL span per walk with an event per page."""

    def test_pages_are_events(self, tracing: Tracing, exporter: InMemorySpanExporter) -> None:
        """Each page is a cellcast.page event; the totals land on the span at its end."""
        with tracing.walk("tokens.list", f"{TOKENS_PATH}?search=secret-words") as walk:
            walk.page(number=1, items=10, total=25)
            walk.page(number=2, items=10, total=25)
            walk.page(number=3, items=5, total=None)
        span = only(exporter)
        assert span.name == "cellcast.tokens.list"
        assert span.kind is SpanKind.INTERNAL
        assert dict(span.attributes or {}) == {
            "url.path": TOKENS_PATH,
            "server.address": "api.cellcast.com",
            "server.port": 443,
            "cellcast.walk.pages": 3,
            "cellcast.walk.items": 25,
        }
        assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
            (
                "cellcast.page",
                {"cellcast.page.number": 1, "cellcast.page.items": 10, "cellcast.page.total": 25},
            ),
            (
                "cellcast.page",
                {"cellcast.page.number": 2, "cellcast.page.items": 10, "cellcast.page.total": 25},
            ),
            ("cellcast.page", {"cellcast.page.number": 3, "cellcast.page.items": 5}),
        ]
        assert span.status.status_code is StatusCode.UNSET

    def test_end_once(self, tracing: Tracing, exporter: InMemorySpanExporter) -> None:
        """end() may be called again (and by `with`): the span ends once, the first way."""
        with tracing.walk("tokens.list", TOKENS_PATH) as walk:
            walk.end(error=ServerError("x", status_code=503))
            walk.end()
        span = only(exporter)
        assert (span.attributes or {})["error.type"] == "ServerError"
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "ServerError"

    def test_error_leaving_the_block(
        self, tracing: Tracing, exporter: InMemorySpanExporter
    ) -> None:
        """An exception leaving `with` fails the walk span with its class name."""
        with pytest.raises(TransportError), tracing.walk("tokens.list", TOKENS_PATH):
            raise TransportError("connection reset")
        span = only(exporter)
        assert (span.attributes or {})["error.type"] == "TransportError"
        assert span.status.status_code is StatusCode.ERROR

    async def test_early_close_is_not_an_error(
        self, tracing: Tracing, provider: TracerProvider, exporter: InMemorySpanExporter
    ) -> None:
        """Breaking out of a walk (GeneratorExit inside it) ends the span cleanly."""

        async def walk_pages() -> AsyncGenerator[int, None]:
            with tracing.walk("tokens.list", TOKENS_PATH) as walk:
                for number in range(1, 10):
                    walk.page(number=number, items=1, total=9)
                    yield number

        with provider.get_tracer("user").start_as_current_span("user.job") as job:
            pages = walk_pages()
            async for number in pages:
                # The walk never becomes current, even while the generator is suspended.
                assert trace.get_current_span() is job
                if number == 2:
                    break
            await pages.aclose()
            assert trace.get_current_span() is job
        span = by_name(exporter, "cellcast.tokens.list")[0]
        assert span.status.status_code is StatusCode.UNSET
        assert "error.type" not in (span.attributes or {})
        assert (span.attributes or {})["cellcast.walk.pages"] == 2
        assert parent_id(span) == job.get_span_context().span_id


def fake_pages(total: int, limit: int) -> Callable[[int], Page[int]]:
    pages = -(-total // limit)

    def page(number: int) -> Page[int]:
        first = (number - 1) * limit
        items = tuple(range(first, min(first + limit, total)))
        return Page(items, total, number, limit, pages, number < pages, number > 1)

    return page


async def traced_pages(
    tracing: Tracing,
    pager_for: Callable[[WalkSpan], Pager[int]],
    *,
    activate: bool,
) -> AsyncGenerator[Page[int], None]:
    """A walk as a pipeline would trace it: one walk span, one event per page."""
    with tracing.walk("tokens.list", TOKENS_PATH) as walk:
        pages = pager_for(walk).pages()
        try:
            while True:
                if activate:
                    # Prefetch tasks created during this step copy the walk span.
                    with walk.activate():
                        page = await anext(pages, None)
                else:
                    page = await anext(pages, None)
                if page is None:
                    return
                walk.page(number=page.page, items=len(page.items), total=page.total)
                yield page
        finally:
            await pages.aclose()


class TestWalkPropagation:
    """Page calls, prefetched in other tasks, are children of their walk's span."""

    @pytest.mark.parametrize("activate", [False, True], ids=["parent=walk", "activate"])
    async def test_prefetched_pages_are_children(
        self,
        tracing: Tracing,
        provider: TracerProvider,
        exporter: InMemorySpanExporter,
        activate: bool,
    ) -> None:
        """With concurrency=4 every page call (in its own task) nests under the walk."""
        page_of = fake_pages(total=95, limit=10)
        tasks: set[asyncio.Task[Any]] = set()

        def pager_for(walk: WalkSpan) -> Pager[int]:
            async def fetch(number: int) -> Page[int]:
                parent = None if activate else walk
                with tracing.call("tokens.list", "GET", TOKENS_PATH, parent=parent):
                    task = asyncio.current_task()
                    assert task is not None
                    tasks.add(task)
                    await asyncio.sleep(0)
                    return page_of(number)

            return Pager(fetch, limit=10, concurrency=4)

        consumer = asyncio.current_task()
        with provider.get_tracer("user").start_as_current_span("user.job") as job:
            items = [
                item
                async for page in traced_pages(tracing, pager_for, activate=activate)
                for item in page.items
            ]
            assert trace.get_current_span() is job
        assert items == list(range(95))
        assert tasks - {consumer}, "no page was prefetched in another task"

        (walk,) = [
            s for s in by_name(exporter, "cellcast.tokens.list") if s.kind is SpanKind.INTERNAL
        ]
        calls = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
        assert len(calls) == 10
        assert {parent_id(c) for c in calls} == {span_id(walk)}
        assert parent_id(walk) == job.get_span_context().span_id
        assert [e.attributes["cellcast.page.number"] for e in walk.events if e.attributes] == list(
            range(1, 11)
        )

    async def test_concurrent_walks_keep_their_own_calls(
        self, tracing: Tracing, exporter: InMemorySpanExporter
    ) -> None:
        """Two walks in two tasks at once: each page call's parent is its own walk."""

        async def run(label: str) -> None:
            page_of = fake_pages(total=40, limit=5)

            def pager_for(walk: WalkSpan) -> Pager[int]:
                async def fetch(number: int) -> Page[int]:
                    with tracing.call(f"{label}.page", "GET", TOKENS_PATH, parent=walk):
                        await asyncio.sleep(0)
                        return page_of(number)

                return Pager(fetch, limit=5, concurrency=3)

            async for _ in traced_pages(tracing, pager_for, activate=True):
                await asyncio.sleep(0)

        await asyncio.gather(run("a"), run("b"))
        walks = by_name(exporter, "cellcast.tokens.list")
        assert len(walks) == 2
        for label in ("a", "b"):
            parents = {parent_id(s) for s in by_name(exporter, f"cellcast.{label}.page")}
            assert len(parents) == 1
            assert parents < {span_id(w) for w in walks}
        assert {parent_id(s) for s in by_name(exporter, "cellcast.a.page")} != {
            parent_id(s) for s in by_name(exporter, "cellcast.b.page")
        }


class TestWithAiohttpInstrumentation:
    """Users who instrument aiohttp get their per-attempt spans under our call span."""

    async def test_tree_with_a_retry(
        self, provider: TracerProvider, exporter: InMemorySpanExporter
    ) -> None:
        """One call that retries once: our span, and below it one aiohttp span per attempt."""
        async with (
            Sandbox(tokens=5) as sb,
            aiohttp.ClientSession(
                trace_configs=[create_trace_config(tracer_provider=provider)]
            ) as http,
            CellcastSession(
                api_key=sb.api_key,
                base_url=sb.url,
                session=http,
                max_retries=2,
                tracer_provider=provider,
            ) as cc,
        ):
            token_id = (await cc.tokens.list(limit=1)).items[0].id
            exporter.clear()
            sb.script({len(sb.requests) + 1: "503"})
            token = await cc.tokens.get(token_id)
        assert token.id == token_id
        (ours,) = by_name(exporter, "cellcast.tokens.get")
        http_spans = [s for s in exporter.get_finished_spans() if s is not ours]
        assert len(http_spans) == 2, [s.name for s in http_spans]
        assert {parent_id(s) for s in http_spans} == {span_id(ours)}
        assert all(s.kind is SpanKind.CLIENT for s in http_spans)
        assert {trace_id(s) for s in http_spans} == {trace_id(ours)}
        # Their attribute name depends on their semantic-conventions opt-in.
        statuses = sorted(
            str(
                (s.attributes or {}).get("http.response.status_code")
                or (s.attributes or {}).get("http.status_code")
            )
            for s in http_spans
        )
        assert statuses == ["200", "503"]
        # Theirs record the attempt; ours is the logical call, and never a duplicate of it.
        assert (ours.attributes or {})["http.response.status_code"] == 200
        assert (ours.attributes or {})["http.request.resend_count"] == 1
        assert (ours.attributes or {})["server.address"] == "127.0.0.1"
        # The trace context went out to the server on every attempt (their propagation).
        assert all("traceparent" in r.headers for r in sb.requests[-2:])


class TestNoSecretInSpans:
    """No API key, token value or query text in any attribute or event of any span."""

    async def test_scan_every_span(
        self, tracing: Tracing, provider: TracerProvider, exporter: InMemorySpanExporter
    ) -> None:
        """A create, get, update, search, walk and failed call, traced at every level."""
        api_key = "sk-live-0123456789abcdefSECRETKEY"
        async with (
            Sandbox(tokens=30, api_key=api_key) as sb,
            aiohttp.ClientSession(
                trace_configs=[create_trace_config(tracer_provider=provider)]
            ) as http,
            CellcastSession(
                api_key=api_key, base_url=sb.url, session=http, tracer_provider=provider
            ) as cc,
        ):
            sub = sb.sub_account_ids[0]
            created = await cc.tokens.create(name="Payroll export", sub_account_id=sub)
            await cc.tokens.get(created.id)
            await cc.tokens.update(created.id, status="inactive")
            # The walk makes its own span now, its page calls below it.
            async for _page in cc.tokens.list(search="Payroll", limit=2).pages():
                pass
            with pytest.raises(NotFoundError):
                await cc.tokens.get("nope")
            # An exception whose message quotes a secret: only its class is recorded.
            with pytest.raises(RuntimeError):
                fail_inside(
                    tracing.call("tokens.get", "GET", TOKENS_PATH),
                    RuntimeError(f"leaked {created.token.reveal()}"),
                    lambda span: span.set_error(RuntimeError(f"leaked {api_key}")),
                )
        secret = created.token.reveal()
        assert len(secret) > 8
        text = everything_recorded(exporter)
        assert len(exporter.get_finished_spans()) >= 10
        assert api_key not in text
        assert secret not in text
        assert secret[:-4] not in text
        # Our own spans never carry the search words either (theirs record url.full).
        ours = [s for s in exporter.get_finished_spans() if s.name.startswith("cellcast.")]
        assert sorted(s.name for s in ours) == [
            "cellcast.tokens.create",
            "cellcast.tokens.get",
            "cellcast.tokens.get",  # the 404
            "cellcast.tokens.get",  # fail_inside
            "cellcast.tokens.list",  # the walk
            "cellcast.tokens.list",  # its one page call
            "cellcast.tokens.update",
        ]
        for span in ours:
            assert "Payroll" not in json.dumps(dict(span.attributes or {}))


class TestDisabled:
    """Without OpenTelemetry (or turned off) every call is the shared no-op."""

    def test_enabled_false(self, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
        """enabled=False makes no span even with a provider."""
        tracing = Tracing(provider, enabled=False)
        assert tracing.enabled is False
        with tracing.call("tokens.get", "GET", TOKENS_PATH) as span:
            span.attempt(status=200, retry=False)
            span.set_result(200)
            span.set_error(ValueError("x"))
        with tracing.walk("tokens.list", TOKENS_PATH) as walk, walk.activate():
            walk.page(number=1, items=1, total=None)
        assert exporter.get_finished_spans() == ()
        assert type(tracing.call("a", "GET", "/")) is CallSpan
        assert type(tracing.walk("a", "/")) is WalkSpan
        assert repr(tracing) == "<Tracing enabled=False>"

    def test_noop_is_shared(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """When opentelemetry is absent, call() and walk() allocate nothing."""
        monkeypatch.setattr(_tracing, "_otel", False)
        tracing = Tracing()
        assert tracing.enabled is False
        assert _tracing.otel_available() is False
        assert tracing.call("a", "GET", "/") is tracing.call("b", "PUT", "/x")
        assert tracing.walk("a", "/") is tracing.walk("b", "/")

    def test_noop_exit_propagates(self) -> None:
        """The no-op span never swallows the exception leaving its block."""
        tracing = Tracing(enabled=False)
        with pytest.raises(KeyError), tracing.call("a", "GET", "/"):
            raise KeyError("k")

    def test_enabled_when_installed(self, tracing: Tracing) -> None:
        """Here the SDK is installed: tracing is on."""
        assert tracing.enabled is True
        assert _tracing.otel_available() is True
        assert repr(tracing) == "<Tracing enabled=True>"


def run_python(code: str) -> str:
    result = _subprocess.run_python("-c", textwrap.dedent(code), timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


class TestInOtherProcesses:
    """What only a fresh interpreter can show: imports and the global provider."""

    def test_blocked_opentelemetry(self) -> None:
        """With opentelemetry unimportable the package imports, Tracing() works, no span."""
        out = run_python(
            """
            import sys
            import importlib.abc

            class Block(importlib.abc.MetaPathFinder):
                def find_spec(self, name, path=None, target=None):
                    if name == "opentelemetry" or name.startswith("opentelemetry."):
                        raise ModuleNotFoundError(f"No module named {name!r}")
                    return None

            sys.meta_path.insert(0, Block())
            import cellcast_async
            from cellcast_async._tracing import Tracing, otel_available

            tracing = Tracing()
            with tracing.call("tokens.get", "GET", "/x") as span:
                span.attempt(status=200, retry=False)
                span.set_result(200)
            with tracing.walk("tokens.list", "/x") as walk, walk.activate():
                walk.page(number=1, items=3, total=3)
            loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
            print(tracing.enabled, otel_available(), loaded)
            """
        )
        assert out.split() == ["False", "False", "[]"]

    def test_package_import_loads_no_opentelemetry(self) -> None:
        """Importing cellcast_async (otel installed) imports none of it until Tracing()."""
        out = run_python(
            """
            import sys
            import cellcast_async
            before = [m for m in sys.modules if m.startswith("opentelemetry")]
            from cellcast_async._tracing import Tracing
            after_module = [m for m in sys.modules if m.startswith("opentelemetry")]
            Tracing()
            print(len(before), len(after_module), "opentelemetry.trace" in sys.modules)
            """
        )
        assert out.split() == ["0", "0", "True"]

    def test_global_provider_set_later(self) -> None:
        """Tracing() uses the global provider, even one set after it was built."""
        out = run_python(
            """
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )
            from cellcast_async._tracing import Tracing

            tracing = Tracing()
            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            with tracing.call("tokens.get", "GET", "/x"):
                pass
            print([s.name for s in exporter.get_finished_spans()])
            """
        )
        assert out.strip() == "['cellcast.tokens.get']"


class TestBenchmarkRuns:
    """benchmarks/tracing.py still runs end to end (tiny sizes; nothing here is timed)."""

    def test_prints_every_variant(self) -> None:
        """Each tracing variant gets a row, and the closing ratio line prints."""
        script = Path(__file__).resolve().parents[2] / "benchmarks" / "tracing.py"
        out = run_python(
            f"""
            import runpy, sys
            sys.argv = [{str(script)!r}, "--calls", "50", "--rounds", "1",
                        "--sandbox-calls", "5"]
            runpy.run_path(sys.argv[0], run_name="__main__")
            """
        )
        for label in (
            "| no tracing code",
            "| Tracing off / opentelemetry not installed |",
            "| opentelemetry-api, no SDK configured |",
            "| opentelemetry-sdk, every span recorded |",
        ):
            assert label in out
        assert "Tracing off adds" in out


class TestWalksThroughTheSession:
    """``cc.tokens.list`` makes the walk span itself; its page calls are its children."""

    async def test_walk_span_with_prefetched_pages(
        self, provider: TracerProvider, exporter: InMemorySpanExporter
    ) -> None:
        async with (
            Sandbox(tokens=50) as sb,
            CellcastSession(api_key=sb.api_key, base_url=sb.url, tracer_provider=provider) as cc,
        ):
            tokens = await cc.tokens.list(limit=10, concurrency=4).collect()
        assert len(tokens) == 50
        (walk,) = [
            s for s in by_name(exporter, "cellcast.tokens.list") if s.kind is SpanKind.INTERNAL
        ]
        calls = [s for s in by_name(exporter, "cellcast.tokens.list") if s.kind is SpanKind.CLIENT]
        # Five pages and the closing read of page 1 that proves the list stayed quiet.
        assert len(calls) == 6
        assert {parent_id(s) for s in calls} == {span_id(walk)}
        pages = [e for e in walk.events if e.name == "cellcast.page"]
        assert [e.attributes["cellcast.page.number"] for e in pages] == [1, 2, 3, 4, 5]  # type: ignore[index]
        assert (walk.attributes or {})["cellcast.walk.items"] == 50

    async def test_a_failed_walk_records_its_error_class(
        self, provider: TracerProvider, exporter: InMemorySpanExporter
    ) -> None:
        async with (
            Sandbox(tokens=30) as sb,
            CellcastSession(
                api_key=sb.api_key, base_url=sb.url, tracer_provider=provider, max_retries=0
            ) as cc,
        ):
            sb.script({2: "500"})
            with pytest.raises(ServerError):
                await cc.tokens.list(limit=10).collect()
        (walk,) = [
            s for s in by_name(exporter, "cellcast.tokens.list") if s.kind is SpanKind.INTERNAL
        ]
        assert (walk.attributes or {})["error.type"] == "ServerError"
