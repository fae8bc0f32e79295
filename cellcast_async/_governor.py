"""The rate governor's scheduler: one request budget per session, paced at the rate the
server admits (README "Rate limits").

Logic with an injected clock and ``sleep``; it never imports aiohttp. Where the pieces live:

- this module: the queue of waiting requests and the pump that releases them one at a
  time, at the pace in force (``rate_limit``, what the server was learnt to admit), with
  pauses, deadlines and cancellation;
- ``_rate_estimate.py``: what the server admits, learnt from its answers (the pace);
- ``_rate_store.py``: where the budget is kept (this process, or Redis for every process);
- ``_protocol.py``: reading ``Retry-After`` and the rate-limit headers;
- ``_walk_auto.py``: ``concurrency="auto"``, the other control (pages in flight).

What it guarantees:

- **One budget.** Every request of a session draws from one :class:`Governor`. With
  ``rate_limit=R`` the requests it releases satisfy, over any sliding 1-second window, at most
  ``R + burst`` requests, where ``burst = max(R / 4, 5)`` (a GCRA: one theoretical-arrival
  time, no timers). Waiters are released in the order they asked, one at a time, so
  thousands of tasks never wake as one herd.
- **Paced at what the server admits.** A 429 while other requests still get through cuts
  the pace to just under the rate the server admitted (no pause); a server that refuses
  everything holds the session, probed by one request at a time; recovery climbs back to
  the rate known before within a fraction of a second, never in one burst
  (:class:`~._rate_estimate.ServerRate`).
- **Rate-limit headers** say when the budget is spent (``remaining`` under one request):
  a cut before the 429 would come. A reset they announce is never waited out blindly.
  Every wait derived from what the server says is capped at 60 s.
- **Shared across processes** through a :class:`~._rate_store.RedisStore`, with an
  in-process fallback and one WARNING when Redis fails or answers wrongly.
- **Waiters.** A ``max_wait`` bounds the whole wait, also behind other waiters; a waiter
  cancelled at any moment leaves the queue at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import random
import time
import weakref
from collections.abc import Mapping
from typing import Any, Final, Literal, Protocol

import attrs

from ._options import Clock, Sleep
from ._protocol import parse_retry_after, read_rate_headers
from ._rate_estimate import ServerRate
from ._rate_store import (
    MAX_PAUSE,
    InProcessStore,
    RateStore,
    RedisStore,
    Reservation,
    StoreUnavailable,
)

__all__ = [
    "MAX_PAUSE",
    "Governor",
    "GovernorReason",
    "GovernorState",
    "GovernorWaitTooLong",
    "burst_for",
    "make_governor",
]

logger = logging.getLogger("cellcast_async")

MIN_BURST: Final = 5.0  # README "Rate limits": burst = max(rate_limit / 4, 5)
_EPSILON: Final = 1e-9  # seconds: a slot this close to now is now
_CATCH_UP: Final = 0.25  # of an interval: how early a release may follow a late one


class Width(Protocol):
    """A walk's concurrency controller, as far as ``governor_state`` reads it."""

    @property
    def limit(self) -> int: ...


def burst_for(rate_limit: float) -> float:
    """README "Rate limits": the burst over ``rate_limit`` a 1-second window may hold."""
    return max(rate_limit / 4.0, MIN_BURST)


# ---------------------------------------------------------------------------- errors


class GovernorWaitTooLong(Exception):
    """The governor would have to wait ``needed`` seconds, more than the caller's ``max_wait``.

    Raised before waiting and before taking any budget, so the caller can fail at once.
    """

    def __init__(self, needed: float) -> None:
        super().__init__(f"the rate governor needs a wait of {needed:.3f} s")
        self.needed = needed

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.needed,))


# ---------------------------------------------------------------------------- governor

# Why the governor releases at the rate it does (``GovernorState.reason``). A str at run
# time: ``state.reason == "paused"`` works, and the type checker knows the five values.
GovernorReason = Literal["none", "rate_limit", "learnt", "probing", "paused"]


