"""The aiohttp.web glue: ``Sandbox`` (start, record, inject faults, stop) and ``serve()``.

Every request is handled in this order: read the body, record it, pass the door (a storm
or a challenge answers 429 at once), take its turn at its key's rate limit (a refusal
answers 429 at once), queue for one of ``capacity`` places, decide its fault (before auth,
so even an unauthenticated request can be dropped), wait out the latency, then answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import math
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Final, TypeVar, overload

from aiohttp import web

from ._app import ApiRequest, ApiResponse, failure, handle, json_bytes, loads_body
from ._faults import MUTATIONS, FaultAction, FaultPlan, Faults, ScriptEntry, format_retry_after
from ._state import (
    REFERENCE_TIME,
    RETRY_AFTER_STYLES,
    RateDecision,
    RateLimiter,
    Store,
    format_retry_after_style,
)

__all__ = ["RecordedRequest", "RecordedHeaders", "Sandbox", "serve"]

_T = TypeVar("_T")
_LOOPBACK_NAMES: Final = frozenset({"localhost"})
_SHUTDOWN_TIMEOUT: Final = 2.0  # hung handlers are woken on exit; this only bounds stragglers
_MAX_CACHED_ANSWERS: Final = 4096  # rendered GET answers kept (a 100k walk is 1000 pages)
_POLL: Final = 0.25  # how often a hanging handler checks whether its client gave up

# What an nginx/ALB in front of the API answers with; 502 and 504 come from the gateway, not
# the app, so they are HTML rather than the app's JSON error shape. Not in the seeds.
_GATEWAY_HTML: Final = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
)


def _check_loopback(host: str) -> str:
    """The address to bind; refuses anything that is not loopback (the sandbox is local only)."""
    if host in _LOOPBACK_NAMES:
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(f"the sandbox only listens on loopback (127.0.0.1, ::1), not {host!r}")
    return str(address)


class RecordedHeaders(dict[str, str]):
    """Request headers with lower-cased names: lookups ignore case, repr hides credentials."""

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        super().__init__()
        for name, value in (items or {}).items():
            self[name] = value

    def __setitem__(self, key: str, value: str) -> None:
        key = key.lower()
        existing = super().get(key)
        super().__setitem__(key, value if existing is None else f"{existing}, {value}")

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    @overload
    def get(self, key: str, default: None = None, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...
    def get(self, key: str, default: object = None, /) -> object:
        return super().get(key.lower(), default)

    def __repr__(self) -> str:
        shown = {k: ("<redacted>" if k == "authorization" else v) for k, v in self.items()}
        return f"RecordedHeaders({shown!r})"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the sandbox received it."""

    number: int  # 1-based, counted over all requests since start (or reset_requests())
    method: str
    path: str  # raw, still percent-encoded, without the query string
    query: dict[str, str]  # decoded; the first value of a repeated name
    headers: RecordedHeaders = field(repr=True)
    json: Any  # the parsed body, or None when it was empty or not JSON
    body: bytes = field(default=b"", repr=False)
    # time.monotonic() on arrival, before the rate limit: lets a test count requests per
    # sliding second as the server saw them.
    received_at: float = field(default=0.0, repr=False, compare=False)


