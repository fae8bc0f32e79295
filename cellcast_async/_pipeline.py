"""The request pipeline: one object that runs a call from start to end.

    resource (cc.tokens.get, ...)
      -> Pipeline.call: the call's span; options (timeout, deadline, retries, headers)
           for each attempt: the rate governor's turn -> request hooks
             -> transport.send -> response hooks -> _protocol.retry_delay
             -> the outcome to the governor, the span and the walk (if a page)
           wait and go again, or stop
         -> _protocol.read_envelope -> decode (the converter)
         -> any error leaves through the redactor

Resources depend on this object only; the session holds configuration and lifecycle
(README, "Design"). The clock and ``sleep`` are injected, so tests and simulations run
on a fake clock.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import attrs
import cattrs

from ._converters import describe_failure
from ._exceptions import (
    CellcastError,
    DecodeError,
    ShapeError,
    TimeoutError,
    TransportError,
    _frozen_headers,
)
from ._governor import Governor, GovernorWaitTooLong
from ._protocol import RetryPolicy, parse_retry_after, read_envelope, retry_delay
from ._redact import Redactor, answer_token_values
from ._tracing import CallSpan, Tracing
from ._transport import CLOSED, Response, Transport
from ._walk import WalkRecorder, current_walk

__all__ = [
    "CallOptions",
    "EventHooks",
    "Pipeline",
    "RequestEvent",
    "ResponseEvent",
    "check_event_hooks",
    "check_headers",
]

R = TypeVar("R")

logger = logging.getLogger("cellcast_async")

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


@attrs.frozen
class RequestEvent:
    """One attempt about to be sent. ``headers`` never hold ``Authorization``.

    ``method`` and ``path`` (``/api/v1/apiClient/token/...``, no query) name the call;
    ``attempt`` counts from 1 (2 is the first retry); ``headers`` are the request's, as
    sent, read-only. A hook receives one per attempt (README "Per-call options").
    """

    method: str
    path: str
    attempt: int
    headers: Mapping[str, str] = attrs.field(converter=_frozen_headers, repr=False)


@attrs.frozen
class ResponseEvent:
    """One attempt's answer: its status, the seconds it took, its headers.

    ``method``, ``path`` and ``attempt`` as in :class:`RequestEvent`; ``status`` is the
    HTTP status; ``elapsed`` the seconds from sending to the answer's headers;
    ``headers`` the answer's, read-only.
    """

    method: str
    path: str
    attempt: int
    status: int
    elapsed: float
    headers: Mapping[str, str] = attrs.field(converter=_frozen_headers, repr=False)


EventHook = Callable[[Any], Any]
EventHooks = Mapping[str, Sequence[EventHook]]
_HOOK_KINDS: Final = ("request", "response")


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


@attrs.frozen
class CallOptions:
    """What ``with_options`` can change for the calls of a view (README, "Configuration")."""

    timeout: float | None = 30.0
    policy: RetryPolicy = attrs.field(factory=RetryPolicy)
    deadline: float | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)


_UNSET: Final[Any] = object()


def _retry_after_of(response: Response | None) -> float | None:
    if response is None or response.status != 429:
        return None
    return parse_retry_after(response.headers.get("Retry-After"))


class Pipeline:
    """Runs calls for one session (or one ``with_options`` view of it)."""

    def __init__(
        self,
        *,
        transport: Transport,
        converter: cattrs.Converter,
        options: CallOptions,
        redactor: Redactor,
        hooks: Mapping[str, tuple[EventHook, ...]],
        public_headers: Mapping[str, str],
        max_response_bytes: int | None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        tracing: Tracing | None = None,
        governor: Governor | None = None,
    ) -> None:
        self.transport = transport
        self.governor = governor
        self.converter = converter
        self.options = options
        self._redactor = redactor
        self._hooks = hooks
        self._public_headers = dict(public_headers)
        self._max_response_bytes = max_response_bytes
        self.clock: Clock = clock or default_clock
        self.sleep: Sleep = sleep or default_sleep
        self._rng = rng or random.Random()
        self.tracing = tracing or Tracing(enabled=False)

    def with_options(
        self,
        *,
        timeout: float | None = _UNSET,
        max_retries: int = _UNSET,
        deadline: float | None = _UNSET,
        headers: Mapping[str, str] | None = _UNSET,
    ) -> Pipeline:
        """A pipeline with some options changed; everything else is shared."""
        options = self.options
        changes: dict[str, Any] = {}
        if timeout is not _UNSET:
            changes["timeout"] = check_timeout(timeout, "timeout")
        if max_retries is not _UNSET:
            changes["policy"] = attrs.evolve(
                options.policy, max_retries=check_max_retries(max_retries)
            )
        if deadline is not _UNSET:
            changes["deadline"] = check_timeout(deadline, "deadline")
        if headers is not _UNSET:
            changes["headers"] = {**options.headers, **check_headers(headers)}
        view = object.__new__(Pipeline)
        view.__dict__.update(self.__dict__)
        view.options = attrs.evolve(options, **changes)
        return view

    async def _emit(self, kind: str, event: RequestEvent | ResponseEvent) -> None:
        # A hook that raises fails the call with its own exception: it is the user's bug.
        for hook in self._hooks[kind]:
            result = hook(event)
            if inspect.isawaitable(result):
                await result

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        decode: Callable[[dict[str, Any]], Awaitable[R]],
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        done: Callable[[Response, bool], bool] | None = None,
    ) -> R | None:
        """Send until a final answer, then decode it; ``done`` may accept an answer as is.

        ``operation`` names the call for its span (``tokens.get``). Every error leaves
        through the redactor, with the secrets of the last answer, and without the
        frames below this call (their locals hold headers and answers).
        """
        last: list[Response] = []
        with self.tracing.call(operation, method, path) as span:
            try:
                result = await self._call(method, path, decode, params, json, done, last, span)
            except CellcastError as exc:
                redactor = self._redactor.for_answer(last[0].body) if last else self._redactor
                redactor.scrub(exc)
                span.set_error(exc)
                raise
            span.set_result(last[0].status)
            return result

    async def _call(
        self,
        method: str,
        path: str,
        decode: Callable[[dict[str, Any]], Awaitable[R]],
        params: Mapping[str, str] | None,
        json: Any,
        done: Callable[[Response, bool], bool] | None,
        last: list[Response],
        span: CallSpan,
    ) -> R | None:
        options = self.options
        clock = self.clock
        deadline_at = None if options.deadline is None else clock() + options.deadline
        answer_lost = False
        attempt = 0
        governor = self.governor
        # The walk this call fetches a page for, if any: it counts attempts and waits.
        walk = current_walk.get()
        while True:
            if governor is not None:
                # One budget for the whole session (README "Rate limits"): a 429's pause
                # and the rate cap are waited out here, never past the deadline.
                max_wait = None if deadline_at is None else max(0.0, deadline_at - clock())
                asked = clock()
                try:
                    paused = await governor.acquire(max_wait=max_wait)
                except GovernorWaitTooLong as exc:
                    raise self._deadline_error(method, path, (exc.needed, "rate limit")) from None
                except RuntimeError:
                    if self.transport.closed:  # closed while waiting: say what the user did
                        raise RuntimeError(CLOSED) from None
                    raise
                if paused and walk is not None:
                    # The pause ended now: it began ``paused`` ago, not before the ask.
                    walk.waited(paused, start=max(asked, clock() - paused))
            timeout = options.timeout
            if deadline_at is not None:
                remaining = deadline_at - clock()
                if remaining <= 0:
                    raise self._deadline_error(method, path)
                timeout = remaining if timeout is None else min(timeout, remaining)
            if self._hooks["request"]:  # no event is built for nobody
                await self._emit(
                    "request",
                    RequestEvent(
                        method, path, attempt + 1, {**options.headers, **self._public_headers}
                    ),
                )
            response: Response | None = None
            failure: TransportError | None = None
            sending = self.transport.send(
                method,
                path,
                params=params,
                json=json,
                headers=options.headers,
                timeout=timeout,
                max_response_bytes=self._max_response_bytes,
            )
            try:
                if deadline_at is None:
                    response = await sending
                else:
                    # The attempt's own timeout starts once a pooled connection is free;
                    # the deadline also bounds that wait.
                    response = await asyncio.wait_for(sending, max(0.0, deadline_at - clock()))
            except asyncio.TimeoutError:
                raise self._deadline_error(method, path) from None
            except TransportError as exc:
                if (
                    isinstance(exc, TimeoutError)
                    and deadline_at is not None
                    and clock() >= deadline_at
                ):
                    raise self._deadline_error(method, path) from None
                failure = exc
            except DecodeError as exc:
                # An answer came that cannot be read (too large, a bad Content-Encoding):
                # it is still an attempt for the governor, the span and the walk.
                self._record(span, walk, attempt, status=exc.status_code or None, failure=exc)
                raise
            if response is not None:
                last[:] = [response]
                logger.debug(
                    "%s %s -> %d in %.1f ms (attempt %d)",
                    method,
                    path,
                    response.status,
                    response.elapsed * 1000,
                    attempt + 1,
                )
                if self._hooks["response"]:
                    await self._emit(
                        "response",
                        ResponseEvent(
                            method,
                            path,
                            attempt + 1,
                            response.status,
                            response.elapsed,
                            response.headers,
                        ),
                    )
                outcome: int | str = response.status
                headers: Mapping[str, str] = response.headers
            else:
                assert failure is not None
                outcome, headers = failure.kind, {}
            delay = retry_delay(
                method, outcome, headers, attempt, options.policy, jitter=self._rng.random()
            )
            self._record(
                span,
                walk,
                attempt,
                status=None if response is None else response.status,
                elapsed=0.0 if response is None else response.elapsed,
                headers=headers,
                # A 429 pauses the whole session for its Retry-After, or else for the
                # backoff this call would have waited (README "Rate limits").
                retry_after=_retry_after_of(response) if delay is None else delay,
                retried=delay is not None,
                failure=failure,
            )
            if delay is None:
                if failure is not None:
                    raise failure
                assert response is not None
                return await self._finish(method, path, response, decode, done, answer_lost)
            if deadline_at is not None and clock() + delay > deadline_at:
                # A wait that would pass the deadline is not started.
                raise self._deadline_error(method, path, (delay, outcome)) from failure
            answer_lost = answer_lost or failure is not None
            attempt += 1
            logger.debug(
                "retrying %s %s after %s: attempt %d of %d in %.3f s",
                method,
                path,
                outcome,
                attempt + 1,
                options.policy.max_retries + 1,
                delay,
            )
            if governor is not None and outcome == 429:
                continue  # the governor paused the whole session: acquire() waits it out
            if walk is not None:
                walk.waited(delay, start=clock())
            await self.sleep(delay)

    def _record(
        self,
        span: CallSpan,
        walk: WalkRecorder | None,
        attempt: int,
        *,
        status: int | None,
        elapsed: float = 0.0,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        retried: bool = False,
        failure: BaseException | None = None,
    ) -> None:
        """One attempt's outcome, to the governor, the call's span and the walk."""
        if self.governor is not None:
            self.governor.observe(
                status=status,
                headers=headers or None,
                retry_after=retry_after,
                elapsed=elapsed,
                retry=attempt > 0,
            )
        span.attempt(status=status, retry=retried, error=failure)
        if walk is not None:
            walk.attempt(status=status, elapsed=elapsed, retry=attempt > 0)

    def _deadline_error(
        self, method: str, path: str, wait: tuple[float, int | str] | None = None
    ) -> TimeoutError:
        deadline = self.options.deadline
        if deadline is None:
            # Only a refusal by the rate governor gets here with no deadline (README "Rate
            # limits"): say what it refused, without a number that does not exist.
            needed = wait[0] if wait is not None else math.inf
            return TimeoutError(
                f"the rate governor refused the call: it needs a wait of {needed:.3g} s",
                method=method,
                path=path,
                kind="deadline",
            )
        message = f"the call's deadline of {deadline:g} s"
        if wait is None:
            message = f"{message} passed"
        elif wait[1] == "rate limit":
            message = f"{message} would pass during the {wait[0]:.3g} s wait for the rate limit"
        else:
            delay, outcome = wait
            message = (
                f"{message} would pass during the {delay:.3g} s wait to retry"
                f" (last attempt: {outcome})"
            )
        return TimeoutError(message, method=method, path=path, kind="deadline")

    async def _finish(
        self,
        method: str,
        path: str,
        response: Response,
        decode: Callable[[dict[str, Any]], Awaitable[R]],
        done: Callable[[Response, bool], bool] | None,
        answer_lost: bool,
    ) -> R | None:
        """The one place an answer becomes a result, an APIError or a DecodeError."""
        if done is not None and done(response, answer_lost):
            return None
        envelope = read_envelope(
            method, path, response.status, response.headers, response.body, reason=response.reason
        )
        # Every full token value the session receives is masked in every later error
        # and log line (README, "Redaction").
        self._redactor.learn(answer_token_values(envelope))
        try:
            return await decode(envelope)
        except (ShapeError, KeyError) as exc:  # the documented ways a shape is wrong
            failure = describe_failure(exc)
        # Raised out here: the failure's own chain may hold the value it choked on.
        raise DecodeError(failure, status_code=response.status, method=method, path=path)
