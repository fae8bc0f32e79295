"""The request pipeline: per-call options, the deadline, hooks, errors that pickle,
proxies from the environment, and the package's shape (no cycle, no private reach-in)."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web
from aioresponses import aioresponses

import cellcast_async
from cellcast_async import (
    APIError,
    AuthenticationError,
    BadRequestError,
    CellcastError,
    CellcastSession,
    DecodeError,
    NotFoundError,
    PermissionDeniedError,
    PlanError,
    RateLimitError,
    RequestEvent,
    ResponseEvent,
    RotationError,
    RotationStep,
    ServerError,
    TimeoutError,
    TransportError,
)
from cellcast_async._transport import CLOSED

from ._support import (
    ANY_TOKEN_URL,
    API_KEY,
    OK,
    TOKEN_PATH,
    TOKENS_PATH,
    UNAVAILABLE,
    FakeClock,
    FakeTransport,
    Sent,
    answer,
    envelope,
    exactly,
    on_clock,
    sent,
    session,
    token_json,
)


class TestWithOptions:
    """``with_options`` gives a view: other options, the same pool, nothing to close."""

    async def test_view_changes_only_what_it_names(self) -> None:
        async with session(timeout=10.0, max_retries=4) as cc:
            fast = cc.with_options(timeout=2.0, max_retries=0)
            assert (fast.timeout, fast.max_retries, fast.deadline) == (2.0, 0, None)
            assert (cc.timeout, cc.max_retries) == (10.0, 4)
            again = fast.with_options(deadline=5.0)
            assert (again.timeout, again.max_retries, again.deadline) == (2.0, 0, 5.0)

    async def test_view_shares_the_pool_and_needs_no_closing(self) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, payload=OK, repeat=True)
            cc = session()
            view = cc.with_options(timeout=1.0)
            assert view._transport is cc._transport
            await view.tokens.get("tok001")
            await view.aclose()  # a view's close does nothing
            assert not cc.closed
            await cc.tokens.get("tok001")
            await cc.aclose()
            assert view.closed  # the parent's close ends its views
            with pytest.raises(RuntimeError, match="closed"):
                await view.tokens.get("tok001")
        assert repr(view).startswith("<CellcastSession view https://api.cellcast.com")

    async def test_max_retries_zero_for_one_call(self) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=503, payload=UNAVAILABLE, repeat=True)
            async with session(max_retries=3) as cc:
                with pytest.raises(ServerError):
                    await cc.with_options(max_retries=0).tokens.get("tok001")
        assert len(sent(m)) == 1

    async def test_timeout_for_one_call(self) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, payload=OK, repeat=True)
            async with session(timeout=30.0) as cc:
                await cc.with_options(timeout=2.5).tokens.get("tok001")
                await cc.tokens.get("tok001")
        timeouts = [kwargs["timeout"].total for _, _, kwargs in sent(m)]
        assert timeouts == [2.5, 30.0]

    async def test_extra_headers_ride_on_every_attempt(self) -> None:
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=503, payload=UNAVAILABLE)
            m.get(ANY_TOKEN_URL, payload=OK)
            async with session() as cc:
                await cc.with_options(headers={"X-Trace": "abc"}).tokens.get("tok001")
        for _, _, kwargs in sent(m):
            assert kwargs["headers"]["X-Trace"] == "abc"
            assert kwargs["headers"]["Authorization"] == f"Bearer {API_KEY}"

    @pytest.mark.parametrize("name", ["Authorization", "authorization", "AUTHORIZATION"])
    def test_authorization_cannot_be_overridden(self, name: str) -> None:
        cc = session()
        message = "headers cannot set Authorization: pass api_key= to the session"
        with pytest.raises(ValueError, match=exactly(message)):
            cc.with_options(headers={name: "Bearer other"})

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"timeout": 0}, "timeout must be a positive number of seconds or None, got 0"),
            ({"timeout": "1"}, "timeout must be a positive number of seconds or None, got '1'"),
            ({"deadline": -1.0}, "deadline must be a positive number of seconds or None, got -1.0"),
            (
                {"deadline": float("nan")},
                "deadline must be a positive number of seconds or None, got nan",
            ),
            ({"max_retries": -1}, "max_retries must be an int >= 0, got -1"),
            ({"max_retries": True}, "max_retries must be an int >= 0, got True"),
            ({"headers": ["X-A"]}, "headers must be a dict, not list"),
            ({"headers": {"X-A": 1}}, "headers must map str names to str values"),
            ({"headers": {"X A": "1"}}, "header name 'X A' is not a valid HTTP header name"),
            (
                {"headers": {"X-A": "v\r\nX-Injected: 1"}},
                "header 'X-A' must not contain CR, LF or control characters",
            ),
        ],
    )
    def test_misuse(self, kwargs: dict[str, Any], message: str) -> None:
        cc = session()
        with pytest.raises(ValueError, match=exactly(message)):
            cc.with_options(**kwargs)

    def test_deadline_misuse_on_the_session(self) -> None:
        with pytest.raises(
            ValueError,
            match=exactly("deadline must be a positive number of seconds or None, got 0"),
        ):
            session(deadline=0)


class TestDeadline:
    """A deadline bounds the whole call: attempts, backoff and Retry-After waits."""

    async def test_a_wait_that_would_pass_the_deadline_is_not_started(self) -> None:
        clock = FakeClock()
        transport = FakeTransport(
            answer(UNAVAILABLE, status=503, headers={"Retry-After": "1"}),
        )
        async with on_clock(clock, max_retries=10, deadline=1.5, transport=transport) as cc:
            with pytest.raises(TimeoutError) as info:
                await cc.tokens.get("tok001")
        assert clock.waits == [1.0]  # the second 1 s wait would end at 2.0 > 1.5
        assert len(transport.sent) == 2
        assert str(info.value) == (
            f"GET {TOKEN_PATH}: the call's deadline of 1.5 s would pass during the 1 s wait"
            " to retry (last attempt: 503)"
        )
        assert info.value.kind == "deadline"
        assert isinstance(info.value, TransportError)

    async def test_each_attempt_gets_only_the_time_left(self) -> None:
        clock = FakeClock()
        transport = FakeTransport(
            answer(UNAVAILABLE, status=503, headers={"Retry-After": "0.5"}),
            answer(OK),
        )
        async with on_clock(clock, timeout=30.0, deadline=2.0, transport=transport) as cc:
            await cc.tokens.get("tok001")
        assert [request.timeout for request in transport.sent] == [2.0, 1.5]

    async def test_view_with_a_deadline(self) -> None:
        clock = FakeClock()
        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=503, payload=UNAVAILABLE, repeat=True)
            async with on_clock(clock, max_retries=50) as cc:
                with pytest.raises(TimeoutError, match=r"deadline of 1\.5 s"):
                    await cc.with_options(deadline=1.5).tokens.get("tok001")
        assert sum(clock.waits) <= 1.5
        assert clock.now - 100.0 <= 1.5

    async def test_a_timed_out_attempt_at_the_deadline_says_deadline(self) -> None:
        clock = FakeClock()

        def hang(request: Sent) -> TimeoutError:
            assert request.timeout is not None
            clock.now += request.timeout  # the attempt used all the time it had
            return TimeoutError("no answer", method=request.method, path=request.path)

        transport = FakeTransport(hang)
        async with on_clock(clock, timeout=30.0, deadline=3.0, transport=transport) as cc:
            with pytest.raises(TimeoutError) as info:
                await cc.tokens.get("tok001")
        assert str(info.value) == f"GET {TOKEN_PATH}: the call's deadline of 3 s passed"
        assert len(transport.sent) == 1

    async def test_each_page_of_a_walk_has_its_own_deadline(self) -> None:
        clock = FakeClock()
        pages = {
            n: envelope(
                {
                    "items": [token_json(n)],
                    "total": 3,
                    "page": n,
                    "limit": 1,
                    "totalPages": 3,
                    "hasNextPage": n < 3,
                    "hasPrevPage": n > 1,
                }
            )
            for n in (1, 2, 3)
        }

        def page(url: Any, **kwargs: Any) -> Any:
            from aioresponses import CallbackResult

            clock.now += 1.0  # each page takes 1 s: 3 s in all, 1 s each
            return CallbackResult(payload=pages[int(url.query["page"])])

        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, callback=page, repeat=True)
            async with on_clock(clock, deadline=1.5) as cc:
                tokens = await cc.tokens.list(limit=1).collect()
        assert [t.id for t in tokens] == ["tok001", "tok002", "tok003"]


class TestTransportSeam:
    """``transport=`` sends every attempt through the given Transport instead of aiohttp."""

    async def test_every_attempt_goes_through_it(self) -> None:
        transport = FakeTransport(answer(UNAVAILABLE, status=503), answer(OK))
        async with session(transport=transport, max_retries=1) as cc:
            token = await cc.tokens.get("tok001")
            view = cc.with_options(headers={"X-Trace": "t"})
            await view.tokens.get("tok001")
        assert token.id == "tok001"
        assert [(r.method, r.path) for r in transport.sent] == [("GET", TOKEN_PATH)] * 3
        assert transport.sent[2].headers == {"X-Trace": "t"}
        # The key is the transport's business: the session never hands it over.
        assert all(API_KEY not in repr(r) for r in transport.sent)

    async def test_closing_the_session_closes_it(self) -> None:
        transport = FakeTransport(answer(OK))
        cc = session(transport=transport)
        await cc.with_options(timeout=1.0).aclose()  # a view closes nothing
        assert transport.closes == 0
        await cc.aclose()
        assert transport.closes == 1
        assert cc.closed
        with pytest.raises(RuntimeError, match=exactly(CLOSED)):
            await cc.tokens.get("tok001")

    async def test_its_failures_are_retried_like_aiohttps(self) -> None:
        reset = TransportError("the connection was reset", kind="reset")
        transport = FakeTransport(reset, answer(OK))
        async with session(transport=transport, max_retries=1) as cc:
            assert (await cc.tokens.get("tok001")).id == "tok001"
        assert len(transport.sent) == 2

    def test_not_with_session(self) -> None:
        with pytest.raises(
            ValueError,
            match=exactly("pass session= or transport=, not both: a transport sends its own way"),
        ):
            session(transport=FakeTransport(answer(OK)), session=object())

    def test_not_a_transport(self) -> None:
        with pytest.raises(
            ValueError,
            match=exactly(
                "transport must have send(), aclose() and closed (see cellcast_async.Transport),"
                " not str"
            ),
        ):
            session(transport="http://127.0.0.1")


class TestEventHooks:
    """Hooks see every attempt, retries included; a hook that raises fails the call."""

    async def test_request_and_response_events_for_every_attempt(self) -> None:
        seen: list[RequestEvent | ResponseEvent] = []

        async def on_request(event: RequestEvent) -> None:
            seen.append(event)

        def on_response(event: ResponseEvent) -> None:  # plain functions work too
            seen.append(event)

        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, status=503, payload=UNAVAILABLE, headers={"X-Request-Id": "r1"})
            m.get(ANY_TOKEN_URL, payload=OK)
            hooks = {"request": [on_request], "response": [on_response]}
            async with session(event_hooks=hooks) as cc:
                await cc.with_options(headers={"X-Trace": "t"}).tokens.get("tok001")

        kinds = [(type(e).__name__, e.attempt, getattr(e, "status", None)) for e in seen]
        assert kinds == [
            ("RequestEvent", 1, None),
            ("ResponseEvent", 1, 503),
            ("RequestEvent", 2, None),
            ("ResponseEvent", 2, 200),
        ]
        for event in seen:
            assert (event.method, event.path) == ("GET", TOKEN_PATH)
            assert "Authorization" not in event.headers
            assert API_KEY not in repr(event) + repr(dict(event.headers))
        assert seen[0].headers["X-Trace"] == "t"
        assert isinstance(seen[1], ResponseEvent)
        assert seen[1].headers["X-Request-Id"] == "r1"
        assert seen[1].elapsed >= 0
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            seen[0].attempt = 9  # type: ignore[misc]

    async def test_a_hook_that_raises_fails_the_call_with_its_own_exception(self) -> None:
        class HookBug(Exception):
            pass

        async def broken(event: RequestEvent) -> None:
            raise HookBug("user bug")

        with aioresponses() as m:
            m.get(ANY_TOKEN_URL, payload=OK, repeat=True)
            async with session(event_hooks={"request": [broken]}) as cc:
                with pytest.raises(HookBug, match="user bug"):
                    await cc.tokens.get("tok001")
        assert sent(m) == []  # it ran before the attempt: nothing was sent

    @pytest.mark.parametrize(
        ("hooks", "message"),
        [
            ([], "event_hooks must be a dict, not list"),
            ({"send": []}, "event_hooks takes 'request' and 'response', not 'send'"),
            ({"request": print}, "event_hooks['request'] must be a list of callables"),
            ({"response": [1]}, "event_hooks['response'] must be a list of callables"),
        ],
    )
    def test_misuse(self, hooks: Any, message: str) -> None:
        with pytest.raises(ValueError, match=exactly(message)):
            session(event_hooks=hooks)


def every_error() -> list[CellcastError]:
    headers = {"X-Request-Id": "req-1", "Content-Type": "application/json"}
    api_kwargs: dict[str, Any] = {
        "detail": "API name is required",
        "body": {"status": False, "message": "Validation error"},
        "method": "POST",
        "path": TOKENS_PATH,
        "headers": headers,
    }
    return [
        CellcastError("plain", method="GET", path=TOKEN_PATH),
        APIError("teapot", status_code=418, **api_kwargs),
        BadRequestError("Validation error", status_code=400, **api_kwargs),
        AuthenticationError("Token expired", status_code=401, **api_kwargs),
        PermissionDeniedError("Forbidden", status_code=403, **api_kwargs),
        NotFoundError("Not found", status_code=404, **api_kwargs),
        RateLimitError("Too many requests", retry_after=2.5, **api_kwargs),
        ServerError("Internal server error", status_code=500, **api_kwargs),
        TransportError("the connection failed", method="GET", path=TOKEN_PATH, kind="reset"),
        TimeoutError("no answer within 2 s", method="GET", path=TOKEN_PATH),
        DecodeError("the body is not valid JSON", status_code=200, method="GET", path="/x"),
        PlanError("the plan is not authentic: it was changed after it was made"),
        RotationError(
            "rotation of token 'a1' failed at deliver: OSError: full",
            token_id="a1",
            step=RotationStep.DELIVER,
            reason="OSError: full",
            restored=True,
            new_token_id=None,
        ),
    ]


class TestErrorsPickle:
    """Every error class survives pickle with every field (Ray, multiprocessing, Celery)."""

    @pytest.mark.parametrize("error", every_error(), ids=lambda e: type(e).__name__)
    def test_round_trip(self, error: CellcastError) -> None:
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error)
        assert str(again) == str(error)
        assert repr(again) == repr(error)
        assert again.args == error.args
        fields = ("message", "method", "path", "status_code", "detail", "body", "request_id")
        rotation = ("token_id", "step", "reason", "restored", "new_token_id")
        for name in (*fields, "retry_after", "kind", *rotation):
            assert getattr(again, name, None) == getattr(error, name, None)
        if isinstance(error, APIError):
            assert isinstance(again, APIError)
            assert dict(again.headers) == dict(error.headers)
            assert again.headers["x-request-id"] == "req-1"  # still case-insensitive

    def test_every_class_of_the_tree_is_covered(self) -> None:
        covered = {type(e) for e in every_error()}
        tree = {
            obj
            for obj in vars(cellcast_async).values()
            if isinstance(obj, type) and issubclass(obj, CellcastError)
        }
        assert tree <= covered

    async def test_an_error_from_a_real_answer(self) -> None:
        with aioresponses() as m:
            m.get(
                ANY_TOKEN_URL,
                status=429,
                payload={"status": False, "message": "Too many requests", "error": {}},
                headers={"Retry-After": "3", "Request-Id": "abc-123"},
            )
            async with session(max_retries=0) as cc:
                with pytest.raises(RateLimitError) as info:
                    await cc.tokens.get("tok001")
        error = info.value
        assert error.request_id == "abc-123"
        assert error.headers["retry-after"] == "3"
        again = pickle.loads(pickle.dumps(error))
        assert (again.retry_after, again.request_id, str(again)) == (3.0, "abc-123", str(error))


class TestProxyFromTheEnvironment:
    """The session we create honours HTTP_PROXY/NO_PROXY (``trust_env``), as httpx does."""

    @staticmethod
    async def proxy(seen: list[str]) -> web.AppRunner:
        async def handler(request: web.Request) -> web.StreamResponse:
            seen.append(request.raw_path)
            return web.json_response(envelope(token_json(1)))

        app = web.Application()
        app.router.add_route("*", r"/{tail:[\s\S]*}", handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    async def test_requests_go_through_the_proxy(
        self, monkeypatch: pytest.MonkeyPatch, closed_port: int
    ) -> None:
        seen: list[str] = []
        runner = await self.proxy(seen)
        try:
            port = runner.addresses[0][1]
            for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
                monkeypatch.delenv(name, raising=False)
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
            # Nothing listens at the base URL itself: only the proxy can answer.
            base = f"http://127.0.0.1:{closed_port}"
            async with CellcastSession(api_key=API_KEY, base_url=base, max_retries=0) as cc:
                token = await cc.tokens.get("tok001")
            assert token.id == "tok001"
            assert seen == [f"{base}{TOKEN_PATH}"]  # the absolute form a proxy receives

            async with CellcastSession(
                api_key=API_KEY, base_url=base, max_retries=0, trust_env=False
            ) as cc:
                with pytest.raises(TransportError) as info:
                    await cc.tokens.get("tok001")
            assert info.value.kind == "connect"
            assert len(seen) == 1

            monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # exempt: straight to the closed port
            async with CellcastSession(api_key=API_KEY, base_url=base, max_retries=0) as cc:
                with pytest.raises(TransportError) as info:
                    await cc.tokens.get("tok001")
            assert info.value.kind == "connect"
            assert len(seen) == 1
        finally:
            await runner.cleanup()


PACKAGE = Path(cellcast_async.__file__).parent


def imports_of(path: Path) -> set[str]:
    """The package modules ``path`` imports at run time (TYPE_CHECKING blocks skipped)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])

    visit(tree.body)
    return found


class TestPackageShape:
    """No import cycle, and no resource reaching into the session."""

    def test_no_import_cycle(self) -> None:
        graph = {p.stem: imports_of(p) for p in PACKAGE.glob("_*.py") if p.stem != "__init__"}
        state: dict[str, str] = {}

        def walk(node: str, path: list[str]) -> None:
            state[node] = "open"
            for nxt in graph.get(node, ()):
                if nxt not in graph:
                    continue
                assert state.get(nxt) != "open", f"import cycle: {' -> '.join([*path, nxt])}"
                if nxt not in state:
                    walk(nxt, [*path, nxt])
            state[node] = "done"

        for module in graph:
            if module not in state:
                walk(module, [module])

    def test_resources_know_only_the_pipeline(self) -> None:
        source = (PACKAGE / "_tokens.py").read_text()
        assert "_session" not in imports_of(PACKAGE / "_tokens.py")
        assert "session._" not in source
        assert "CellcastSession" not in source
