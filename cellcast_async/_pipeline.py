"""The request pipeline: one object that runs a call from start to end.

    resource (cc.tokens.get, ...)
      -> Pipeline.call: the call's span; options (timeout, deadline, retries, headers)
           for each attempt, the same named steps in order:
             _await_turn        the rate governor's turn, never past the deadline
             attempt_timeout    the attempt's timeout, cut to what the deadline leaves
             _emit_request      request hooks
             _send              transport.send; ends the call on the deadline
             _answered          log, response hooks
             _retry_delay       _protocol.retry_delay: wait and go again, or stop
             _record_outcome    to the governor, the span and the walk (if a page)
             _before_retry      the wait before the next attempt
         -> _finish: _protocol.read_envelope -> decode (the converter)
         -> any error leaves through the redactor

Resources depend on this object only; the session holds configuration and lifecycle
(README, "Design"). The clock and ``sleep`` are injected, so tests and simulations run
on a fake clock.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

import attrs
import cattrs

from ._converters import describe_failure
from ._exceptions import (
    CellcastError,
    DecodeError,
    ShapeError,
    TransportError,
    _frozen_headers,
)
from ._exceptions import (
    TimeoutError as CallTimeoutError,  # not the builtin, which asyncio raises too
)
from ._governor import Governor, GovernorWaitTooLong
from ._options import CallOptions, Clock, EventHook, Sleep, default_clock, default_sleep
from ._protocol import parse_retry_after, read_envelope, retry_delay
from ._redact import Redactor, answer_token_values
from ._tracing import CallSpan, Tracing
from ._transport import CLOSED, Response, Transport
from ._walk import WalkRecorder, current_walk

__all__ = [
    "Pipeline",
    "RateLimitWait",
    "RequestEvent",
    "ResponseEvent",
    "RetryWait",
    "attempt_timeout",
    "deadline_at",
    "deadline_message",
]

R = TypeVar("R")

logger = logging.getLogger("cellcast_async")


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


@attrs.define
class _Call:
    """What one call carries from attempt to attempt."""

    method: str
    path: str
    params: Mapping[str, str] | None
    json: Any
    span: CallSpan
    deadline_at: float | None
    walk: WalkRecorder | None
    attempt: int = 0  # 0 for the first attempt
    answer_lost: bool = False  # an earlier attempt may have reached the server
    last: Response | None = None  # the last answer, for the redactor


@attrs.frozen
class RateLimitWait:
    """The wait for the rate governor's turn would pass the deadline."""

    seconds: float


@attrs.frozen
class RetryWait:
    """The wait before a retry would pass the deadline; ``outcome`` is what came back."""

    seconds: float
    outcome: int | str


Wait = RateLimitWait | RetryWait


class _Passed:
    """The deadline has passed before an attempt (a typed marker, not a number)."""


_PASSED: Final = _Passed()


def deadline_at(deadline: float | None, now: float) -> float | None:
    """When a call that starts ``now`` must be over (None: never)."""
    return None if deadline is None else now + deadline


def attempt_timeout(
    timeout: float | None, deadline_at: float | None, now: float
) -> float | _Passed | None:
    """The attempt's own timeout, cut to what is left of the deadline; ``_PASSED`` once
    nothing is left."""
    if deadline_at is None:
        return timeout
    remaining = deadline_at - now
    if remaining <= 0:
        return _PASSED
    return remaining if timeout is None else min(timeout, remaining)


def deadline_message(deadline: float | None, wait: Wait | None) -> str:
    """Why a call ran out of its deadline, in the words of ``TimeoutError``."""
    if deadline is None:
        # Only a refusal by the rate governor gets here with no deadline (README "Rate
        # limits"): say what it refused, without a number that does not exist.
        needed = wait.seconds if wait is not None else math.inf
        return f"the rate governor refused the call: it needs a wait of {needed:.3g} s"
    message = f"the call's deadline of {deadline:g} s"
    if wait is None:
        return f"{message} passed"
    if isinstance(wait, RateLimitWait):
        return f"{message} would pass during the {wait.seconds:.3g} s wait for the rate limit"
    return (
        f"{message} would pass during the {wait.seconds:.3g} s wait to retry"
        f" (last attempt: {wait.outcome})"
    )


