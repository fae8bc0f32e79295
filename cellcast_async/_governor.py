"""The rate governor: one request budget per session, a session-wide pause on 429, AIMD.

Pure logic with an injected clock and ``sleep``; it never imports aiohttp. README "Rate
limits" states what it guarantees:

- **One budget.** Every request of a session draws from one :class:`Governor`. With
  ``rate_limit=R`` the requests it releases satisfy, over any sliding 1-second window, at most
  ``R + burst`` requests, where ``burst = max(R / 4, 5)`` (a GCRA, "generic cell rate
  algorithm": one theoretical-arrival time, no timers). Waiters are released in the order they
  asked (each reserves its own slot), so thousands of tasks never wake as one herd.
- **A 429 pauses the session.** :meth:`Governor.observe` with a 429 pauses every later
  :meth:`Governor.acquire` until ``Retry-After`` has passed (capped at 60 s, as a retry
  never waits out a longer one: ``RetryPolicy.retry_after_cap``), or an exponential
  backoff when none is sent. Traffic then
  resumes as TCP does after a loss, never in a burst: at half the rate the session ran at
  before the 429, doubling every second up to 90% of that rate, then growing by a tenth of
  it per second, up to ``rate_limit`` (with no cap: up to 64 times its start, at least
  1,000/s).
- **Rate-limit headers.** ``X-RateLimit-Limit/-Remaining/-Reset``, the IETF draft's
  ``RateLimit-Remaining/-Reset``, ``RateLimit: limit=, remaining=, reset=`` and
  ``RateLimit: "p";r=..;t=..`` (with ``RateLimit-Policy``): the remaining budget is spread
  evenly over the time to reset; a remaining budget under one request pauses until the
  reset. Every wait derived from a header is capped at 60 s and never outlives it, and a
  rate from headers has a floor of one request per 60 s.
- **Shared across processes.** With a :class:`RedisStore` the budget (the GCRA's arrival
  time) and the pause live in Redis under :func:`rate_scope` (scrypt of the key, salted
  with the base URL), so every process on the same account shares them. What Redis holds
  and answers is untrusted: values far ahead are capped like a local pause and logged, and
  if Redis stops answering or answers wrongly, the governor falls back to its in-process
  store with one WARNING on the ``cellcast_async`` logger saying what was wrong, and no
  request fails because of it.
- **Waiters.** A ``max_wait`` bounds the whole wait, also behind other waiters; a waiter
  cancelled at any moment leaves the queue at once.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import hashlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

import attrs

from ._protocol import RetryPolicy

if TYPE_CHECKING:  # the redis extra is optional; only RedisStore needs it
    from redis.asyncio import Redis

__all__ = [
    "AdaptiveConcurrency",
    "Governor",
    "GovernorState",
    "GovernorWaitTooLong",
    "InProcessStore",
    "RateStore",
    "RedisStore",
    "Reservation",
    "StoreReplyError",
    "StoreUnavailable",
    "burst_for",
    "check_concurrency",
    "check_rate_limit",
    "check_rate_store",
    "make_governor",
    "rate_scope",
]

logger = logging.getLogger("cellcast_async")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

MIN_BURST: Final = 5.0  # README "Rate limits": burst = max(rate_limit / 4, 5)
MAX_PAUSE: Final = RetryPolicy().retry_after_cap  # a retry does not wait out a longer one
BACKOFF_BASE: Final = 1.0  # a 429 with no Retry-After: 1 s, 2 s, 4 s ... (jittered, capped)
BACKOFF_CAP: Final = 30.0
RAMP_DOUBLING: Final = 1.0  # slow start after a pause doubles the release rate every second
RAMP_THRESHOLD: Final = 0.9  # ... up to 90% of the rate that drew the 429
RAMP_ADDITIVE: Final = 0.1  # ... then grows by a tenth of that per second
MIN_RAMP_RATE: Final = 1.0  # requests per second the slow start never starts below
RAMP_NO_CAP_FACTOR: Final = 64.0  # with no rate_limit, the slow start ends at 64x its start
RAMP_NO_CAP_MIN: Final = 1000.0  # ... or 1,000 requests per second, whichever is more
_WINDOW: Final = 1.0  # the sliding window the budget is stated over
_EPSILON: Final = 1e-9  # seconds: a slot this close to now is now
_MIN_RATE_SPAN: Final = 0.1  # the shortest span a recent rate is measured over
_REDIS_KEY_PREFIX: Final = "cellcast_async:rate:"
_SCOPE_DOMAIN: Final = "cellcast_async rate scope v2"
_SCOPE_SCRYPT_N: Final = 2**14  # RFC 7914's interactive cost: ~50 ms and 16 MiB per guess
_SCOPE_SCRYPT_R: Final = 8
MIN_HEADER_RATE: Final = 1.0 / MAX_PAUSE  # a rate read from headers never paces slower
_STORE_NOTE_MAX: Final = 64  # the longest note a reservation reply may carry


# ---------------------------------------------------------------------------- checks


def check_rate_limit(value: object) -> float | None:
    """``None`` (no cap) or a positive, finite number of requests per second."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"rate_limit must be a positive number of requests per second or None, got {value!r}"
        )
    rate = float(value)
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(
            f"rate_limit must be a positive number of requests per second or None, got {value!r}"
        )
    return rate


