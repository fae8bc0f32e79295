"""What a walk did, what it proved, and where it stops: stats, completeness, checkpoints.

Pure bookkeeping, no I/O: :mod:`._pager` feeds every page read to :func:`advance` and asks
it which page to read next. README "Reliability" states the guarantee; the proof is here.

**Model.** Page ``n`` of size ``L`` is whatever sits at places ``(n-1)*L .. n*L-1`` of the
list at the instant the server reads it (one instant per read, somewhere between the
request going out and the answer coming back). The list is ordered by a fixed order (for
tokens: ``createdAt`` then ``_id``, newest first); tokens come and go but never change
places relative to each other. A *survivor* exists from the walk's first read to its last.
Every survivor exists at every read, so each read shows every survivor that lies, in the
order, between the read's first and last item.

**The frontier.** After each read the walk keeps ``f``: every survivor at a place ``< f``
at the instant of that read has been yielded (``None``: nothing provable any more).
Reading page ``n`` (places ``a = (n-1)*L`` to ``a+m-1``, ``m`` items) moves it so:

1. *Totals, newest first, reads in time order* (the request went out after the previous
   answer came back). From the previous read to this one a survivor ``s`` moves by
   ``c - d(s)``: ``c`` tokens created in between and still there (newest first: all of
   them in front of ``s``), ``d(s)`` deleted tokens that were in front of it. The total
   moves by ``c - d`` with ``d >= d(s)``, so ``s`` moves by at least ``T_now - T_before``.
   With ``k = max(0, T_before - T_now)``, every survivor now at a place ``< f - k`` was at
   a place ``< f`` then: yielded. If ``a <= f - k`` this read joins on and
   ``f' = max(f - k, a + m)``; otherwise ``f' = f - k`` and the places in between are
   re-read (*repair*). When the total never shrinks, ``k = 0`` and ``f`` advances page by
   page: a quiet list costs no extra request.
2. *Overlap, any order, any time order.* If the previous read had joined on (its last
   item ``v`` and every survivor before it yielded) and this read holds one of its items,
   this read starts at or before ``v``: every survivor up to this read's last item was
   yielded, ``f' = a + m``. This holds for oldest-first lists and for pages read at once.
3. Otherwise ``f' = None``.

The walk is *complete* when its last page (``hasNextPage`` false, an empty page, or
``page >= totalPages``) ends with ``f' >= a + m``: every survivor then sits at a place
``< T <= a + m``. It starts at page 1 and the first read sets ``f = m``.

**Quiet lists read at once** (``concurrency > 1``, newest first). With ``T0`` and ``x``
the total and first item of page 1 at the first read: if every page read reports ``T0``
and one more read of page 1, sent after every other answer came back, reports ``T0``
and ``x`` first again, the list did not change where it matters. Newest first, a token
created since the first read and still there at the last would stand before ``x``; so
none is there, the original tokens still there number ``T0``, and since they can only
decrease, none was deleted at any moment. Every read then saw ``T0`` original tokens
and no new one: the original list, places unchanged. That costs one request, made only
when rule 1 could not carry the walk.

Rule 1 needs insertions to land in front of every survivor, so it is used only when the
listing is declared newest first and every page read is sorted that way (a token that
re-enters a ``status``/``search`` filter lands mid-list, so filtered listings do not
declare it). The repair re-reads at most three pages per shrink and at most
``8 + pages/2`` pages per walk; past that the walk goes on forward and says ``False``.
"""

from __future__ import annotations

import contextvars
import json
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Final, Literal, Protocol

import attrs

from ._seal import CheckpointKey

__all__ = [
    "CHECKPOINT_VERSION",
    "DEFAULT_MAX_PAGES",
    "MAX_CHECKPOINT_CHARS",
    "MAX_CHECKPOINT_IDS",
    "MAX_DERIVED_PAGES",
    "MAX_PAGES_SLACK",
    "NO_PROGRESS_PAGES",
    "ConcurrencyController",
    "Listing",
    "NoProgress",
    "Order",
    "Read",
    "WalkRecorder",
    "WalkState",
    "WalkStats",
    "advance",
    "contradicted",
    "current_walk",
    "decode_checkpoint",
    "encode_checkpoint",
    "page_bound",
    "verified",
]