class Sandbox:
    """A local Cellcast token API on 127.0.0.1, with demo data and fault injection.

    ``async with Sandbox() as sb:`` starts it on an ephemeral port; ``sb.url`` is the SDK's
    ``base_url``. Everything outside ``async with`` (data, keys, script, faults) works too.
    """

    def __init__(
        self,
        seed: int = 0,
        tokens: int = 300,
        sub_accounts: int = 3,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        *,
        rate_limit: float | None = None,
        burst: float | None = None,
        rate_limit_headers: bool | str = False,
        capacity: int | None = None,
        limiter: str = "token-bucket",
        rate_limit_retry_after: str = "whole",
    ) -> None:
        self._bind_host = _check_loopback(host)
        if not 0 <= port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        if rate_limit is None and burst is not None:
            raise ValueError("burst needs a rate_limit")
        if rate_limit is None and rate_limit_headers:
            raise ValueError("rate_limit_headers needs a rate_limit")
        if rate_limit is None and limiter != "token-bucket":
            raise ValueError("limiter needs a rate_limit")
        if rate_limit is None and rate_limit_retry_after != "whole":
            raise ValueError("rate_limit_retry_after needs a rate_limit")
        if rate_limit_retry_after not in RETRY_AFTER_STYLES:
            raise ValueError(
                f"rate_limit_retry_after must be one of {', '.join(RETRY_AFTER_STYLES)}, "
                f"got {rate_limit_retry_after!r}"
            )
        if capacity is not None and (
            isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1
        ):
            raise ValueError(f"capacity must be a positive integer or None, got {capacity!r}")
        # True is the 1-second-window style the sandbox has always sent.
        header_style = "window" if rate_limit_headers is True else rate_limit_headers or "window"
        self._limiter = (
            RateLimiter(rate_limit, burst, kind=limiter, header_style=header_style)
            if rate_limit is not None
            else None
        )
        self._rate_limit_headers = bool(rate_limit_headers)
        self._retry_after_style = rate_limit_retry_after
        self._capacity_limit = capacity
        self._capacity: asyncio.Semaphore | None = None
        self._in_flight = 0
        self._peak_in_flight = 0
        self._rate_limited = 0
        self._requested_port = port
        self._store = Store(seed=seed, tokens=tokens, sub_accounts=sub_accounts, api_key=api_key)
        self._plan = FaultPlan(faults)
        self._requests: list[RecordedRequest] = []
        self._answers: dict[
            tuple[int, str, tuple[tuple[str, str], ...], str | None], tuple[int, bytes]
        ] = {}
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        self._closing = asyncio.Event()
        if self._capacity_limit is not None:
            self._capacity = asyncio.Semaphore(self._capacity_limit)
        app = web.Application()
        # One catch-all route: _app routes on the raw path itself, so an encoded id can
        # never be decoded into a different route. aiohttp matches the decoded path, and
        # "." stops at a newline: [\s\S] lets an id with %0A through to be recorded.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle)
        # access_log=None: nothing is printed, and no Authorization header can reach a log.
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._bind_host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing.set()  # wakes hanging and sleeping handlers so shutdown never waits on them
        await runner.cleanup()

    # ------------------------------------------------------------------ public state

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``; the SDK appends ``/api/v1/apiClient/token``."""
        if self._runner is None or self._port is None:
            raise RuntimeError("the sandbox is not running; use `async with Sandbox() as sb`")
        host = f"[{self._bind_host}]" if ":" in self._bind_host else self._bind_host
        return f"http://{host}:{self._port}"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the sandbox has not been started")
        return self._port

    @property
    def api_key(self) -> str:
        return self._store.api_key

    @property
    def sub_account_ids(self) -> tuple[str, ...]:
        return self._store.primary_sub_ids

    @property
    def other_api_key(self) -> str:
        """A second valid key; its sub-accounts are not the primary key's (-> 403 / 404)."""
        return self._store.other_api_key

    @property
    def other_sub_account_ids(self) -> tuple[str, ...]:
        return self._store.other_sub_ids

    @property
    def reference_time(self) -> datetime:
        """The fixed instant demo ages count back from (not now(), for reproducibility)."""
        return REFERENCE_TIME

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._requests

    def reset_requests(self) -> None:
        """Forget recorded requests; numbering (and script numbers) restart at 1."""
        self._requests.clear()

    @property
    def faults(self) -> Faults:
        return self._plan.faults

    @faults.setter
    def faults(self, faults: Faults | None) -> None:
        self._plan.faults = faults or Faults()

    def script(self, entries: Mapping[int, ScriptEntry]) -> None:
        """Exact faults by 1-based request number, e.g. ``{3: "503", 4: ("429", 1.5)}``.

        Merged into the current script; each entry fires once; wins over random faults.
        """
        self._plan.script(entries)

    def clear_script(self) -> None:
        self._plan.clear_script()

    def add_tokens(
        self,
        n: int,
        sub_account_id: str | None = None,
        status: str | None = None,
        *,
        age_days: float | None = None,
    ) -> list[str]:
        """Bulk-load n tokens; returns their ids. Their ages are spread over the demo span,
        or all ``age_days`` days before :attr:`reference_time` when given."""
        if age_days is not None and not (math.isfinite(age_days) and age_days >= 0):
            raise ValueError("age_days must be a finite number >= 0")
        created = (
            None
            if age_days is None
            else int((REFERENCE_TIME.timestamp() - age_days * 86400) * 1000)
        )
        return self._store.add_tokens(n, sub_account_id, status, created)

    def writes(self, token_id: str | None = None) -> list[RecordedRequest]:
        """The writes received (PUT and DELETE of one token; POST), in order: of
        ``token_id`` only when given. Counts every attempt, answered or not."""
        found = []
        for request in self._requests:
            if request.method not in ("PUT", "DELETE", "POST"):
                continue
            if token_id is not None and request.path.rsplit("/", 1)[-1] != token_id:
                continue
            found.append(request)
        return found

    def token_count(self, sub_account_id: str | None = None) -> int:
        """Tokens of one sub-account, or (None) of all the primary key's sub-accounts."""
        return self._store.token_count(sub_account_id)

    @property
    def tokens_created(self) -> int:
        """How many tokens POST has created (not counting demo data or add_tokens)."""
        return self._store.tokens_created

    @property
    def rate_limited(self) -> int:
        """How many 429s the rate limit has sent since start (injected faults not counted)."""
        return self._rate_limited

    @property
    def peak_in_flight(self) -> int:
        """The most requests being worked on at once (past the rate limit, within capacity)."""
        return self._peak_in_flight

    def __repr__(self) -> str:
        where = self.url if self._runner is not None else "stopped"
        return f"<Sandbox {where} tokens={self.token_count()}>"

    # ------------------------------------------------------------------ request handling

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        raw_path = request.raw_path.split("?", 1)[0]
        query = {name: request.query.getone(name) for name in request.query}
        number = len(self._requests) + 1
        self._requests.append(
            RecordedRequest(
                number=number,
                method=request.method,
                path=raw_path,
                query=query,
                headers=RecordedHeaders(request.headers),
                json=_parse_json(body),
                body=body,
                received_at=time.monotonic(),
            )
        )
        if self._plan.guards_door:
            # "The same request" for the challenge; the body as a digest, so the requests it
            # remembers cost a few dozen bytes each, whatever was sent.
            identity = (
                request.method,
                raw_path,
                tuple(sorted(query.items())),
                request.headers.get("Authorization"),
                hashlib.blake2b(body, digest_size=16).digest(),
            )
            door = self._plan.at_the_door(identity)
            if door is not None:
                return _too_many_fault(door)
        decision: RateDecision | None = None
        if self._limiter is not None:
            decision = self._limiter.take(request.headers.get("Authorization"))
            if not decision.allowed:
                self._rate_limited += 1
                return self._too_many(decision)
        if self._capacity is None:
            response = await self._work(request, number, raw_path, query, body)
        else:
            # Beyond `capacity` requests at once, answers queue, as on a real server.
            async with self._capacity:
                response = await self._work(request, number, raw_path, query, body)
        if decision is not None and self._rate_limit_headers:
            response.headers.update(_rate_headers(decision))
        return response

    def _too_many(self, decision: RateDecision) -> web.Response:
        # The envelope of the sandbox's other errors (seeds/000-003 400/403/404 shape);
        # Retry-After in the chosen style (README "Rate limit, capacity, limits").
        response = _to_web(failure(429, "Too many requests", "Rate limit exceeded"))
        retry_after = format_retry_after_style(decision.retry_after, self._retry_after_style)
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        if self._rate_limit_headers:
            response.headers.update(_rate_headers(decision))
        return response

    async def _work(
        self,
        request: web.Request,
        number: int,
        raw_path: str,
        query: dict[str, str],
        body: bytes,
    ) -> web.StreamResponse:
        self._in_flight += 1
        self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            return await self._answer(request, number, raw_path, query, body)
        finally:
            self._in_flight -= 1

    async def _answer(
        self,
        request: web.Request,
        number: int,
        raw_path: str,
        query: dict[str, str],
        body: bytes,
    ) -> web.StreamResponse:
        action = self._plan.decide(number, request.method)
        delay = self._plan.delay()
        if delay > 0 and await self._wait_closing(delay):
            return _drop(request)

        api_request = ApiRequest(
            method=request.method,
            raw_path=raw_path,
            query=query,
            authorization=request.headers.get("Authorization"),
            content_type=request.headers.get("Content-Type", ""),
            body=body,
        )
        if action is None:
            if request.method == "GET":
                return self._read(api_request)
            return _to_web(handle(self._store, api_request))
        return await self._fault(action, request, api_request)

    def _read(self, api_request: ApiRequest) -> web.Response:
        """A GET, answered from the cache while the store has not changed since.

        A page of 100 tokens costs about a millisecond to render; benchmarks walk the
        same pages again and again, and should measure the client, not this server.
        Faults and latency still apply: only the rendering is remembered.
        """
        store = self._store
        key = (
            store.generation,
            api_request.raw_path,
            tuple(sorted(api_request.query.items())),
            api_request.authorization,
        )
        cached = self._answers.get(key)
        if cached is None:
            answer = handle(store, api_request)
            cached = (answer.status, json_bytes(answer.payload))
            if len(self._answers) >= _MAX_CACHED_ANSWERS or (
                self._answers and next(iter(self._answers))[0] != store.generation
            ):
                self._answers.clear()
            self._answers[key] = cached
        status, body = cached
        return web.Response(
            status=status, body=body, content_type="application/json", charset="utf-8"
        )

    async def _fault(
        self, action: FaultAction, request: web.Request, api_request: ApiRequest
    ) -> web.StreamResponse:
        kind = action.kind
        if kind == "drop":
            # The answer is lost, the effect is not: what makes retrying a POST dangerous.
            is_mutation = request.method.upper() in MUTATIONS
            if is_mutation and not self._plan.faults.drop_before_apply:
                handle(self._store, api_request)
            return _drop(request)
        if kind == "hang":
            await self._hang(request)
            return _drop(request)
        if kind == "malformed":
            answer = handle(self._store, api_request)
            encoded = json_bytes(answer.payload)
            return web.Response(
                status=200,
                body=encoded[: max(1, len(encoded) // 2)],
                content_type="application/json",
                charset="utf-8",
            )
        if kind == "429":
            return _too_many_fault(action)
        if kind == "500":
            return _to_web(failure(500, "Internal server error", "Something went wrong"))
        if kind == "503":
            return _to_web(failure(503, "Service unavailable", "Service temporarily unavailable"))
        reason = {"502": "Bad Gateway", "504": "Gateway Time-out"}[kind]
        return web.Response(
            status=int(kind),
            text=_GATEWAY_HTML.format(code=kind, reason=reason),
            content_type="text/html",
        )

    async def _wait_closing(self, timeout: float) -> bool:
        """Sleep up to ``timeout``; True if the sandbox began shutting down meanwhile."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout)
        return self._closing.is_set()

    async def _hang(self, request: web.Request) -> None:
        # Never answer; end when the sandbox stops or the client gives up, whichever is first.
        while not self._closing.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            await self._wait_closing(_POLL)


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return loads_body(body)
    except ValueError:  # not JSON, or nested deeper than the sandbox reads (README "The sandbox")
        return None


def _rate_headers(decision: RateDecision) -> dict[str, str]:
    """``X-RateLimit-*`` in the limiter's header style (README "Rate limit, capacity, limits")."""
    reset = decision.reset
    return {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(int(reset)) if float(reset).is_integer() else f"{reset:.3f}",
    }


def _too_many_fault(action: FaultAction) -> web.Response:
    response = _to_web(failure(429, "Too many requests", "Rate limit exceeded"))
    response.headers["Retry-After"] = format_retry_after(action.retry_after)
    return response


def _to_web(answer: ApiResponse) -> web.Response:
    return web.Response(
        status=answer.status,
        body=json_bytes(answer.payload),
        content_type="application/json",
        charset="utf-8",
    )


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection with no answer; aiohttp then skips writing the response."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=204)


# ---------------------------------------------------------------------- serve()


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    seed: int = 0,
    tokens: int = 300,
    faults: Faults | None = None,
    api_key: str | None = None,
    ready: Callable[[Sandbox], object] | None = None,
    *,
    sub_accounts: int = 3,
    rate_limit: float | None = None,
    burst: float | None = None,
    rate_limit_headers: bool | str = False,
    capacity: int | None = None,
    limiter: str = "token-bucket",
    rate_limit_retry_after: str = "whole",
) -> None:
    """Run a sandbox until Ctrl-C or SIGTERM (blocking).

    Prints nothing itself; ``ready(sb)`` is called once it is listening.
    """
    sandbox = Sandbox(
        seed=seed,
        tokens=tokens,
        sub_accounts=sub_accounts,
        faults=faults,
        host=host,
        port=port,
        api_key=api_key,
        rate_limit=rate_limit,
        burst=burst,
        rate_limit_headers=rate_limit_headers,
        capacity=capacity,
        limiter=limiter,
        rate_limit_retry_after=rate_limit_retry_after,
    )
    # Ctrl-C off the main thread, or a cancelled main task, is a normal way to stop too.
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(_serve_until_signal(sandbox, ready))


async def _serve_until_signal(sandbox: Sandbox, ready: Callable[[Sandbox], object] | None) -> None:
    stop = asyncio.Event()
    async with sandbox:
        with _stop_on_signals(stop):
            if ready is not None:
                ready(sandbox)
            await stop.wait()


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available off the main thread or on Windows; Ctrl-C then ends asyncio.run().
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