def check_rate_store(value: object) -> str | None:
    """``None`` (in-process) or a ``redis://`` / ``rediss://`` URL with a host.

    Messages quote the scheme only, never the URL: it may carry a password.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"rate_store must be None or a redis:// URL, got a {type(value).__name__}")
    scheme, sep, _ = value.partition("://")
    if not sep:
        raise ValueError("rate_store must be None or a redis:// URL, got a string with no scheme")
    if scheme.lower() not in ("redis", "rediss"):
        raise ValueError(f"rate_store must be None or a redis:// URL, got {scheme!r}")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ValueError(
            "rate_store has an invalid host or port; expected e.g. redis://127.0.0.1:6379/0"
        ) from None
    if not host:
        raise ValueError("rate_store must name a host, e.g. redis://127.0.0.1:6379/0")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError("rate_store's database must be a number, e.g. redis://127.0.0.1:6379/0")
    return value


def check_concurrency(value: object) -> int | Literal["auto"]:
    """A positive int (fixed pages in flight) or ``"auto"`` (:class:`AdaptiveConcurrency`)."""
    if isinstance(value, str) and value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"concurrency must be a positive integer or 'auto', got {value!r}")
    return value


def rate_scope(api_key: str, base_url: str) -> str:
    """The name a shared budget is kept under: scrypt of the key, salted by the base URL.

    README "Rate limits": a slow derivation, so that someone who can read the Redis cannot
    test guesses of the key offline at hash speed (one guess costs ~50 ms and 16 MiB), and
    deterministic, so every process on the same account and base URL finds the same scope.
    Length-prefixed so no two (key, url) pairs derive from the same input.
    """
    url = base_url.rstrip("/")
    salt = f"{_SCOPE_DOMAIN}\n{len(url)}:{url}".encode()
    derived = hashlib.scrypt(
        f"{len(api_key)}:{api_key}".encode(),
        salt=salt,
        n=_SCOPE_SCRYPT_N,
        r=_SCOPE_SCRYPT_R,
        p=1,
        maxmem=2**26,
        dklen=32,
    )
    return derived.hex()


def burst_for(rate_limit: float) -> float:
    """README "Rate limits": the burst over ``rate_limit`` a 1-second window may hold."""
    return max(rate_limit / 4.0, MIN_BURST)


def describe_store_url(url: str) -> str:
    """``redis://host:port/db`` with no user, password or query: safe for a log line."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    where = f"{host}:{port}" if port is not None else host
    db = parts.path.strip("/") or "0"
    return f"{parts.scheme.lower()}://{where}/{db}"


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


class StoreUnavailable(Exception):
    """A shared store did not answer; the governor falls back to its in-process store.

    ``problem`` completes the WARNING "rate store <where> <problem>": never text from the
    store's URL or reply.
    """

    def __init__(self, detail: str = "", *, problem: str = "is unreachable") -> None:
        super().__init__(detail or problem)
        self.problem = problem


class StoreReplyError(StoreUnavailable):
    """A shared store answered with something our script never returns (README "Rate
    limits": anything read from Redis is untrusted); the governor falls back as for an
    unreachable store, saying what was wrong."""

    def __init__(self, what: str) -> None:
        super().__init__(what, problem=f"sent {what}")


# ---------------------------------------------------------------------------- stores