@attrs.frozen
class GovernorState:
    """A snapshot of the session's rate governor (``cc.governor_state``), e.g. for a
    progress line (README "Rate limits").

    ``paused_until`` is a time on the governor's clock (or ``None``); ``rate`` the requests
    per second released now (``None``: no cap, ``0.0`` while paused); ``reason`` (a
    :data:`cellcast_async.GovernorReason`) why that rate: ``"none"`` (nothing limits),
    ``"rate_limit"`` (the session's ``rate_limit``), ``"learnt"`` (paced at what the
    server admits), ``"probing"`` (climbing back after a hold, or up from a first 429)
    or ``"paused"`` (holding every request after 429s). ``server_rate`` is the
    server's sustainable rate as last measured (``None``: not learnt, no 429 yet);
    ``width`` the pages in flight that ``concurrency="auto"`` walks allow now (summed
    over the session's live walks; ``None``: no such walk).
    """

    paused_until: float | None
    rate: float | None
    reason: GovernorReason
    rate_limit: float | None
    burst: float | None
    store: str
    waiting: int  # acquire() calls queued now
    rate_limited: int  # 429s observed
    acquired: int
    waited: float  # seconds spent in acquire(), summed over every call
    server_rate: float | None = None
    width: int | None = None


@attrs.define(eq=False)
class _Waiter:
    future: asyncio.Future[None]
    deadline: float | None  # clock time past which the caller would rather fail
    start: float