CHECKPOINT_VERSION: Final = 2
_FORMAT: Final = "cellcast_async.walk"

MAX_CHECKPOINT_CHARS: Final = 4 * 2**20
"""The longest checkpoint written or read (README "Long audits"): ids of a page of 50,000
tokens fit twice over."""
MAX_CHECKPOINT_IDS: Final = 100_000
"""The most ids a checkpoint holds: those of the last page read and of the page being read."""
# Commas a checkpoint holds besides those between ids: its fields and stats.
_OTHER_COMMAS: Final = 64

NO_PROGRESS_PAGES: Final = 3
"""Forward pages in a row that repeat the page before them before a walk gives up.

A page *repeats* when it holds items, none new, the very same ids as the page read just
before it and the same ``total``: what a server that ignores ``page`` sends. A list that
grows or shrinks under the walk moves its ``total`` (README "Paging"), so a page of ids
already seen with a moved total is no repeat: it neither counts nor resets the count."""

MAX_PAGES_SLACK: Final = 100
"""``max_pages`` by default: twice the pages the first ``total`` needs, plus this."""

DEFAULT_MAX_PAGES: Final = 10_000
"""``max_pages`` by default when the first answer tells neither ``total`` nor ``totalPages``."""

MAX_DERIVED_PAGES: Final = 100_000
"""The most ``max_pages`` a server's ``total`` or ``totalPages`` can derive (README "Paging").

Those are the server's words: a ``total`` of ``10**30`` must not turn the safety bound into
no bound. A larger walk passes ``max_pages`` itself."""

# Repair bounds (README "Reliability"): extra pages per shrink, and per walk.
_REWIND_PAGES: Final = 3
_BUDGET_BASE: Final = 8
_BUDGET_SHARE: Final = 2

Order = Literal["newest_first", "oldest_first"]
Key = str | int


@attrs.frozen
class WalkStats:
    """What a walk did; ``pager.stats`` (README "Long audits").

    ``requests``/``retries``/``rate_limited`` count HTTP attempts, retried attempts and
    429s; ``pages``/``items`` what was handed over; ``refetched_pages`` pages read again to
    repair a shrink; ``first_total``/``last_total`` the ``total`` of the first and last
    answer; ``waited`` the wall-clock seconds during which at least one of the walk's
    requests was in backoff or a pause (README "Walk stats"); ``complete`` whether every
    token that existed for the whole walk was yielded (README "Reliability");
    ``waited_sum`` every request's waits added up (more than ``waited`` when several
    pages waited at once).
    """

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    pages: int = 0
    items: int = 0
    duplicates_dropped: int = 0
    refetched_pages: int = 0
    first_total: int | None = None
    last_total: int | None = None
    waited: float = 0.0
    elapsed: float = 0.0
    complete: bool = False
    waited_sum: float = 0.0


class ConcurrencyController(Protocol):
    """Decides how many pages a walk keeps in flight (``concurrency="auto"``)."""

    @property
    def limit(self) -> int: ...

    def on_attempt(self, status: int | None, elapsed: float) -> None: ...


# Disjoint wait intervals a recorder keeps before folding the oldest half into a sum.
_WAIT_INTERVALS: Final = 256