@attrs.frozen
class Reservation:
    """What a store answers to :meth:`RateStore.reserve`.

    ``paused``: seconds of a shared pause still to run (nothing reserved); else ``granted``
    tells whether a slot was taken, ``wait`` seconds from now (when not granted: the wait a
    slot would have needed, over ``max_wait``).
    """

    granted: bool
    wait: float = 0.0
    paused: float = 0.0


class RateStore(abc.ABC):
    """Where the budget (a GCRA arrival time) and the shared pause are kept."""

    shared: bool = False

    @abc.abstractmethod
    async def reserve(
        self, interval: float | None, tolerance: float, max_wait: float | None
    ) -> Reservation:
        """Take the next slot of a GCRA with this emission ``interval`` and ``tolerance``.

        ``interval=None`` only checks the pause. Nothing is taken when the store is paused
        or when the slot would be more than ``max_wait`` seconds away.
        """

    @abc.abstractmethod
    async def pause(self, seconds: float) -> None:
        """Pause every user of the store for ``seconds`` from now (never shortens a pause)."""

    async def aclose(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Release connections; the in-process store holds none."""

    @abc.abstractmethod
    def describe(self) -> str:
        """A short name for logs and state: never a password."""


class InProcessStore(RateStore):
    """The default: the budget of one session, in this process, on the governor's clock."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._tat = -math.inf  # the theoretical arrival time of the next request
        self._paused_until = -math.inf

    async def reserve(
        self, interval: float | None, tolerance: float, max_wait: float | None
    ) -> Reservation:
        return self.reserve_now(interval, tolerance, max_wait)

    def reserve_now(
        self, interval: float | None, tolerance: float, max_wait: float | None
    ) -> Reservation:
        """:meth:`reserve` without a coroutine: no await between the read and the write."""
        now = self._clock()
        if self._paused_until > now:
            return Reservation(granted=False, paused=self._paused_until - now)
        if interval is None:
            return Reservation(granted=True)
        # Never further ahead than one interval past a spent burst at today's pace: a slot
        # booked at a slower pace (a tiny header budget) does not outlive that pace (README
        # "Rate limits"). At a steady pace the GCRA never gets there, so this changes nothing.
        tat = min(max(self._tat, now), now + tolerance + interval)
        self._tat = tat  # kept even when nothing is taken, or the slot would creep away
        wait = tat - tolerance - now
        wait = 0.0 if wait <= _EPSILON else wait  # 4 * 0.2 is not 0.8 in binary
        if max_wait is not None and wait > max_wait:
            return Reservation(granted=False, wait=wait)
        self._tat = tat + interval
        return Reservation(granted=True, wait=wait)

    async def pause(self, seconds: float) -> None:
        self.pause_now(seconds)

    def pause_now(self, seconds: float) -> None:
        """:meth:`pause` without a coroutine."""
        until = self._clock() + seconds
        self._paused_until = max(self._paused_until, until)
        # The budget does not pile up during a pause: the first slot after it is its end.
        self._tat = max(self._tat, self._paused_until)

    def spend_burst(self, now: float, tolerance: float, interval: float) -> None:
        """Start with the burst spent and a slot just taken: the next one is an interval away."""
        self._tat = max(self._tat, now + tolerance + interval)

    def next_slot(self, now: float) -> float:
        """The GCRA's theoretical arrival time seen at ``now`` (no tolerance applied)."""
        return max(self._tat, now)

    def describe(self) -> str:
        return "memory"


# KEYS[1] the arrival time, KEYS[2] the paused-until time; both on Redis's own clock, so
# processes on different machines agree. Floats travel as strings (Lua numbers would be
# truncated to integers in a reply). Anyone who can write this Redis can write the keys:
# README "Rate limits" caps what they hold like a local pause (ARGV[4], 60 s), rewrites
# a key that is further ahead or unreadable, and says so in the reply's third element.
_READ_KEYS_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cap = tonumber(ARGV[4])
local note = ''
local function read(key, name, limit)
  local raw = redis.call('GET', key)
  if not raw then return 0 end
  local value = tonumber(raw)
  if value == nil or value ~= value then
    redis.call('DEL', key)
    note = name .. ' unreadable'
    return 0
  end
  if value > now + limit then
    note = name .. ' ' .. string.format('%.3g', value - now)
    value = now + limit
    redis.call('SET', key, string.format('%.6f', value), 'PX', math.ceil(limit * 1000) + 60000)
  end
  return value
end
"""

_RESERVE_LUA: Final = (
    "pcall(redis.replicate_commands)\n"
    + _READ_KEYS_LUA
    + """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local paused = read(KEYS[2], 'pause', cap)
if paused > now then return {0, string.format('%.6f', paused - now), note} end
if interval <= 0 then return {1, '0', note} end
local tat = read(KEYS[1], 'schedule', cap + tolerance + interval)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if max_wait >= 0 and wait > max_wait then return {2, string.format('%.6f', wait), note} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX',
           math.ceil((new_tat - now) * 1000) + 60000)
