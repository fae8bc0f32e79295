"""In-memory store of the sandbox: sub-accounts, tokens, and deterministic demo data.

Nothing here knows about HTTP. The store keeps every token in one list sorted by
``(createdAt, _id)`` so a listing never sorts, and caches each filtered view (owner, sub-account,
status, search) until the next mutation, so walking page after page of a 100k-token listing
costs one O(n) filter pass, then O(limit) per page.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from operator import attrgetter
from typing import Final, TypeVar

__all__ = [
    "HEADER_STYLES",
    "LIMITER_KINDS",
    "REFERENCE_TIME",
    "RETRY_AFTER_STYLES",
    "STATUSES",
    "RateDecision",
    "RateLimiter",
    "Store",
    "StoredSubAccount",
    "StoredToken",
    "View",
    "format_retry_after_style",
    "format_timestamp",
]

_S = TypeVar("_S")

# Demo data ages are measured from this fixed instant, never from now(), so two sandboxes with
# the same seed serve byte-identical listings. (It is the ObjectId timestamp of the seeds'
# example sub-account 6877a383d68781beb3b14110, rounded down to midnight.)
REFERENCE_TIME: Final = datetime(2025, 7, 16, tzinfo=timezone.utc)
_REFERENCE_MS: Final = int(REFERENCE_TIME.timestamp()) * 1000
_EPOCH: Final = datetime(1970, 1, 1)  # naive: format_timestamp adds the "Z" itself

# seeds/002 "Token Status": active | inactive.
STATUSES: Final = ("active", "inactive")

_DAY_MS: Final = 86_400_000
_DEMO_SPAN_MS: Final = 730 * _DAY_MS  # ages spread over the two years before REFERENCE_TIME
_SECRET_PREFIX: Final = "ccst_"
_MAX_CACHED_VIEWS: Final = 64

# (display name, company, e-mail local part / domain slug) for demo sub-accounts.
_COMPANIES: Final = (
    ("Acme SMS", "Acme Pty Ltd", "acme"),
    ("Bondi Digital", "Bondi Digital Pty Ltd", "bondi-digital"),
    ("Coral Coast Logistics", "Coral Coast Logistics Pty Ltd", "coral-coast"),
    ("Darling Dental", "Darling Harbour Dental Group", "darling-dental"),
    ("Eucalypt Software", "Eucalypt Software Pty Ltd", "eucalypt"),
    ("Fremantle Fisheries", "Fremantle Fisheries Co", "fremantle"),
    ("Gold Coast Realty", "Gold Coast Realty Pty Ltd", "gc-realty"),
    ("Hobart Health", "Hobart Health Group", "hobart-health"),
    ("Kakadu Tours", "Kakadu Tours & Travel", "kakadu"),
    ("Mallee Farms", "Mallee Farms Cooperative", "mallee"),
)
# Names every demo sub-account gets for its first tokens, so the same name is deliberately
# used in more than one sub-account (the CLI audit reports those).
_SHARED_NAMES: Final = ("Production API", "Development API")
_PURPOSES: Final = (
    "Billing Worker",
    "CRM Sync",
    "Marketing Campaigns",
    "OTP Sender",
    "Zapier",
    "Support Desk",
    "Website Contact Form",
    "Appointment Reminders",
    "Inventory Alerts",
    "Mobile App",
)
_ENVIRONMENTS: Final = ("prod", "staging", "dev", "test")


def format_timestamp(ms: int) -> str:
    """ISO-8601 with milliseconds and ``Z``, as in seeds/000: ``2024-01-15T10:30:00.000Z``."""
    # isoformat() rather than strftime: half the cost, and every listed token pays it.
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


def mask_secret(secret: str) -> str:
    """The form every read after creation shows (seeds/001 "Important"): prefix + stars + last 4."""
    if secret.startswith(_SECRET_PREFIX) and len(secret) > len(_SECRET_PREFIX) + 4:
        hidden = len(secret) - len(_SECRET_PREFIX) - 4
        return _SECRET_PREFIX + "*" * hidden + secret[-4:]
    return "*" * max(len(secret) - 4, 4) + secret[-4:]


@dataclass(slots=True)
class StoredSubAccount:
    id: str
    name: str
    email: str
    company_name: str
    owner: str  # the API key that owns it; never serialised


@dataclass(slots=True)
class StoredToken:
    id: str
    name: str
    status: str
    created_ms: int
    sub_account_id: str

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.created_ms, self.id)

    @property
    def created_at(self) -> str:
        return format_timestamp(self.created_ms)


# attrgetter runs in C: re-sorting 100k tokens after a bulk load stays well under a second.
_sort_key: Final[Callable[[StoredToken], tuple[int, str]]] = attrgetter("created_ms", "id")


@dataclass(frozen=True, slots=True)
class View:
    """What a listing asks for; the cache key of a filtered, newest-first view."""

    owner: str
    sub_account_id: str | None = None
    status: str | None = None
    search: str | None = None  # already lower-cased


class _Ids:
    """24-hex-char ids shaped like MongoDB ObjectIds: 4-byte seconds, 5-byte random, 3-byte counter.

    Deterministic for a given RNG, and unique within a sandbox (the counter only wraps after
    16M ids; ``Store`` still checks for collisions).
    """

    def __init__(self, rng: random.Random) -> None:
        self._machine = rng.getrandbits(40)
        self._counter = rng.getrandbits(24)

    def new(self, created_ms: int) -> str:
        self._counter = (self._counter + 1) & 0xFFFFFF
        seconds = (created_ms // 1000) & 0xFFFFFFFF
        return f"{seconds:08x}{self._machine:010x}{self._counter:06x}"


class Store:
    """Every sub-account and token of one sandbox, plus the API keys that own them."""

    def __init__(
        self,
        *,
        seed: int = 0,
        tokens: int = 300,
        sub_accounts: int = 3,
        api_key: str | None = None,
    ) -> None:
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        if sub_accounts < 0:
            raise ValueError("sub_accounts must be >= 0")
        if tokens and not sub_accounts:
            raise ValueError("tokens need at least one sub-account")
        if api_key is not None and (not api_key.strip() or any(c in api_key for c in "\r\n")):
            raise ValueError("api_key must be a non-empty single-line string")

        # Separate streams, so passing api_key= does not change the demo data.
        key_rng = random.Random(f"cellcast-sandbox-keys:{seed}")
        self._rng = random.Random(f"cellcast-sandbox-data:{seed}")
        self._ids = _Ids(self._rng)
        self._secret_key = self._rng.getrandbits(128).to_bytes(16, "big")

        self.api_key: str = api_key if api_key is not None else _new_key(key_rng)
        other = _new_key(key_rng)
        while other == self.api_key:
            other = _new_key(key_rng)
        self.other_api_key: str = other

        self.sub_accounts: dict[str, StoredSubAccount] = {}
        self.tokens: dict[str, StoredToken] = {}
        self._owned: dict[str, frozenset[str]] = {self.api_key: frozenset(), other: frozenset()}
        self._by_name: dict[tuple[str, str], str] = {}  # (sub-account id, name) -> token id
        self._count_by_sub: dict[str, int] = {}
        self._order: list[StoredToken] = []  # ascending (createdAt, _id); views read it reversed
        self._views: dict[View, list[StoredToken]] = {}
        # Bumped by every change: what a reader may cache is good until it moves.
        self.generation = 0
        self._name_counter = 0
        # POSTed tokens get createdAt from this logical clock (1 s per create) so they sort
        # newest and the run stays reproducible.
        self._clock_ms = _REFERENCE_MS
        self.tokens_created = 0

        order = list(range(len(_COMPANIES)))
        self._rng.shuffle(order)
        self.primary_sub_ids: tuple[str, ...] = tuple(
            self._add_sub_account(self.api_key, order[i % len(order)], i // len(order))
            for i in range(sub_accounts)
        )
        self.other_sub_ids: tuple[str, ...] = (self._add_other_sub_account(other),)

        self._bulk_load(tokens, self.primary_sub_ids, status=None, shared_names=True)
        self._bulk_load(3, self.other_sub_ids, status=None, shared_names=True)

    # ----------------------------------------------------------------- demo data

    def _add_sub_account(self, owner: str, company_index: int, round_: int) -> str:
        name, company, slug = _COMPANIES[company_index]
        if round_:
            name, company, slug = (
                f"{name} {round_ + 1}",
                f"{company} {round_ + 1}",
                f"{slug}{round_ + 1}",
            )
        return self._insert_sub_account(owner, name, company, f"{slug}@example.com")

    def _add_other_sub_account(self, owner: str) -> str:
        return self._insert_sub_account(
            owner, "Outback Reseller", "Outback Reseller Pty Ltd", "outback@example.com"
        )

    def _insert_sub_account(self, owner: str, name: str, company: str, email: str) -> str:
        created = _REFERENCE_MS - _DEMO_SPAN_MS - self._rng.randrange(30 * _DAY_MS)
        sub_id = self._ids.new(created)
        self.sub_accounts[sub_id] = StoredSubAccount(sub_id, name, email, company, owner)
        self._owned[owner] = self._owned[owner] | {sub_id}
        self._count_by_sub[sub_id] = 0
        return sub_id

    def secret(self, token: StoredToken) -> str:
        """The full token value: a keyed hash of its id, so 100k of them cost nothing to load.

        30 bytes -> exactly 40 url-safe base64 characters, no padding.
        """
        digest = hashlib.blake2b(
            token.id.encode("ascii"), key=self._secret_key, digest_size=30
        ).digest()
        return _SECRET_PREFIX + base64.urlsafe_b64encode(digest).decode("ascii")

    def masked(self, token: StoredToken) -> str:
        return mask_secret(self.secret(token))

    def _next_generated_name(self, prefix: str | None = None) -> str:
        self._name_counter += 1
        if prefix is not None:
            return f"{prefix} #{self._name_counter:05d}"
        purpose = _PURPOSES[_below(self._rng, len(_PURPOSES))]
        env = _ENVIRONMENTS[_below(self._rng, len(_ENVIRONMENTS))]
        return f"{purpose} ({env}) #{self._name_counter:05d}"

    def _bulk_load(
        self,
        n: int,
        sub_ids: tuple[str, ...],
        *,
        status: str | None,
        shared_names: bool,
        name_prefix: str | None = None,
        created_ms: int | None = None,
    ) -> list[str]:
        """Append n tokens with ages spread over the demo span, then re-sort once (O(n log n))."""
        if n <= 0:
            return []
        rng = self._rng
        made: list[StoredToken] = []
        per_sub: dict[str, int] = {}
        for _ in range(n):
            sub_id = sub_ids[_below(rng, len(sub_ids))]
            seen = per_sub.get(sub_id, 0)
            per_sub[sub_id] = seen + 1
            name: str | None = None
            if shared_names and seen < len(_SHARED_NAMES):
                candidate = _SHARED_NAMES[seen]
                if (sub_id, candidate) not in self._by_name:
                    name = candidate
            while name is None or (sub_id, name) in self._by_name:
                name = self._next_generated_name(name_prefix)
            created = (
                _REFERENCE_MS - 60_000 - _below(rng, _DEMO_SPAN_MS)
                if created_ms is None
                else created_ms
            )
            token_id = self._ids.new(created)
            while token_id in self.tokens:
                token_id = self._ids.new(created)
            token = StoredToken(
                id=token_id,
                name=name,
                status=status or ("active" if rng.random() < 0.8 else "inactive"),
                created_ms=created,
                sub_account_id=sub_id,
            )
            self.tokens[token_id] = token
            self._by_name[(sub_id, name)] = token_id
            self._count_by_sub[sub_id] += 1
            made.append(token)
        self._order.extend(made)
        self._order.sort(key=_sort_key)
        self._changed()
        return [t.id for t in made]

    def add_tokens(
        self,
        n: int,
        sub_account_id: str | None = None,
        status: str | None = None,
        created_ms: int | None = None,
    ) -> list[str]:
        """Bulk-load n tokens (for big-walk tests); spread across the primary key's
        sub-accounts; all created at ``created_ms`` when given."""
        if n < 0:
            raise ValueError("n must be >= 0")
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        if sub_account_id is None:
            targets = self.primary_sub_ids
        elif sub_account_id in self.sub_accounts:
            targets = (sub_account_id,)
        else:
            raise KeyError(f"unknown sub-account {sub_account_id!r}")
        if not targets:
            raise ValueError("the sandbox has no sub-accounts to add tokens to")
        return self._bulk_load(
            n,
            targets,
            status=status,
            shared_names=False,
            name_prefix="Bulk token",
            created_ms=created_ms,
        )

    # ----------------------------------------------------------------- queries

    def is_key(self, key: str) -> bool:
        return key in self._owned

    def owns(self, owner: str, sub_account_id: str) -> bool:
        return sub_account_id in self._owned.get(owner, frozenset())

    def get_owned(self, owner: str, token_id: str) -> StoredToken | None:
        token = self.tokens.get(token_id)
        if token is None or not self.owns(owner, token.sub_account_id):
            return None
        return token

    def name_taken(self, sub_account_id: str, name: str, *, except_id: str | None = None) -> bool:
        holder = self._by_name.get((sub_account_id, name))
        return holder is not None and holder != except_id

    def token_count(self, sub_account_id: str | None = None) -> int:
        if sub_account_id is None:
            return sum(self._count_by_sub[s] for s in self.primary_sub_ids)
        return self._count_by_sub.get(sub_account_id, 0)

    def view(self, view: View) -> list[StoredToken]:
        """Newest first (createdAt descending, then _id descending); cached until a mutation."""
        cached = self._views.get(view)
        if cached is not None:
            return cached
        owned = self._owned.get(view.owner, frozenset())
        if view.sub_account_id is not None:
            owned = owned & {view.sub_account_id}
        result = list(_filtered(reversed(self._order), owned, view.status, view.search))
        if len(self._views) >= _MAX_CACHED_VIEWS:
            self._views.pop(next(iter(self._views)))
        self._views[view] = result
        return result

    # ----------------------------------------------------------------- mutations

    def create(self, owner: str, sub_account_id: str, name: str) -> StoredToken:
        assert self.owns(owner, sub_account_id)
        self._clock_ms += 1000
        created = self._clock_ms
        token_id = self._ids.new(created)
        while token_id in self.tokens:
            token_id = self._ids.new(created)
        token = StoredToken(token_id, name, "active", created, sub_account_id)
        self.tokens[token_id] = token
        self._by_name[(sub_account_id, name)] = token_id
        self._count_by_sub[sub_account_id] += 1
        bisect.insort(self._order, token, key=_sort_key)
        self.tokens_created += 1
        self._changed()
        return token

    def update(self, token: StoredToken, *, name: str | None, status: str | None) -> None:
        if name is not None and name != token.name:
            del self._by_name[(token.sub_account_id, token.name)]
            token.name = name
            self._by_name[(token.sub_account_id, name)] = token.id
        if status is not None:
            token.status = status
        self._changed()

    def delete(self, token: StoredToken) -> None:
        del self.tokens[token.id]
        del self._by_name[(token.sub_account_id, token.name)]
        self._count_by_sub[token.sub_account_id] -= 1
        index = bisect.bisect_left(self._order, token.sort_key, key=_sort_key)
        assert self._order[index] is token
        del self._order[index]
        self._changed()

    def _changed(self) -> None:
        self._views.clear()
        self.generation += 1


def _filtered(
    tokens: Iterable[StoredToken], owned: frozenset[str], status: str | None, search: str | None
) -> Iterator[StoredToken]:
    for token in tokens:
        if token.sub_account_id not in owned:
            continue
        if status is not None and token.status != status:
            continue
        if search is not None and search not in token.name.lower():
            continue
        yield token


def _below(rng: random.Random, n: int) -> int:
    """Like ``rng.randrange(n)`` (n < 2**53), at a fraction of the cost for bulk loads."""
    return int(rng.random() * n)


def _new_key(rng: random.Random) -> str:
    raw = rng.getrandbits(192).to_bytes(24, "big")
    return "cc_sandbox_" + base64.urlsafe_b64encode(raw).decode("ascii")


# ----------------------------------------------------------------------------- rate limit

# README "The sandbox", "Rate limit, capacity, limits": the limiter kinds, the Retry-After
# styles and the rate-limit header styles the sandbox can imitate. None is in the seeds.
LIMITER_KINDS: Final = ("token-bucket", "fixed-window", "sliding-log")
RETRY_AFTER_STYLES: Final = ("whole", "zero", "fractional", "absent")
HEADER_STYLES: Final = ("window", "whole", "fractional")

_MAX_KEYS: Final = 10_000  # Authorization values are the client's to choose: bound the state
_WINDOW: Final = 1.0  # the fixed and sliding limiters count over one second


@dataclass(frozen=True, slots=True)
class RateDecision:
    """One request's turn at the limiter, and what the rate-limit headers say after it.

    ``limit``, ``remaining`` and ``reset`` follow the limiter's header style: "window" (the
    default) describes a 1-second window, "whole"/"fractional" the limiter's own allowance.
    """

    allowed: bool
    retry_after: float  # seconds until a request would pass again (0 when allowed)
    limit: int  # X-RateLimit-Limit
    remaining: int  # X-RateLimit-Remaining
    reset: float  # X-RateLimit-Reset, in seconds (the "window" style: always 1)


class RateLimiter:
    """A rate limit per API key (the Authorization header as sent), for ``Sandbox(rate_limit=)``.

    Not in the seeds: the Cellcast documents state no limit. Three kinds:

    - ``"token-bucket"`` (the default): each key's bucket holds ``burst`` tokens (default
      one second's worth, at least 1), refills at ``rate`` per second, every request takes
      one; an empty bucket means 429.
    - ``"fixed-window"``: at most ``rate`` requests per clock second (windows start at whole
      seconds of the clock), counted afresh at each window's start.
    - ``"sliding-log"``: at most ``rate`` admitted requests in any 1-second span: the log
      keeps each admitted request's time, and an entry leaves it exactly 1 s later.

    Refused requests cost nothing in any kind. ``header_style`` says what the headers mean:
    ``"window"`` is a 1-second window (Limit: what any second can hold, Remaining: what the
    next second can still take, Reset: 1); ``"whole"`` and ``"fractional"`` state the
    limiter's allowance (Limit: the bucket size or ``rate``, Remaining: what may pass right
    now, Reset: seconds until Remaining is back at Limit, rounded up or to the millisecond).
    The clock is injectable so the arithmetic is tested without waiting.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] | None = None,
        *,
        kind: str = "token-bucket",
        header_style: str = "window",
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1e9:
            raise ValueError(f"rate_limit must be a positive number, got {rate!r}")
        if kind not in LIMITER_KINDS:
            raise ValueError(f"limiter must be one of {', '.join(LIMITER_KINDS)}, got {kind!r}")
        if header_style not in HEADER_STYLES:
            raise ValueError(
                f"rate_limit_headers must be one of {', '.join(HEADER_STYLES)}, "
                f"got {header_style!r}"
            )
        if kind != "token-bucket":
            if burst is not None:
                raise ValueError(f"burst applies only to the token-bucket limiter, not {kind}")
            if not float(rate).is_integer():
                raise ValueError(
                    f"rate_limit must be a whole number for the {kind} limiter, got {rate!r}"
                )
        if burst is None:
            burst = max(1.0, float(rate))
        if isinstance(burst, bool) or not isinstance(burst, (int, float)) or not 1 <= burst < 1e9:
            raise ValueError(f"burst must be a number >= 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self.kind = kind
        self.header_style = header_style
        self._clock = clock if clock is not None else time.monotonic
        self._buckets: dict[str | None, tuple[float, float]] = {}  # key -> (tokens, when)
        self._windows: dict[str | None, tuple[float, int]] = {}  # key -> (window start, count)
        self._logs: dict[str | None, deque[float]] = {}  # key -> admitted times, oldest first

    def take(self, key: str | None) -> RateDecision:
        now = self._clock()
        if self.kind == "fixed-window":
            return self._take_fixed(key, now)
        if self.kind == "sliding-log":
            return self._take_sliding(key, now)
        return self._take_bucket(key, now)

    def _take_bucket(self, key: str | None, now: float) -> RateDecision:
        tokens, when = _pop(self._buckets, key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - when) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        retry_after = 0.0 if allowed else (1.0 - tokens) / self.rate
        if self.header_style == "window":
            return RateDecision(
                allowed, retry_after, int(self.rate + self.burst), int(tokens + self.rate), 1
            )
        full_in = (self.burst - tokens) / self.rate
        return self._decision(allowed, retry_after, int(self.burst), int(tokens), full_in)

    def _take_fixed(self, key: str | None, now: float) -> RateDecision:
        start = math.floor(now / _WINDOW) * _WINDOW
        window, count = _pop(self._windows, key, (start, 0))
        if window != start:
            count = 0
        limit = int(self.rate)
        allowed = count < limit
        if allowed:
            count += 1
        self._windows[key] = (start, count)
        ends_in = start + _WINDOW - now
        retry_after = 0.0 if allowed else ends_in
        full_in = ends_in if count else 0.0
        return self._decision(allowed, retry_after, limit, limit - count, full_in)

    def _take_sliding(self, key: str | None, now: float) -> RateDecision:
        log: deque[float] = _pop(self._logs, key, deque())
        while log and log[0] <= now - _WINDOW:
            log.popleft()
        limit = int(self.rate)
        allowed = len(log) < limit
        if allowed:
            log.append(now)
        self._logs[key] = log
        retry_after = 0.0 if allowed else log[0] + _WINDOW - now
        full_in = log[-1] + _WINDOW - now if log else 0.0
        return self._decision(allowed, retry_after, limit, limit - len(log), full_in)

    def _decision(
        self, allowed: bool, retry_after: float, limit: int, remaining: int, full_in: float
    ) -> RateDecision:
        if self.header_style == "window":
            return RateDecision(allowed, retry_after, limit, remaining, 1)
        if self.header_style == "whole":
            return RateDecision(allowed, retry_after, limit, remaining, math.ceil(full_in - 1e-9))
        return RateDecision(allowed, retry_after, limit, remaining, round(full_in, 3))


def _pop(states: dict[str | None, _S], key: str | None, default: _S) -> _S:
    """The key's state, taken out (re-inserting makes it newest); the oldest key is dropped
    once there are ``_MAX_KEYS`` of them, so a client inventing keys cannot grow the sandbox."""
    state = states.pop(key, None)
    if state is None:
        if len(states) >= _MAX_KEYS:
            states.pop(next(iter(states)))
        return default
    return state


def format_retry_after_style(seconds: float, style: str) -> str | None:
    """The ``Retry-After`` a limiter's 429 carries, or None for none (README "The sandbox").

    "whole": whole seconds rounded up, at least 1, as HTTP specifies; "zero": always ``0``
    (what a server sends when the next slot is milliseconds away); "fractional": seconds to
    the millisecond, at least 0.001; "absent": no header.
    """
    if style == "whole":
        return str(max(1, math.ceil(seconds - 1e-9)))
    if style == "zero":
        return "0"
    if style == "fractional":
        return f"{max(0.001, seconds):.3f}"
    return None