class WalkRecorder:
    """One per walk: the request pipeline reports each HTTP attempt and each wait here.

    Waits of pages in flight at once overlap: ``waited_seconds`` is the length of the
    union of the wait intervals (wall-clock time during which the walk waited),
    ``waited_sum`` every wait added up.
    """

    def __init__(self, base: WalkStats, controller: ConcurrencyController | None = None) -> None:
        self.requests = base.requests
        self.retries = base.retries
        self.rate_limited = base.rate_limited
        self._waited_before = base.waited
        self.waited_sum = base.waited_sum
        # Merged, sorted, disjoint (start, end) intervals, and the length of those folded
        # away; a wait reported later that starts before ``_folded_until`` is clipped there.
        self._intervals: list[tuple[float, float]] = []
        self._folded = 0.0
        self._folded_until = -math.inf
        self._controller = controller

    def __repr__(self) -> str:
        return f"<WalkRecorder requests={self.requests} retries={self.retries}>"

    def attempt(self, *, status: int | None, elapsed: float, retry: bool) -> None:
        """An HTTP attempt ended: ``status`` None if no answer came; ``retry`` if not the first."""
        self.requests += 1
        if retry:
            self.retries += 1
        if status == 429:
            self.rate_limited += 1
        if self._controller is not None:
            self._controller.on_attempt(status, elapsed)

    def waited(self, seconds: float, *, start: float | None = None) -> None:
        """Seconds spent in backoff, ``Retry-After`` or a rate governor's pause.

        ``start``: when the wait began on the pipeline's clock; without it the wait is
        taken to overlap no other.
        """
        if not math.isfinite(seconds) or seconds <= 0:
            return
        self.waited_sum += seconds
        if start is None or not math.isfinite(start):
            self._folded += seconds
            return
        begin, end = max(start, self._folded_until), start + seconds
        if end <= begin:
            return
        kept: list[tuple[float, float]] = []
        for a, b in self._intervals:
            if b < begin or a > end:
                kept.append((a, b))
            else:  # overlaps or touches: merge
                begin, end = min(a, begin), max(b, end)
        kept.append((begin, end))
        kept.sort()
        if len(kept) > _WAIT_INTERVALS:
            old, kept = kept[: len(kept) // 2], kept[len(kept) // 2 :]
            self._folded += sum(b - a for a, b in old)
            self._folded_until = old[-1][1]
        self._intervals = kept

    @property
    def waited_seconds(self) -> float:
        """Wall-clock seconds during which at least one request of the walk waited."""
        return self._waited_before + self._folded + sum(b - a for a, b in self._intervals)


current_walk: contextvars.ContextVar[WalkRecorder | None] = contextvars.ContextVar(
    "cellcast_async_current_walk", default=None
)
"""The recorder of the walk whose page is being fetched (set around every page fetch)."""


class NoProgress(Exception):
    """Raised by :func:`advance`: pages keep coming back with nothing new."""


@attrs.frozen
class Listing:
    """Which listing a checkpoint belongs to: the path and its filters (never a host or key)."""

    path: str
    params: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class Read:
    """One page as read: its ids in order and what it said about the list.

    ``sent``/``received`` are ticks of one counter taken when the request went out and
    when its answer came back: two reads are in time order when ``sent`` of the second
    is after ``received`` of the first.
    """

    page: int
    keys: tuple[Hashable, ...]
    total: int | None
    total_pages: int | None
    has_next: bool
    limit: int
    sent: int
    received: int
    sorted_ok: bool = True

    @property
    def end(self) -> bool:
        """This read itself says the list ends here."""
        return (
            not self.has_next
            or not self.keys
            or (self.total_pages is not None and self.page >= self.total_pages)
        )


@attrs.frozen
class WalkState:
    """Everything a walk carries from one page to the next, and a checkpoint holds."""

    listing: Listing | None
    limit: int
    start: int
    page: int
    remaining: int | None
    concurrency: int | Literal["auto"] = 1
    done: bool = False
    complete: bool = False
    verify: bool = False
    reads: int = 0
    forward: int = 0
    frontier: int | None = None
    prev_keys: tuple[Hashable, ...] = ()
    prev_total: int | None = None
    prev_joined: bool = False
    prev_received: int = -1
    order_ok: bool = True
    quiet: bool = False
    quiet_total: int | None = None
    quiet_first: Hashable | None = None
    refetched: int = 0
    no_progress: int = 0


def _budget(forward: int) -> int:
    return _BUDGET_BASE + forward // _BUDGET_SHARE


def _no_progress(state: WalkState, read: Read, *, fresh: int) -> int:
    """Forward pages in a row that held items but nothing new (``read`` is one of them)."""
    if fresh:
        return 0
    if read.total == state.prev_total and _same_keys(read.keys, state.prev_keys):
        # The very same page again: a server that ignores ``page``. Ids already seen
        # under a moved total are a list that grew or shrank: no repeat (README "Paging").
        no_progress = state.no_progress + 1
        if no_progress >= NO_PROGRESS_PAGES:
            raise NoProgress(no_progress)
        return no_progress
    return state.no_progress


def _frontier(state: WalkState, read: Read, *, newest: bool) -> int | None:
    """How far the walk is known to hold the list without a gap after ``read``, or None."""
    n, m = read.page, len(read.keys)
    a = (n - 1) * read.limit
    if state.reads == 0:
        return m if n == 1 else None
    if state.frontier is None:
        return None
    carried: int | None = None
    if (
        newest
        and read.sent > state.prev_received
        and read.total is not None
        and state.prev_total is not None
    ):
        carried = state.frontier - max(0, state.prev_total - read.total)
    if carried is not None and a <= carried:
        return max(carried, a + m)
    if state.prev_joined and not set(state.prev_keys).isdisjoint(read.keys):
        return max(a + m, carried or 0)
    if carried is not None:
        return max(carried, 0)
    return None


def _quiet(state: WalkState, read: Read) -> tuple[bool, int | None, Hashable | None]:
    """Whether the list looks untouched since the first page: ``(quiet, its total, its
    first id)``."""
    if state.reads == 0:
        quiet_total = read.total
        quiet_first = read.keys[0] if read.page == 1 and read.keys else None
        return quiet_total is not None and quiet_first is not None, quiet_total, quiet_first
    quiet = state.quiet and read.total == state.quiet_total
    return quiet, state.quiet_total, state.quiet_first


def advance(
    state: WalkState, read: Read, *, fresh: int, taken: int, order: Order | None
) -> WalkState:
    """The state after handing over ``taken`` of the ``fresh`` (not yet seen) items of ``read``.

    Raises :class:`NoProgress` on the ``NO_PROGRESS_PAGES``-th forward page in a row that
    held items but nothing new.
    """
    n, m = read.page, len(read.keys)
    a = (n - 1) * read.limit
    forward_read = n > state.forward
    no_progress = (
        _no_progress(state, read, fresh=fresh) if forward_read and m else state.no_progress
    )
    order_ok = state.order_ok and read.sorted_ok
    newest = order == "newest_first" and order_ok
    frontier = _frontier(state, read, newest=newest)
    quiet, quiet_total, quiet_first = _quiet(state, read)

    joined = frontier is not None and frontier >= a + m
    remaining = None if state.remaining is None else state.remaining - taken
    forward = max(state.forward, n)
    refetched = state.refetched + (0 if forward_read else 1)
    page, done, complete, verify = n + 1, False, False, False
    if taken < fresh or (remaining == 0 and not read.end):
        done = True  # max_items ends it early
    elif joined:
        done = complete = read.end
    else:
        target = -1 if frontier is None else frontier // read.limit + 1
        if (
            target > 0
            and n - target < _REWIND_PAGES
            and refetched + forward - target + 1 <= _budget(forward)
        ):
            page = target
        else:
            frontier, page = None, forward + 1
            if read.end or remaining == 0:
                done, verify = True, newest and quiet and remaining != 0
    keys = read.keys
    # One constructor call, not attrs.evolve: this runs once per page of every walk.
    return WalkState(
        listing=state.listing,
        limit=state.limit,
        start=state.start,
        page=state.page if done else page,
        remaining=remaining,
        concurrency=state.concurrency,
        done=done,
        complete=complete,
        verify=verify,
        reads=state.reads + 1,
        forward=forward,
        frontier=frontier,
        prev_keys=keys if None not in keys else tuple(k for k in keys if k is not None),
        prev_total=read.total,
        prev_joined=joined and frontier is not None,
        prev_received=read.received,
        order_ok=order_ok,
        quiet=quiet,
        quiet_total=quiet_total,
        quiet_first=quiet_first,
        refetched=refetched,
        no_progress=no_progress,
    )


def _same_keys(keys: tuple[Hashable, ...], prev: tuple[Hashable, ...]) -> bool:
    # ``prev_keys`` is kept without None ids (see ``advance``).
    return (keys if None not in keys else tuple(k for k in keys if k is not None)) == prev


def page_bound(
    max_pages: int | None, first_total: int | None, first_total_pages: int | None, limit: int
) -> int:
    """The most pages one walk reads forward from its first page (README "Paging").

    ``max_pages`` if given; else twice what the first ``total`` needs at ``limit`` a page
    (or twice the first ``totalPages``) plus ``MAX_PAGES_SLACK``, so a list may grow to
    twice its size under the walk, at most ``MAX_DERIVED_PAGES``; else
    ``DEFAULT_MAX_PAGES``. A server that keeps inventing items with ``hasNextPage: true``
    ends there instead of never, whatever ``total`` it claims.
    """
    if max_pages is not None:
        return max_pages
    if first_total is not None:
        return min(2 * -(-first_total // max(1, limit)) + MAX_PAGES_SLACK, MAX_DERIVED_PAGES)
    if first_total_pages is not None:
        return min(2 * first_total_pages + MAX_PAGES_SLACK, MAX_DERIVED_PAGES)
    return DEFAULT_MAX_PAGES


def contradicted(low_total: int | None, high_total: int | None, items: int) -> bool:
    """Whether the server's own ``total`` visibly contradicts a walk that yielded ``items``.

    ``low_total``/``high_total``: the least and greatest ``total`` the walk's answers
    reported. When every answer reported the same total ``T``, a walk that yielded fewer
    than ``T`` items did not see the list the server describes (``hasNextPage: false``
    on page 1 with ``total: 35`` and 10 items is the plainest case): ``complete`` is then
    ``False`` whatever the proof says. The check can only withdraw a claim (a list whose
    creations and deletions balanced may cost a ``False``), never make one.
    """
    return low_total is not None and low_total == high_total and items < low_total


def verified(state: WalkState, read: Read) -> WalkState:
    """The state after the extra read of page 1 that proves a quiet newest-first list."""
    ok = (
        read.page == 1
        and bool(read.keys)
        and read.keys[0] == state.quiet_first
        and read.total == state.quiet_total
    )
    return attrs.evolve(state, verify=False, complete=ok)


# --- checkpoints -----------------------------------------------------------------------
#
# A checkpoint is read back from wherever its user kept it: untrusted input (README "Long
# audits"). It is sealed with a MAC under the session's key (``._seal``), bounded in size
# before it is parsed, and every field is checked once the seal holds.


def _canonical(outer: Mapping[str, Any]) -> bytes:
    text = json.dumps(outer, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


def _too_many_ids(count: int) -> str:
    return (
        f"{count:,} ids, more than the {MAX_CHECKPOINT_IDS:,} a checkpoint holds"
        ' (README "Long audits")'
    )


def _keys_out(keys: Sequence[Hashable], what: str) -> list[Key]:
    out: list[Key] = []
    for key in keys:
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise TypeError(f"a checkpoint holds str or int ids; {what} has a {type(key).__name__}")
        out.append(key)
    return out


def encode_checkpoint(
    state: WalkState,
    partial: Sequence[Hashable],
    stats: WalkStats,
    *,
    key: CheckpointKey,
    taken: int | None = None,
) -> str:
    """The opaque text of ``pager.checkpoint()``: ``state`` plus the ids handed over of the
    page being read (``partial``), which a resumed walk reads again and skips, sealed with
    ``key``. ``taken``: how many of ``partial`` ``state.remaining`` does not count yet
    (default: all; a resumed walk's inherited ids were counted when its own checkpoint was
    written). A walk whose pages are too large to checkpoint is a ``ValueError``."""
    ids = len(state.prev_keys) + len(partial)
    if ids > MAX_CHECKPOINT_IDS:
        raise ValueError(
            f"this walk cannot be checkpointed: {_too_many_ids(ids)}; use a smaller limit"
        )
    remaining = state.remaining
    if remaining is not None:
        remaining -= len(partial) if taken is None else taken
    body: dict[str, Any] = {
        "listing": None
        if state.listing is None
        else {"path": state.listing.path, "params": dict(state.listing.params)},
        "limit": state.limit,
        "start": state.start,
        "page": state.page,
        "remaining": remaining,
        "concurrency": state.concurrency,
        "done": state.done,
        "complete": state.complete,
        "verify": state.verify,
        "reads": state.reads,
        "forward": state.forward,
        "frontier": state.frontier,
        "prev_keys": _keys_out(state.prev_keys, "the last page"),
        "prev_total": state.prev_total,
        "prev_joined": state.prev_joined,
        "order_ok": state.order_ok,
        "quiet": state.quiet,
        "quiet_total": state.quiet_total,
        "quiet_first": None
        if state.quiet_first is None
        else _keys_out([state.quiet_first], "page 1")[0],
        "refetched": state.refetched,
        "no_progress": state.no_progress,
        "partial": _keys_out(partial, "the page being read"),
        "stats": attrs.asdict(stats),
    }
    outer: dict[str, Any] = {
        "format": _FORMAT,
        "version": CHECKPOINT_VERSION,
        "key": key.key_id,
        "state": body,
    }
    outer["mac"] = key.mac(_FORMAT, _canonical(outer))
    text = json.dumps(outer, separators=(",", ":"), ensure_ascii=True)
    # Never written if decode_checkpoint would refuse to read it (ids full of commas too).
    _check_limits(text, _CANNOT_WRITE)
    return text


_Limit = Literal["characters", "ids"]

# What the writer and the reader say of a text past a limit; {size} is its length.
_CANNOT_WRITE: Final[Mapping[_Limit, str]] = {
    "characters": "this walk cannot be checkpointed: {size:,} characters, more than the"
    f" {MAX_CHECKPOINT_CHARS:,} a checkpoint holds; use a smaller limit",
    "ids": "this walk cannot be checkpointed: its ids hold too many commas to tell from"
    f" more than {MAX_CHECKPOINT_IDS:,} ids; use a smaller limit",
}
_CANNOT_READ: Final[Mapping[_Limit, str]] = {
    "characters": "checkpoint is too large: {size:,} characters, more than the"
    f' {MAX_CHECKPOINT_CHARS:,} a checkpoint holds (README "Long audits")',
    "ids": f"checkpoint is too large: it may hold more than {MAX_CHECKPOINT_IDS:,} ids, the"
    ' most a checkpoint holds (README "Long audits")',
}


def _check_limits(text: str, refusals: Mapping[_Limit, str]) -> None:
    """A ``ValueError`` (its message from ``refusals``) if a checkpoint's ``text`` passes a
    limit (README "Long audits"); one rule for the writer and the reader, checked before
    the text is parsed."""
    over: _Limit | None = None
    if len(text) > MAX_CHECKPOINT_CHARS:
        over = "characters"
    # Every id but the last of a list is followed by a comma: an upper bound on the ids,
    # counted in C before the parser builds millions of strings.
    elif text.count(",") > MAX_CHECKPOINT_IDS + _OTHER_COMMAS:
        over = "ids"
    if over is not None:
        raise ValueError(refusals[over].format(size=len(text)))


def _field(body: Mapping[str, Any], name: str, kind: str) -> Any:
    if name not in body:
        raise ValueError(f"checkpoint field {name!r} is missing")
    value = body[name]
    ok: bool
    if kind == "int>=1":
        ok = type(value) is int and value >= 1
    elif kind == "int>=0":
        ok = type(value) is int and value >= 0
    elif kind == "int>=0?":
        ok = value is None or (type(value) is int and value >= 0)
    elif kind == "bool":
        ok = type(value) is bool
    elif kind == "keys":
        ok = isinstance(value, list) and all(type(k) is str or type(k) is int for k in value)
    elif kind == "key?":
        ok = value is None or type(value) is str or type(value) is int
    else:  # pragma: no cover - a typo in this module
        raise AssertionError(kind)
    if not ok:
        raise ValueError(f"checkpoint field {name!r} must be {_KINDS[kind]}, got {value!r}")
    return value


_KINDS: Final = {
    "int>=1": "an integer >= 1",
    "int>=0": "an integer >= 0",
    "int>=0?": "null or an integer >= 0",
    "bool": "true or false",
    "keys": "a list of string or integer ids",
    "key?": "null or a string or integer id",
}

_STAT_FIELDS: Final = {f.name: f for f in attrs.fields(WalkStats)}


def _listing(value: Any) -> Listing | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or set(value) != {"path", "params"}
        or not isinstance(value["path"], str)
        or not isinstance(value["params"], dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in value["params"].items())
    ):
        raise ValueError(
            'checkpoint field \'listing\' must be null or {"path": str, "params": {str: str}}'
        )
    return Listing(value["path"], tuple(sorted(value["params"].items())))


def _stats(value: Any) -> WalkStats:
    # ``waited_sum`` came later: a checkpoint written before it counts its waits as one.
    if isinstance(value, dict) and "waited_sum" not in value and "waited" in value:
        value = {**value, "waited_sum": value["waited"]}
    if not isinstance(value, dict) or set(value) != set(_STAT_FIELDS):
        raise ValueError("checkpoint field 'stats' must hold exactly the WalkStats fields")
    for name, v in value.items():
        if name in ("first_total", "last_total"):
            good = v is None or (type(v) is int and v >= 0)
        elif name in ("waited", "elapsed", "waited_sum"):
            good = type(v) in (int, float) and math.isfinite(v) and v >= 0
        elif name == "complete":
            good = type(v) is bool
        else:
            good = type(v) is int and v >= 0
        if not good:
            raise ValueError(f"checkpoint field 'stats.{name}' has a bad value: {v!r}")
    return WalkStats(**value)


def decode_checkpoint(
    text: object, key: CheckpointKey
) -> tuple[WalkState, tuple[Key, ...], WalkStats]:
    """The state, the ids of the page being read already handed over, and the stats so far.

    Anything that is not a checkpoint this version wrote under ``key``, that was changed
    after, or that is larger than a checkpoint can be, is a ``ValueError`` naming what is
    wrong. The size is checked before the text is parsed, the seal before any field is read.
    """
    if not isinstance(text, str):
        raise ValueError(f"checkpoint must be a str, not {type(text).__name__}")
    _check_limits(text, _CANNOT_READ)
    try:
        outer = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("checkpoint is not a cellcast_async checkpoint: not JSON") from None
    if not isinstance(outer, dict) or outer.get("format") != _FORMAT:
        raise ValueError("checkpoint is not a cellcast_async checkpoint: no 'format' marker")
    version = outer.get("version")
    if version != CHECKPOINT_VERSION or type(version) is not int:
        raise ValueError(
            f"checkpoint is format version {version!r}; this cellcast_async reads version "
            f"{CHECKPOINT_VERSION}"
        )
    if outer.get("key") != key.key_id:
        raise ValueError(
            "checkpoint was made under another API key: it resumes only with the key of"
            " the account that made it"
        )
    mac = outer.pop("mac", None)
    if not key.check(_FORMAT, _canonical(outer), mac):
        raise ValueError("checkpoint is not authentic: it was changed after it was written")
    body = outer.get("state")
    if not isinstance(body, dict):
        raise ValueError("checkpoint field 'state' must be an object")
    limit = _field(body, "limit", "int>=1")
    start = _field(body, "start", "int>=1")
    page = _field(body, "page", "int>=1")
    if page < start:
        raise ValueError(f"checkpoint field 'page' ({page}) is before 'start' ({start})")
    frontier = _field(body, "frontier", "int>=0?")
    quiet_first = _field(body, "quiet_first", "key?")
    state = WalkState(
        listing=_listing(body.get("listing")),
        limit=limit,
        start=start,
        page=page,
        remaining=_field(body, "remaining", "int>=0?"),
        concurrency="auto"
        if body.get("concurrency") == "auto"
        else _field(body, "concurrency", "int>=1"),
        done=_field(body, "done", "bool"),
        complete=_field(body, "complete", "bool"),
        verify=_field(body, "verify", "bool"),
        reads=_field(body, "reads", "int>=0"),
        forward=_field(body, "forward", "int>=0"),
        frontier=frontier,
        prev_keys=tuple(_field(body, "prev_keys", "keys")),
        prev_total=_field(body, "prev_total", "int>=0?"),
        prev_joined=_field(body, "prev_joined", "bool"),
        # The resumed walk's first request goes out after every read before the checkpoint.
        prev_received=-1,
        order_ok=_field(body, "order_ok", "bool"),
        quiet=_field(body, "quiet", "bool"),
        quiet_total=_field(body, "quiet_total", "int>=0?"),
        quiet_first=quiet_first,
        refetched=_field(body, "refetched", "int>=0"),
        no_progress=_field(body, "no_progress", "int>=0"),
    )
    partial = tuple(_field(body, "partial", "keys"))
    ids = len(state.prev_keys) + len(partial)
    if ids > MAX_CHECKPOINT_IDS:
        raise ValueError(f"checkpoint is too large: {_too_many_ids(ids)}")
    return state, partial, _stats(body.get("stats"))