return {1, string.format('%.6f', wait), note}
"""
)

_PAUSE_LUA: Final = (
    "pcall(redis.replicate_commands)\n"
    + _READ_KEYS_LUA
    + """
local seconds = tonumber(ARGV[1])
local til = now + seconds
local paused = read(KEYS[2], 'pause', cap)
if til > paused then
  redis.call('SET', KEYS[2], string.format('%.6f', til), 'PX', math.ceil(seconds * 1000) + 1000)
end
local tat = read(KEYS[1], 'schedule', cap + 60)
if tat < til then
  redis.call('SET', KEYS[1], string.format('%.6f', til), 'PX', math.ceil(seconds * 1000) + 60000)
end
return note
"""
)


class RedisStore(RateStore):
    """The budget and the pause in Redis, shared by every process on the same scope.

    Every failure to talk to Redis (refused, reset, timed out, a Redis error) is raised as
    :class:`StoreUnavailable`, with no text from the URL.
    """

    shared = True

    def __init__(self, client: Redis, scope: str, *, description: str = "redis") -> None:
        self._client = client
        # {scope} is a hash tag: on a Redis Cluster both keys live in one slot, as a script
        # touching both requires.
        self._keys = [
            f"{_REDIS_KEY_PREFIX}{{{scope}}}:tat",
            f"{_REDIS_KEY_PREFIX}{{{scope}}}:pause",
        ]
        self._description = description
        self._reserve_script = client.register_script(_RESERVE_LUA)
        self._pause_script = client.register_script(_PAUSE_LUA)

    @classmethod
    def from_url(cls, url: str, scope: str, *, timeout: float = 2.0) -> RedisStore:
        """A store on ``url`` (checked by :func:`check_rate_store`); connects on first use."""
        try:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError:  # pragma: no cover - exercised only without the extra
            raise ImportError(
                "rate_store needs the redis extra: pip install 'cellcast-async[redis]'"
            ) from None
        # A bounded pool: thousands of waiting tasks share a few connections instead of
        # opening one each. No retries inside redis-py: a failure falls back at once.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=8,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            # RESP2, every Redis speaks it: no HELLO handshake, nothing logged about it.
            protocol=2,
        )
        client = Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
        return cls(client, scope, description=describe_store_url(url))

    async def reserve(
        self, interval: float | None, tolerance: float, max_wait: float | None
    ) -> Reservation:
        args = [
            repr(interval if interval is not None else -1.0),
            repr(tolerance),
            repr(max_wait if max_wait is not None else -1.0),
            repr(MAX_PAUSE),
        ]
        reply = await self._call(self._reserve_script, args)
        # The longest wait our script can answer: a pause or a schedule it capped.
        limit = MAX_PAUSE + tolerance + (interval or 0.0) + 1.0
        kind, value, note = _read_reserve_reply(reply, limit)
        self._report(note)
        if kind == 0:
            return Reservation(granted=False, paused=value)
        if kind == 2:
            if max_wait is None:
                raise StoreReplyError("a refusal although no limit on the wait was asked")
            return Reservation(granted=False, wait=value)
        return Reservation(granted=True, wait=value)

    async def pause(self, seconds: float) -> None:
        args = [repr(float(seconds)), "0", "0", repr(MAX_PAUSE)]
        reply = await self._call(self._pause_script, args)
        self._report(_read_note(reply))

    def _report(self, note: str) -> None:
        """Log what the script found out of bounds in the store (README "Rate limits")."""
        if not note:
            return
        name, _, ahead = note.partition(" ")
        if ahead == "unreadable":
            logger.warning(
                "rate store %s held an unreadable %s time; it was cleared", self._description, name
            )
        else:
            logger.warning(
                "rate store %s held a %s %s s ahead; capped to %g s like a local pause",
                self._description,
                name,
                ahead,
                MAX_PAUSE,
            )

    async def _call(self, script: Any, args: list[str]) -> Any:
        try:
            return await script(keys=self._keys, args=args)
        except asyncio.CancelledError:
            raise
        except (ConnectionError, TimeoutError, OSError, asyncio.TimeoutError) as exc:
            # No message, no cause: redis-py's text can quote the connection's address.
            raise StoreUnavailable(type(exc).__name__) from None
        except Exception as exc:
            # An error reply, a reply redis-py cannot parse: Redis answered, wrongly.
            name = type(exc).__name__
            if _is_connection_error(exc):
                raise StoreUnavailable(name) from None
            raise StoreUnavailable(name, problem=f"failed ({name})") from None

    async def aclose(self) -> None:
        try:
            await self._client.aclose(close_connection_pool=True)
        except Exception:  # closing a dead connection must not fail the close
            logger.debug("closing the rate store's Redis client failed", exc_info=False)

    def describe(self) -> str:
        return self._description


def _is_connection_error(exc: BaseException) -> bool:
    """redis-py's own connection and timeout errors (not subclasses of the builtins)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, (RedisConnectionError, RedisTimeoutError))


