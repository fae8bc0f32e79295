"""Where a session's rate budget is kept: in this process, or in Redis for every process
on the same account (README "Rate limits", "Shared across processes").

The budget is a GCRA ("generic cell rate algorithm"): one theoretical-arrival time and a
pause, no timers. :class:`InProcessStore` keeps them on the governor's clock;
:class:`RedisStore` keeps them in Redis, on Redis's clock, under :func:`rate_scope`.
Everything read from Redis is untrusted: the scripts cap what the keys hold like a local
pause and every reply is checked before it is believed.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import attrs

from ._options import Clock
from ._protocol import RetryPolicy

if TYPE_CHECKING:  # the redis extra is optional; only RedisStore needs it
    from redis.asyncio import Redis

__all__ = [
    "MAX_PAUSE",
    "InProcessStore",
    "RateStore",
    "RedisStore",
    "Reservation",
    "StoreReplyError",
    "StoreUnavailable",
    "describe_store_url",
    "rate_scope",
]

logger = logging.getLogger("cellcast_async")

MAX_PAUSE: Final = RetryPolicy().retry_after_cap  # a retry does not wait out a longer one
_EPSILON: Final = 1e-9  # seconds: a slot this close to now is now
_REDIS_KEY_PREFIX: Final = "cellcast_async:rate:"
_SCOPE_DOMAIN: Final = "cellcast_async rate scope v2"
_SCOPE_SCRYPT_N: Final = 2**14  # RFC 7914's interactive cost: ~50 ms and 16 MiB per guess
_SCOPE_SCRYPT_R: Final = 8
_STORE_NOTE_MAX: Final = 64  # the longest note a reservation reply may carry


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
        """A store on ``url`` (checked by ``_options.check_rate_store``); connects on first use."""
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