class Governor:
    """One per session: every request waits in :meth:`acquire` and reports to :meth:`observe`.

    Waiters queue in arrival order; one pump task releases them one at a time, so however
    many tasks wait, the budget is taken in order and nobody wakes only to find it gone. See
    the module docstring (README "Rate limits") for what it guarantees.
    """

    def __init__(
        self,
        *,
        rate_limit: float | None,
        store: RateStore | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        wall_clock: Clock = time.time,
    ) -> None:
        # Checked where the session's options enter (``_options.check_rate_limit``).
        self._rate_limit = rate_limit
        self._burst = burst_for(self._rate_limit) if self._rate_limit is not None else None
        self._clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._wall_clock = wall_clock
        self._local = InProcessStore(clock)
        self._store: RateStore = store if store is not None else self._local
        self._fallen_back = False
        self._store_problem = ""
        self._closed = False
        self._queue: collections.deque[_Waiter] = collections.deque()
        self._pump_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._stale_stores: list[RateStore] = []

        self._paused_until: float | None = None
        self._server = ServerRate(rng=self._rng)  # what the server admits: the learnt pace
        self._widths: weakref.WeakSet[Any] = weakref.WeakSet()  # live "auto" walks
        self._rate_limited = 0
        self._waited = 0.0
        self._acquired = 0
        self._kick: asyncio.Future[None] | None = None  # wakes the pump from a nap
        self._holding: _Waiter | None = None  # the head the pump holds a shared slot for

    # -- public -------------------------------------------------------------------

    async def acquire(self, *, max_wait: float | None = None) -> float:
        """Wait until one request may be sent; returns the seconds waited.

        Raises :class:`GovernorWaitTooLong` at once (no wait, no budget taken) when the
        wait needed is longer than ``max_wait``, and at the end of ``max_wait`` when the
        queue ahead has not let it through by then (README "Rate limits": a deadline bounds
        every wait, also a wait behind other waiters). Cancelling it at any moment takes
        its place out of the queue and leaves the governor working.
        """
        if self._closed:
            raise RuntimeError("the rate governor is closed")
        now = self._clock()
        if not self._queue and not self._store.shared and self._pause_left(now) <= 0:
            interval, tolerance = self._pace(now)
            # max_wait=0: take the slot only if it is free now; otherwise queue for it.
            if self._local.reserve_now(interval, tolerance, 0.0).granted:
                self._granted(now)
                return 0.0
        needed = self._estimate(now)
        if max_wait is not None and needed > max_wait:
            raise GovernorWaitTooLong(needed)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(
            future=loop.create_future(),
            deadline=None if max_wait is None else now + max_wait,
            start=now,
        )
        self._queue.append(waiter)
        if self._pump_task is None:
            self._pump_task = loop.create_task(self._pump())
        timer = None if max_wait is None else loop.create_task(self._time_out(waiter, max_wait))
        try:
            await waiter.future
        finally:
            if timer is not None:
                timer.cancel()
            if not waiter.future.done() or waiter.future.cancelled():
                # Cancelled while queued: its place goes to the next at once.
                self._leave(waiter)
        waited = max(0.0, self._clock() - now)
        self._waited += waited
        return waited

    async def _time_out(self, waiter: _Waiter, max_wait: float) -> None:
        """Fail ``waiter`` when its ``max_wait`` has run out and it is still queued."""
        await self._sleep(max_wait)
        if waiter.future.done() or waiter is self._holding:
            return  # let through, or the pump holds a shared slot for it within max_wait
        now = self._clock()
        if (
            not self._store.shared
            and self._pump_once_ready()
            and self._queue[0] is waiter
            and self._pause_left(now) <= 0
        ):
            # Its slot comes due this very moment (the pump wakes at the same time): take it.
            interval, tolerance = self._pace(now)
            if self._local.reserve_now(interval, tolerance, 0.0).granted:
                self._grant_next()
                return
        ahead = 0
        for other in self._queue:
            if other is waiter:
                break
            ahead += not other.future.done()
        needed = (now - waiter.start) + self._estimate(now, ahead=ahead)
        self._leave(waiter)
        waiter.future.set_exception(GovernorWaitTooLong(max(needed, max_wait)))

    def _leave(self, waiter: _Waiter) -> None:
        with contextlib.suppress(ValueError):  # the pump may have taken it off already
            self._queue.remove(waiter)
        self._wake()

    def _wake(self) -> None:
        """Cut the pump's current nap short: what it waits for may have changed."""
        kick = self._kick
        if kick is not None and not kick.done():
            kick.set_result(None)

    def observe(
        self,
        *,
        status: int | None,
        headers: Mapping[str, str] | None,
        retry_after: float | None,
        elapsed: float,
        retry: bool = False,
    ) -> None:
        """Learn from one attempt's outcome (``status=None``: no answer came back).

        ``retry_after`` is the server's ``Retry-After`` in seconds, or the wait the call
        chose instead; with ``headers``, a ``Retry-After`` among them is what counts.
        ``elapsed`` dates the request: sent ``elapsed`` seconds ago; ``retry``: the attempt
        retried one that failed (what tells a per-request challenge from a closed server).
        """
        if status is None:
            return
        now = self._clock()
        sent_at = now - elapsed if math.isfinite(elapsed) and elapsed >= 0 else now
        if status == 429:
            self._rate_limited += 1
            if headers is not None:
                retry_after = _retry_after(headers)
            hold = self._server.refused(now, sent_at, retry_after, retry=retry)
            if hold > 0:
                self._hold(min(hold, MAX_PAUSE), now)
            self._wake()
            return
        self._server.admitted(now, sent_at, retry=retry)
        if headers:
            self._on_headers(headers, now)

    def track(self, width: Width) -> None:
        """Show a walk's ``concurrency="auto"`` controller in :attr:`state` while it lives."""
        self._widths.add(width)

    @property
    def state(self) -> GovernorState:
        now = self._clock()
        rate: float | None
        reason: GovernorReason
        if self._pause_left(now) > 0:
            paused: float | None = self._paused_until
            rate, reason = 0.0, "paused"
        else:
            paused = None
            rate, reason = self._rate_in_force(now)
        store = self._store.describe()
        if self._fallen_back:
            unreachable = self._store_problem == "is unreachable"
            store = f"memory (rate store {'unreachable' if unreachable else 'failed'})"
        widths = [w.limit for w in list(self._widths)]
        return GovernorState(
            paused_until=paused,
            rate=rate,
            reason=reason,
            rate_limit=self._rate_limit,
            burst=self._burst,
            store=store,
            waiting=sum(1 for w in self._queue if not w.future.done()),
            rate_limited=self._rate_limited,
            acquired=self._acquired,
            waited=self._waited,
            server_rate=self._server.estimate,
            width=sum(widths) if widths else None,
        )

    async def aclose(self) -> None:
        """Fail queued waiters, finish shared-store writes, release the store's connections."""
        if self._closed:
            return
        self._closed = True
        pump, self._pump_task = self._pump_task, None
        if pump is not None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        self._fail_all(RuntimeError("the rate governor is closed"))
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for store in [*self._stale_stores, self._store]:
            await store.aclose()

    # -- the pump -----------------------------------------------------------------

    async def _pump(self) -> None:
        try:
            while self._pump_once_ready():
                await self._pump_step()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug must reach the callers, not vanish in a task
            self._fail_all(exc)
            raise
        finally:
            if self._pump_task is asyncio.current_task():
                self._pump_task = None

    def _pump_once_ready(self) -> bool:
        queue = self._queue
        while queue and queue[0].future.done():
            queue.popleft()  # cancelled while queued: its place goes to the next
        return bool(queue)

    async def _pump_step(self) -> None:
        head = self._queue[0]
        now = self._clock()
        pause = self._pause_left(now)
        if pause > 0:
            self._expire(now + pause)
            await self._nap(pause)
            return
        interval, tolerance = self._pace(now)
        if not self._store.shared:
            # In-process: look before taking, so a slot is never held through a nap; a
            # change of pace or a cancelled waiter is seen at the next look.
            local = self._local.reserve_now(interval, tolerance, 0.0)
            if not local.granted:
                await self._nap(local.wait)
                return
            self._grant_next()
            return
        # Shared: the store keeps the budget all processes share (rate_limit); the pace
        # this process learnt is its own share of what the server admits, so it gates
        # this process only (the sum over processes is what the server admits).
        learnt = self._server.pace(now)
        if learnt is not None and (self._rate_limit is None or learnt < self._rate_limit):
            own = 1.0 / learnt
            local = self._local.reserve_now(own, _CATCH_UP * own, 0.0)
            if not local.granted:
                await self._nap(local.wait)
                return
        interval, tolerance = self._shared_pace()
        budget = None if head.deadline is None else max(0.0, head.deadline - now)
        reservation = await self._reserve(interval, tolerance, budget)
        if reservation.paused > 0:
            # Another process paused the shared budget (a 429 it got).
            self._start_pause(reservation.paused, self._clock())
            return
        if not reservation.granted:
            if self._queue and self._queue[0] is head:
                self._queue.popleft()
            if not head.future.done():
                needed = self._clock() - head.start + reservation.wait
                head.future.set_exception(GovernorWaitTooLong(needed))
            return
        if reservation.wait > 0:
            # A shared slot is taken: it is kept however the queue changes meanwhile.
            self._holding = head
            try:
                await self._sleep(min(reservation.wait, MAX_PAUSE))
            finally:
                self._holding = None
            if self._pause_left(self._clock()) > 0:
                return  # a 429 came while we slept: the slot is void, the head keeps its place
        self._grant_next()

    def _grant_next(self) -> None:
        """The slot goes to the first waiter still waiting (the head, unless cancelled)."""
        if self._pump_once_ready():
            waiter = self._queue.popleft()
            waiter.future.set_result(None)
            self._granted(self._clock())

    async def _nap(self, seconds: float) -> None:
        """Sleep up to ``seconds`` (never more than a capped pause), or until :meth:`_wake`."""
        # Never past a capped pause; and while the pace is climbing, look again soon: the
        # slot a slower pace gave may come earlier now.
        horizon = MAX_PAUSE if self._server.phase != "probe" else 0.05
        seconds = min(max(0.0, seconds), horizon)
        if seconds == 0.0:
            # Nothing to wait for: one turn of the loop, not a zero-second sleep that an
            # injected sleep would count as a wait.
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        kick = self._kick = loop.create_future()
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        try:
            await asyncio.wait((sleeper, kick), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            kick.cancel()
            if self._kick is kick:
                self._kick = None

    def _expire(self, until: float) -> None:
        """Fail now the waiters whose ``max_wait`` ends before ``until`` (a known pause)."""
        for waiter in list(self._queue):
            if waiter.deadline is not None and waiter.deadline < until and not waiter.future.done():
                self._queue.remove(waiter)
                waiter.future.set_exception(GovernorWaitTooLong(until - waiter.start))

    def _fail_all(self, exc: BaseException) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(exc)

    # -- pacing -------------------------------------------------------------------

    def _pause_left(self, now: float) -> float:
        if self._paused_until is None:
            return 0.0
        return max(0.0, self._paused_until - now)

    def _estimate(self, now: float, ahead: int | None = None) -> float:
        """The wait a new arrival (or one with ``ahead`` waiters before it) faces: the
        pause, then one slot per waiter ahead of it."""
        pause = self._pause_left(now)
        start = now + pause
        interval, tolerance = self._pace(start)
        if interval is None:
            return pause
        if ahead is None:
            ahead = sum(1 for w in self._queue if not w.future.done())
        wait = max(0.0, self._local.next_slot(start) - tolerance - start)
        return pause + wait + ahead * interval

    def _rate_in_force(self, now: float) -> tuple[float | None, GovernorReason]:
        """The rate released now and why: the lower of ``rate_limit`` and the learnt pace."""
        rate = self._rate_limit
        reason: GovernorReason = "none" if rate is None else "rate_limit"
        learnt = self._server.pace(now)
        if learnt is not None and (rate is None or learnt < rate):
            rate = learnt
            reason = "probing" if self._server.phase in ("probe", "closed") else "learnt"
        return rate, reason

    def _pace(self, now: float) -> tuple[float | None, float]:
        """(emission interval, tolerance) of the GCRA now; (None, 0) when nothing limits."""
        rate, reason = self._rate_in_force(now)
        if rate is None:
            return None, 0.0
        interval = 1.0 / rate
        if reason != "rate_limit" or self._burst is None:
            # Paced at what the server admits: no burst, but a release that woke late may
            # be followed by the next a little early, or lateness would slow the pace.
            return interval, _CATCH_UP * interval
        # A GCRA with tolerance (b - 1) * T lets at most R * W + b requests into any closed
        # window of W seconds: with W = 1, rate_limit plus the burst.
        return interval, max(0.0, self._burst - 1.0) * interval

    def _shared_pace(self) -> tuple[float | None, float]:
        """(interval, tolerance) of the budget shared through the store: ``rate_limit``."""
        if self._rate_limit is None or self._burst is None:
            return None, 0.0
        interval = 1.0 / self._rate_limit
        return interval, max(0.0, self._burst - 1.0) * interval

    async def _reserve(
        self, interval: float | None, tolerance: float, max_wait: float | None
    ) -> Reservation:
        store = self._store
        try:
            return await store.reserve(interval, tolerance, max_wait)
        except StoreUnavailable as exc:
            self._fall_back(store, exc.problem)
        except Exception as exc:  # a store must never kill the pump (README "Rate limits")
            self._fall_back(store, f"failed ({type(exc).__name__})")
        return await self._store.reserve(interval, tolerance, max_wait)

    def _fall_back(self, failed: RateStore, problem: str = "is unreachable") -> None:
        if self._store is not failed:
            return  # another task already fell back
        self._fallen_back = True
        self._stale_stores.append(failed)
        self._store = self._local
        # The shared budget's state is lost with the store: restart the local one with its
        # burst already spent, so the switch itself is never a burst.
        now = self._clock()
        interval, tolerance = self._pace(now)
        self._local.spend_burst(now, tolerance, interval or 0.0)
        self._store_problem = problem
        logger.warning(
            "rate store %s %s; rate limiting continues in this process only",
            failed.describe(),
            problem,
        )

    def _granted(self, now: float) -> None:
        del now
        self._acquired += 1

    # -- what answers say ---------------------------------------------------------

    def _hold(self, pause: float, now: float) -> None:
        """Hold every request until ``now + pause`` (never shorter), here and, with a
        shared store, in every process on it."""
        self._start_pause(pause, now)
        if self._store.shared:
            self._spawn_pause(self._store, pause)

    def _start_pause(self, pause: float, now: float) -> None:
        until = now + min(max(0.0, pause), MAX_PAUSE)
        if self._paused_until is None or until > self._paused_until:
            self._paused_until = until
        self._local.pause_now(self._paused_until - now)

    def _spawn_pause(self, store: RateStore, pause: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # observe() outside a loop: the local pause still holds
        task = loop.create_task(self._share_pause(store, pause))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _share_pause(self, store: RateStore, pause: float) -> None:
        try:
            await store.pause(pause)
        except StoreUnavailable as exc:
            self._fall_back(store, exc.problem)
        except Exception as exc:  # never "Task exception was never retrieved"
            self._fall_back(store, f"failed ({type(exc).__name__})")

    def _on_headers(self, headers: Mapping[str, str], now: float) -> None:
        """README "Rate limits": a budget under one whole request (``0``, ``0.001``,
        ``1e-320``, a denormal) is spent: the pace is cut before a 429 comes. The reset
        is not waited out: what it means differs between servers (the end of a window,
        the time until a bucket is full), and a hostile one must not freeze the session."""
        budget = read_rate_headers(headers, self._wall_clock())
        if budget is None:
            return
        remaining, _reset = budget
        if remaining < 1:
            self._server.spent(now)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The ``Retry-After`` among ``headers``, capped like a retry's (README "Retries")."""
    value = headers.get("Retry-After")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    seconds = parse_retry_after(value)
    return None if seconds is None else min(seconds, MAX_PAUSE)


# ---------------------------------------------------------------------------- factory


def make_governor(
    rate_limit: float | None,
    rate_store: str | None,
    scope: str,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> Governor:
    """A :class:`Governor`: in-process, or on Redis when ``rate_store`` is a URL.

    ``rate_limit`` and ``rate_store`` as ``_options.check_rate_limit`` and
    ``check_rate_store`` return them: checked once, where the session's options enter.
    """
    store: RateStore | None = None
    if rate_store is not None:
        store = RedisStore.from_url(rate_store, scope)
    return Governor(rate_limit=rate_limit, store=store, clock=clock, sleep=sleep, rng=rng)