def _shape(reply: object) -> str:
    """What a reply is, for a log line: its type and size, never its content."""
    if isinstance(reply, (list, tuple)):
        return f"an array of {len(reply)}" if reply else "an empty array"
    if isinstance(reply, bool) or reply is None:
        return "nil" if reply is None else "a boolean"
    if isinstance(reply, int):
        return "an integer"
    if isinstance(reply, (bytes, str)):
        return "a string"
    return f"a {type(reply).__name__}"


def _text(value: object, limit: int) -> str | None:
    """A short ASCII string from a reply element, else ``None``."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        return None
    return value


def _read_note(value: object) -> str:
    """The third element of a reservation: '' or '<pause|schedule> <seconds|unreadable>'."""
    note = _text(value, _STORE_NOTE_MAX)
    if note is None:
        raise StoreReplyError(f"a reply of the wrong shape ({_shape(value)} for a note)")
    if not note:
        return ""
    name, _, ahead = note.partition(" ")
    if name not in ("pause", "schedule"):
        raise StoreReplyError("a reply of the wrong shape (an unknown note)")
    if ahead != "unreadable":
        try:
            float(ahead)
        except ValueError:
            raise StoreReplyError("a reply of the wrong shape (an unknown note)") from None
    return note


def _read_reserve_reply(reply: object, limit: float) -> tuple[int, float, str]:
    """(kind, seconds, note) from a reservation's reply, checked against what our script
    returns: ``[0|1|2, "<seconds>", "<note>"]`` with 0 <= seconds <= ``limit``."""
    expected = "expected [kind, seconds, note]"
    if not isinstance(reply, (list, tuple)) or len(reply) != 3:
        raise StoreReplyError(f"a reply of the wrong shape ({_shape(reply)}, {expected})")
    wrong = "a reply of the wrong shape"
    kind, raw, note = reply
    if isinstance(kind, bool) or not isinstance(kind, int) or kind not in (0, 1, 2):
        raise StoreReplyError(f"{wrong} (a kind that is not 0, 1 or 2, {expected})")
    text = _text(raw, 32)
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise StoreReplyError(f"{wrong} (seconds that are not a number, {expected})")
    if value > limit:
        raise StoreReplyError(f"a wait of more than {limit:g} s")
    return kind, value, _read_note(note)


# ---------------------------------------------------------------------------- governor


@attrs.frozen
class GovernorState:
    """A snapshot of a :class:`Governor`, e.g. for a progress line.

    ``paused_until`` is a time on the governor's clock (or ``None``); ``rate`` the requests
    per second in force now (``None``: no cap, ``0.0`` while paused); ``reason`` why that
    rate: ``"none"``, ``"rate_limit"``, ``"resume"`` (slow start after a pause),
    ``"headers"`` or ``"paused"``.
    """

    paused_until: float | None
    rate: float | None
    reason: str
    rate_limit: float | None
    burst: float | None
    store: str
    waiting: int  # acquire() calls queued now
    rate_limited: int  # 429s observed
    acquired: int
    waited: float  # seconds spent in acquire(), summed over every call


@attrs.frozen
class _Ramp:
    """The resume after a 429's pause, as TCP after a loss: slow start, then additive.

    From ``start_rate`` (half the rate that drew the 429) the rate doubles every second up
    to ``threshold`` (90% of it), then grows by a tenth of the threshold per second until
    ``ceiling`` (``rate_limit``, or far above the old rate when there is none).
    """

    start_rate: float
    start: float  # when the pause ends
    threshold: float
    ceiling: float

    def rate(self, now: float) -> float:
        elapsed = max(0.0, now - self.start)
        doubling = math.log2(self.threshold / self.start_rate) * RAMP_DOUBLING
        if elapsed < doubling:
            return float(self.start_rate * 2.0 ** (elapsed / RAMP_DOUBLING))
        return self.threshold * (1.0 + RAMP_ADDITIVE * (elapsed - doubling))


@attrs.define
class _HeaderLimit:
    rate: float  # requests per second the server's remaining budget allows until `until`
    until: float


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
        self._rate_limit = check_rate_limit(rate_limit)
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
        self._consecutive_429 = 0
        self._ramp: _Ramp | None = None  # the resume after a 429's pause
        self._header: _HeaderLimit | None = None
        self._recent: collections.deque[float] = collections.deque()  # grant times, last 1 s
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
    ) -> None:
        """Learn from one attempt's outcome (``status=None``: no answer came back)."""
        del elapsed  # the latency signal belongs to AdaptiveConcurrency
        if status is None:
            return
        now = self._clock()
        if status == 429:
            self._rate_limited += 1
            self._on_429(retry_after, now)
            return
        self._consecutive_429 = 0
        if headers:
            self._on_headers(headers, now)

    @property
    def state(self) -> GovernorState:
        now = self._clock()
        rate: float | None
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
        """Sleep up to ``seconds`` (never more than a capped pause, nor past the end of a
        header's pace), or until :meth:`_wake`."""
        now = self._clock()
        horizon = MAX_PAUSE
        if self._header is not None:
            horizon = min(horizon, max(0.0, self._header.until - now))
        seconds = min(max(0.0, seconds), horizon)
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

    def _rate_in_force(self, now: float) -> tuple[float | None, str]:
        rate = self._rate_limit
        reason = "none" if rate is None else "rate_limit"
        if self._ramp is not None:
            ramp = self._ramp.rate(now)
            if ramp >= self._ramp.ceiling:
                self._ramp = None
            elif rate is None or ramp < rate:
                rate, reason = ramp, "resume"
        if self._header is not None:
            if now >= self._header.until:
                self._header = None
            elif rate is None or self._header.rate < rate:
                rate, reason = self._header.rate, "headers"
        return rate, reason

    def _pace(self, now: float) -> tuple[float | None, float]:
        """(emission interval, tolerance) of the GCRA now; (None, 0) when nothing limits."""
        rate, reason = self._rate_in_force(now)
        if rate is None:
            return None, 0.0
        interval = 1.0 / rate
        if reason != "rate_limit" or self._burst is None:
            return interval, 0.0  # while resuming or obeying headers: no burst at all
        # A GCRA with tolerance (b - 1) * T lets at most R * W + b requests into any closed
        # window of W seconds: with W = 1, rate_limit plus the burst.
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
        self._acquired += 1
        recent = self._recent
        recent.append(now)
        while recent and recent[0] <= now - _WINDOW:
            recent.popleft()

    def _recent_rate(self, now: float) -> float:
        """Requests per second let through lately: over the last second, or over the span
        of the grants in it when that is shorter (a walk that has just begun), at least
        0.1 s, so six requests in the first millisecond read as 60/s, not 6/s."""
        recent = self._recent
        while recent and recent[0] <= now - _WINDOW:
            recent.popleft()
        if not recent:
            return 0.0
        span = min(_WINDOW, max(_MIN_RATE_SPAN, now - recent[0]))
        return len(recent) / span

    # -- what answers say ---------------------------------------------------------

    def _on_429(self, retry_after: float | None, now: float) -> None:
        if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
            pause = retry_after
        else:
            # No (usable) Retry-After: back off exponentially per pause, with jitter so two
            # sessions that met the same 429 do not come back together.
            exponent = min(self._consecutive_429, 16)
            base = min(BACKOFF_CAP, BACKOFF_BASE * 2.0**exponent)
            pause = base * (0.5 + 0.5 * self._rng.random())
        pause = min(pause, MAX_PAUSE)
        if self._pause_left(now) <= 0:
            self._consecutive_429 += 1
        self._start_pause(pause, now)
        if self._store.shared:
            self._spawn_pause(self._store, pause)

    def _start_pause(self, pause: float, now: float) -> None:
        """Pause until ``now + pause`` (never shorter), then resume in slow start."""
        until = now + pause
        was_paused = self._pause_left(now) > 0
        if self._paused_until is None or until > self._paused_until:
            self._paused_until = until
        end = self._paused_until
        self._local.pause_now(end - now)
        if was_paused and self._ramp is not None:
            # Several answers of one burst: one resume, from the pause's (new) end.
            self._ramp = attrs.evolve(self._ramp, start=end)
            return
        observed = self._recent_rate(now)
        current, _ = self._rate_in_force(now)
        before = observed if current is None else min(observed, current)
        start_rate = max(MIN_RAMP_RATE, before / 2.0)
        threshold = max(start_rate, RAMP_THRESHOLD * before)
        if self._rate_limit is not None:
            start_rate = min(start_rate, self._rate_limit)
            threshold = min(threshold, self._rate_limit)
            ceiling = self._rate_limit
        else:
            # No cap to return to: climb well past the old rate before letting go, so what
            # queued during the pause drains with acceleration rather than at once.
            ceiling = max(RAMP_NO_CAP_FACTOR * start_rate, RAMP_NO_CAP_MIN)
        self._ramp = _Ramp(start_rate, end, threshold, ceiling)

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
        budget = _read_rate_headers(headers, self._wall_clock)
        if budget is None:
            return
        remaining, reset = budget
        # README "Rate limits": what headers say is capped like a Retry-After. A budget
        # under one whole request is none at all (a wait until the reset, at most 60 s),
        # and the rate it leaves never falls under one request per 60 s, so no slot is
        # ever booked further ahead than that (0.001 left, 1e-320 left, a denormal...).
        reset = min(reset, MAX_PAUSE)
        remaining = math.floor(remaining)
        if remaining < 1:
            # The server's budget is spent: wait for its reset (no slow start: the server
            # has said exactly when it refills).
            until = now + reset
            if self._paused_until is None or until > self._paused_until:
                self._paused_until = until
                self._local.pause_now(reset)
            self._header = None
            return
        rate = remaining / reset
        if not math.isfinite(rate):
            self._header = None  # a reset of a denormal: no pace worth keeping
            return
        self._header = _HeaderLimit(rate=max(MIN_HEADER_RATE, rate), until=now + reset)
        self._wake()  # a nap measured at the old pace may now be too long