def _status_of(outcome: Response | TransportError) -> tuple[int | str, Mapping[str, str]]:
    """The outcome as the retry decision reads it: a status and headers, or a failure
    kind and none."""
    if isinstance(outcome, Response):
        return outcome.status, outcome.headers
    return outcome.kind, {}


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

    def with_call_options(self, options: CallOptions) -> Pipeline:
        """A pipeline with other per-call options; everything else is shared."""
        view = copy.copy(self)
        view.options = options
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
        with self.tracing.call(operation, method, path) as span:
            call = _Call(
                method=method,
                path=path,
                params=params,
                json=json,
                span=span,
                deadline_at=deadline_at(self.options.deadline, self.clock()),
                # The walk this call fetches a page for, if any: it counts attempts and waits.
                walk=current_walk.get(),
            )
            try:
                result = await self._call(call, decode, done)
            except CellcastError as exc:
                last = call.last
                redactor = self._redactor.for_answer(last.body) if last else self._redactor
                redactor.scrub(exc)
                span.set_error(exc)
                # ``raise exc``, not a bare ``raise``: on Python 3.10 a bare raise puts
                # back the traceback the scrub dropped, with the locals of every frame
                # below this one (README "Redaction").
                raise exc
            assert call.last is not None
            span.set_result(call.last.status)
            return result

    async def _call(
        self,
        call: _Call,
        decode: Callable[[dict[str, Any]], Awaitable[R]],
        done: Callable[[Response, bool], bool] | None,
    ) -> R | None:
        """One attempt after another, each a fixed sequence of the named steps below."""
        while True:
            await self._await_turn(call)
            timeout = attempt_timeout(self.options.timeout, call.deadline_at, self.clock())
            if isinstance(timeout, _Passed):
                raise self._deadline_error(call)
            await self._emit_request(call)
            outcome = await self._send(call, timeout)
            if isinstance(outcome, Response):
                await self._answered(call, outcome)
            delay = self._retry_delay(call, outcome)
            self._record_outcome(call, outcome, delay)
            if delay is None:
                if isinstance(outcome, TransportError):
                    raise outcome
                return await self._finish(
                    call.method, call.path, outcome, decode, done, call.answer_lost
                )
            await self._before_retry(call, outcome, delay)

    # --- the steps of one attempt, in order -------------------------------------------

    async def _await_turn(self, call: _Call) -> None:
        """The rate governor's turn: one budget for the whole session (README "Rate
        limits"); a 429's pause and the rate cap are waited out here, never past the
        deadline."""
        governor, clock = self.governor, self.clock
        if governor is None:
            return
        max_wait = None if call.deadline_at is None else max(0.0, call.deadline_at - clock())
        asked = clock()
        try:
            paused = await governor.acquire(max_wait=max_wait)
        except GovernorWaitTooLong as exc:
            raise self._deadline_error(call, RateLimitWait(exc.needed)) from None
        except RuntimeError:
            if self.transport.closed:  # closed while waiting: say what the user did
                raise RuntimeError(CLOSED) from None
            raise
        if paused and call.walk is not None:
            # The pause ended now: it began ``paused`` ago, not before the ask.
            call.walk.waited(paused, start=max(asked, clock() - paused))

    async def _emit_request(self, call: _Call) -> None:
        if self._hooks["request"]:  # no event is built for nobody
            headers = {**self.options.headers, **self._public_headers}
            event = RequestEvent(call.method, call.path, call.attempt + 1, headers)
            await self._emit("request", event)

    async def _send(self, call: _Call, timeout: float | None) -> Response | TransportError:
        """One attempt on the transport: its answer, or the failure a retry may follow.

        A failure that ends the call (the deadline, an unreadable answer) is raised.
        """
        clock, deadline = self.clock, call.deadline_at
        sending = self.transport.send(
            call.method,
            call.path,
            params=call.params,
            json=call.json,
            headers=self.options.headers,
            timeout=timeout,
            max_response_bytes=self._max_response_bytes,
        )
        try:
            if deadline is None:
                return await sending
            # The attempt's own timeout starts once a pooled connection is free;
            # the deadline also bounds that wait.
            return await asyncio.wait_for(sending, max(0.0, deadline - clock()))
        except asyncio.TimeoutError:
            raise self._deadline_error(call) from None
        except TransportError as exc:
            if isinstance(exc, CallTimeoutError) and deadline is not None and clock() >= deadline:
                raise self._deadline_error(call) from None
            return exc
        except DecodeError as exc:
            # An answer came that cannot be read (too large, a bad Content-Encoding):
            # it is still an attempt for the governor, the span and the walk.
            self._record(call, status=exc.status_code or None, failure=exc)
            raise

    async def _answered(self, call: _Call, response: Response) -> None:
        """An answer came: kept for the redactor, logged, and shown to response hooks."""
        call.last = response
        logger.debug(
            "%s %s -> %d in %.1f ms (attempt %d)",
            call.method,
            call.path,
            response.status,
            response.elapsed * 1000,
            call.attempt + 1,
        )
        if self._hooks["response"]:
            event = ResponseEvent(
                call.method,
                call.path,
                call.attempt + 1,
                response.status,
                response.elapsed,
                # A server may echo the key in a header (README "Redaction").
                self._redactor.headers(response.headers),
            )
            await self._emit("response", event)

    def _retry_delay(self, call: _Call, outcome: Response | TransportError) -> float | None:
        """Seconds to wait before the next attempt, or None: this outcome is final."""
        status, headers = _status_of(outcome)
        return retry_delay(
            call.method,
            status,
            headers,
            call.attempt,
            self.options.policy,
            jitter=self._rng.random(),
        )

    def _record_outcome(
        self, call: _Call, outcome: Response | TransportError, delay: float | None
    ) -> None:
        response = outcome if isinstance(outcome, Response) else None
        self._record(
            call,
            status=None if response is None else response.status,
            elapsed=0.0 if response is None else response.elapsed,
            headers=_status_of(outcome)[1],
            # A 429 pauses the whole session for its Retry-After, or else for the
            # backoff this call would have waited (README "Rate limits").
            retry_after=_retry_after_of(response) if delay is None else delay,
            retried=delay is not None,
            failure=outcome if isinstance(outcome, TransportError) else None,
        )

    async def _before_retry(
        self, call: _Call, outcome: Response | TransportError, delay: float
    ) -> None:
        """The wait before the next attempt; a wait that would pass the deadline is not
        started."""
        clock = self.clock
        status = _status_of(outcome)[0]
        failure = outcome if isinstance(outcome, TransportError) else None
        if call.deadline_at is not None and clock() + delay > call.deadline_at:
            raise self._deadline_error(call, RetryWait(delay, status)) from failure
        call.answer_lost = call.answer_lost or failure is not None
        call.attempt += 1
        logger.debug(
            "retrying %s %s after %s: attempt %d of %d in %.3f s",
            call.method,
            call.path,
            status,
            call.attempt + 1,
            self.options.policy.max_retries + 1,
            delay,
        )
        if self.governor is not None and status == 429:
            return  # the governor paused the whole session: acquire() waits it out
        if call.walk is not None:
            call.walk.waited(delay, start=clock())
        await self.sleep(delay)

    def _record(
        self,
        call: _Call,
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
                retry=call.attempt > 0,
            )
        call.span.attempt(status=status, retry=retried, error=failure)
        if call.walk is not None:
            call.walk.attempt(status=status, elapsed=elapsed, retry=call.attempt > 0)

    def _deadline_error(self, call: _Call, wait: Wait | None = None) -> CallTimeoutError:
        return CallTimeoutError(
            deadline_message(self.options.deadline, wait),
            method=call.method,
            path=call.path,
            kind="deadline",
        )

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