# ---------------------------------------------------------------------------- headers


def _read_rate_headers(headers: Mapping[str, str], wall_clock: Clock) -> tuple[float, float] | None:
    """(remaining requests, seconds until reset) from the first header family present.

    A family with a missing, negative or unreadable part is ignored, as if absent.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    if "ratelimit" in lower:
        found = _ietf_structured(lower["ratelimit"])
        if found is not None:
            return found
    for prefix in ("x-ratelimit-", "ratelimit-"):
        remaining = _number(lower.get(prefix + "remaining"))
        reset = _number(lower.get(prefix + "reset"))
        if remaining is None or reset is None:
            continue
        if reset > 1e9:
            # Some servers (GitHub) send the reset as a Unix time rather than seconds.
            reset = reset - wall_clock()
        if reset <= 0:
            continue
        return remaining, reset
    return None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip().strip('"'))
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


def _ietf_structured(value: str) -> tuple[float, float] | None:
    """``limit=100, remaining=50, reset=30`` (draft 06/07) or ``"p";r=50;t=30`` (draft 08+).

    With several policies in one header, the one that allows the lowest rate wins.
    """
    best: tuple[float, float] | None = None
    flat: dict[str, str] = {}
    for item in value.split(","):
        params: dict[str, str] = {}
        for part in item.split(";"):
            key, sep, raw = part.strip().partition("=")
            if sep:
                params[key.strip().lower()] = raw.strip()
        flat.update(params)
        remaining, reset = _number(params.get("r")), _number(params.get("t"))
        if remaining is None or reset is None or reset <= 0:
            continue
        if best is None or remaining / reset < best[0] / best[1]:
            best = (remaining, reset)
    if best is not None:
        return best
    remaining, reset = _number(flat.get("remaining")), _number(flat.get("reset"))
    if remaining is not None and reset is not None and reset > 0:
        return remaining, reset
    return None


# ---------------------------------------------------------------------------- concurrency


class AdaptiveConcurrency:
    """AIMD pages in flight for ``concurrency="auto"``, as TCP congestion control does.

    - Slow start: +1 per clean answer (doubling per round) until the first congestion signal.
    - Then additive increase: +1 per round (a round is ``limit`` answers).
    - Multiplicative decrease (halve) on a 429, a 503, no answer, or a latency that rises
      well above the floor seen (twice the floor and at least 20 ms more); at most once per
      round, so one burst of failures counts once.
    """

    LATENCY_FACTOR: Final = 2.0
    LATENCY_MARGIN: Final = 0.020
    FLOOR_PERIOD: Final = 30.0  # the latency floor is re-learnt every 30 s of clock time

    def __init__(
        self,
        *,
        initial: int = 2,
        minimum: int = 1,
        maximum: int = 32,
        clock: Clock = time.monotonic,
    ) -> None:
        if minimum < 1 or maximum < minimum or not minimum <= initial <= maximum:
            raise ValueError(
                "AdaptiveConcurrency needs 1 <= minimum <= initial <= maximum, got "
                f"minimum={minimum}, initial={initial}, maximum={maximum}"
            )
        self._window = float(initial)
        self._minimum = minimum
        self._maximum = maximum
        self._clock = clock
        self._slow_start = True
        self._answers = 0
        self._guard_until = 0  # no decrease before this many answers (one round)
        self._floor: float | None = None
        self._period_floor: float | None = None
        self._period_start = clock()
        self._smoothed: float | None = None
        self.decreases = 0

    @property
    def limit(self) -> int:
        return int(self._window)

    def on_attempt(self, status: int | None, elapsed: float) -> None:
        """Grow on a clean, fast answer; shrink on a 429, 503, no answer or rising latency."""
        self._answers += 1
        if status is None or status in (429, 503):
            self._decrease()
            return
        if status >= 500:
            return  # a server error that says nothing about load: neither grow nor shrink
        if self._slow_latency(elapsed):
            self._decrease()
            return
        if self._slow_start:
            self._window = min(float(self._maximum), self._window + 1.0)
        else:
            self._window = min(float(self._maximum), self._window + 1.0 / self._window)

    def _slow_latency(self, elapsed: float) -> bool:
        if not math.isfinite(elapsed) or elapsed < 0:
            return False
        now = self._clock()
        if now - self._period_start >= self.FLOOR_PERIOD:
            # Forget an old floor slowly: the next period starts from the last period's.
            self._floor = self._period_floor if self._period_floor is not None else self._floor
            self._period_floor = None
            self._period_start = now
        self._period_floor = (
            elapsed if self._period_floor is None else min(self._period_floor, elapsed)
        )
        self._floor = elapsed if self._floor is None else min(self._floor, elapsed)
        smoothed = elapsed if self._smoothed is None else 0.8 * self._smoothed + 0.2 * elapsed
        self._smoothed = smoothed
        threshold = max(self._floor * self.LATENCY_FACTOR, self._floor + self.LATENCY_MARGIN)
        return smoothed > threshold

    def _decrease(self) -> None:
        if self._answers < self._guard_until:
            return
        self._slow_start = False
        self._window = max(float(self._minimum), self._window / 2.0)
        self._guard_until = self._answers + max(1, math.ceil(self._window * 2))
        # Latency measured in the old window is not the new window's: start smoothing anew.
        self._smoothed = None
        self.decreases += 1


# ---------------------------------------------------------------------------- factory


def make_governor(
    rate_limit: object,
    rate_store: object,
    scope: str,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> Governor:
    """A checked :class:`Governor`: in-process, or on Redis when ``rate_store`` is a URL."""
    rate = check_rate_limit(rate_limit)
    url = check_rate_store(rate_store)
    store: RateStore | None = None
    if url is not None:
        store = RedisStore.from_url(url, scope)
    return Governor(rate_limit=rate, store=store, clock=clock, sleep=sleep, rng=rng)
