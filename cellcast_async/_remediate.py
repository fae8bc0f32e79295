"""Apply a plan, and undo one: per token read, compare, journal, write, journal.

For each token of a :class:`~._plan.Plan`, in plan order: read it; if it is gone, or
changed since the plan (name, status, sub-account, ``createdAt``), it is skipped and not
written; otherwise the intent is journaled (fsynced), the write is sent, and the outcome
is journaled (fsynced). One failing token never stops the others. Started again on the
same journal, tokens with a final outcome are never written again, and a token whose
intent has no outcome is read first to learn whether the write took effect.

Writes have their own budget (:class:`WriteRate`, on top of the session's governor): no
sliding second sees more than ``write_rate + write_burst`` write attempts. The SDK's own
retries are off for writes, so every attempt on the wire is counted: a write whose
answer was lost (a dropped connection, a 5xx, a 429, an answer that is not JSON) is
settled by reading the token again, and sent again only if it did not take effect
(README "Acting on an audit").
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Final, Literal

import attrs

from ._exceptions import (
    CellcastError,
    DecodeError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TransportError,
)
from ._journal import Journal, Result
from ._models import ApiToken, TokenStatus
from ._plan import Action, Plan, PlanError, PlanItem, check_account, check_items
from ._rotate import Deliver
from ._rotate_plan import rotate_item
from ._session import CellcastSession

__all__ = [
    "DEFAULT_WRITE_BURST",
    "DEFAULT_WRITE_RATE",
    "SETTLED",
    "WRITES",
    "Outcome",
    "WriteRate",
    "apply_plan",
    "deleted",
    "reverse_plan",
    "undo_plan",
]

DEFAULT_WRITE_RATE: Final = 10.0
"""Writes (PUT or DELETE) per second ``apply`` and ``undo`` send by default."""
DEFAULT_WRITE_BURST: Final = 2
"""Writes a quiet budget may send at once: no sliding second sees more than
``write_rate + write_burst`` writes."""
WRITE_ATTEMPTS: Final = 8
"""Attempts of one write whose answer was lost before the token is ``failed``."""
_MAX_REASON: Final = 300
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

OutcomeResult = Literal["done", "already", "skipped", "failed", "planned"]


@attrs.frozen
class Outcome:
    """What ``apply`` or ``undo`` did to one token.

    ``result`` is ``done`` (written now or, after a restart, found written), ``already``
    (the token was in the planned state already), ``skipped`` (gone or changed since the
    plan: not written), ``failed`` (``reason`` holds the error's class and message) or,
    in a dry run, ``planned`` (it would be written). ``resumed`` is true for an outcome an
    earlier run journaled.
    """

    token_id: str
    name: str
    action: Action
    result: OutcomeResult
    reason: str | None = None
    resumed: bool = False


class WriteRate:
    """A token bucket for writes: ``rate`` a second, at most ``burst`` at once."""

    def __init__(
        self,
        rate: float = DEFAULT_WRITE_RATE,
        burst: int = DEFAULT_WRITE_BURST,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"write_rate must be a number > 0, not {rate!r}")
        if type(burst) is not int or burst < 1:
            raise ValueError(f"write_burst must be a whole number >= 1, not {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._at = clock()

    def __repr__(self) -> str:
        return f"<WriteRate {self.rate:g}/s burst {self.burst}>"

    async def acquire(self) -> None:
        """Wait until one more write is within the budget, and take it."""
        while True:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await self._sleep((1.0 - self._tokens) / self.rate)


async def _deactivate(cc: CellcastSession, item: PlanItem) -> None:
    await cc.tokens.update(item.id, status=TokenStatus.INACTIVE)


async def _reactivate(cc: CellcastSession, item: PlanItem) -> None:
    await cc.tokens.update(item.id, status=TokenStatus.ACTIVE)


async def _delete(cc: CellcastSession, item: PlanItem) -> None:
    await cc.tokens.delete(item.id)


WRITES: Final[dict[str, Callable[[CellcastSession, PlanItem], Awaitable[None]]]] = {
    "deactivate": _deactivate,
    "reactivate": _reactivate,
    "delete": _delete,
}
"""The write of each action: one coroutine per action, sent once per attempt."""

SETTLED: Final[dict[str, Callable[[PlanItem, ApiToken | None], bool]]] = {
    "deactivate": lambda item, token: token is not None and token.status == "inactive",
    "reactivate": lambda item, token: token is not None and token.status == "active",
    "delete": lambda item, token: token is None,
}
"""Whether a token read back (``None``: gone) shows the action took effect."""

_TARGET: Final[dict[str, str]] = {"deactivate": "inactive", "reactivate": "active"}


def safe_reason(exc: BaseException) -> str:
    """An error as an outcome's reason: its class and message, one line, capped. The
    SDK's errors carry no secret (the pipeline redacts them)."""
    text = _CONTROL.sub(" ", f"{type(exc).__name__}: {exc}")
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def _compare(item: PlanItem, token: ApiToken | None) -> tuple[Result, str] | None:
    """``None`` when ``token`` is as planned; else the outcome without a write."""
    if token is None:
        return ("skipped", "gone: the token no longer exists")
    changed = item.changed(token)
    if changed is None:
        return None
    target = _TARGET.get(item.action)
    if (
        target is not None
        and str(token.status) == target
        and attrs.evolve(item, status=target).changed(token) is None
    ):
        return ("already", f"already {target}")
    return ("skipped", changed)


async def _read(cc: CellcastSession, token_id: str) -> ApiToken | None:
    try:
        return await cc.tokens.get(token_id)
    except NotFoundError:
        return None


class _Run:
    """One apply: the session, the journal (``None`` in a dry run without one), the budget."""

    def __init__(
        self,
        cc: CellcastSession,
        journal: Journal | None,
        budget: WriteRate,
        dry_run: bool,
        deliver: Deliver | None = None,
    ) -> None:
        self.cc = cc
        # The SDK's retries would send writes the budget never saw: this run retries.
        self.writer = cc.with_options(max_retries=0)
        self.journal = journal
        self.budget = budget
        self.dry_run = dry_run
        self.deliver = deliver

    def finish(self, item: PlanItem, result: Result, reason: str | None = None) -> Outcome:
        if self.journal is not None and not self.dry_run:
            self.journal.record(item.id, "outcome", result=result, reason=reason)
        return Outcome(item.id, item.name, item.action, result, reason)

    async def one(self, item: PlanItem) -> Outcome:
        journal = self.journal
        final = journal.final(item.id) if journal is not None else None
        if final is not None:
            result: OutcomeResult = final.result or "failed"
            return Outcome(item.id, item.name, item.action, result, final.reason, resumed=True)
        if item.action == "rotate":
            return await self.rotate(item)
        pending = journal is not None and journal.last(item.id) is not None
        try:
            token = await _read(self.cc, item.id)
        except (CellcastError, ValueError) as exc:
            # ValueError: an id no request can carry (a lone surrogate the server sent):
            # this token fails, the others go on.
            return self.finish(item, "failed", safe_reason(exc))
        if pending and SETTLED[item.action](item, token):
            return self.finish(item, "done", "found done after a restart")
        verdict = _compare(item, token)
        if verdict is not None:
            return self.finish(item, *verdict)
        if self.dry_run:
            return Outcome(item.id, item.name, item.action, "planned")
        if journal is not None and not pending:
            journal.record(item.id, "intent")
        return await self.write(item)

    async def rotate(self, item: PlanItem) -> Outcome:
        """A rotation's steps, each journaled (``._rotate_plan``, README "Rotating tokens")."""
        assert self.deliver is not None  # apply_plan refuses a rotate plan without one
        result, reason = await rotate_item(
            item,
            cc=self.cc,
            writer=self.writer,
            journal=self.journal,
            budget=self.budget,
            deliver=self.deliver,
            dry_run=self.dry_run,
        )
        if result == "planned":
            return Outcome(item.id, item.name, item.action, "planned", reason)
        return self.finish(item, result, reason)

    async def write(self, item: PlanItem) -> Outcome:
        send = WRITES[item.action]
        for attempt in range(WRITE_ATTEMPTS):
            await self.budget.acquire()
            try:
                await send(self.writer, item)
            except NotFoundError:
                return self.finish(item, *_gone(item))
            except (TransportError, ServerError, RateLimitError, DecodeError) as exc:
                # The answer is lost or unreadable: the write may have happened.
                await asyncio.sleep(_pause(exc, attempt))
                settled = await self.settle(item)
                if settled is not None:
                    return settled
                if attempt + 1 == WRITE_ATTEMPTS:
                    return self.finish(item, "failed", safe_reason(exc))
            except CellcastError as exc:
                return self.finish(item, "failed", safe_reason(exc))
            else:
                return self.finish(item, "done")
        raise AssertionError("unreachable")  # pragma: no cover

    async def settle(self, item: PlanItem) -> Outcome | None:
        """After a write whose answer was lost: its outcome if known, ``None`` to resend."""
        try:
            token = await _read(self.cc, item.id)
        except CellcastError as exc:
            return self.finish(item, "failed", safe_reason(exc))
        if SETTLED[item.action](item, token):
            return self.finish(item, "done")
        verdict = _compare(item, token)
        return None if verdict is None else self.finish(item, *verdict)


def _gone(item: PlanItem) -> tuple[Result, str]:
    if item.action == "delete":
        return ("already", "gone before the delete was sent")
    return ("skipped", "gone: the token no longer exists")


def _pause(exc: CellcastError, attempt: int) -> float:
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        return min(max(float(exc.retry_after), 0.0), 60.0)
    return min(0.05 * 2.0**attempt, 2.0)


async def apply_plan(
    cc: CellcastSession,
    plan: Plan,
    *,
    journal_path: str | os.PathLike[str],
    write_rate: float = DEFAULT_WRITE_RATE,
    write_burst: int = DEFAULT_WRITE_BURST,
    dry_run: bool = False,
    deliver: Deliver | None = None,
) -> AsyncGenerator[Outcome, None]:
    """Apply ``plan`` with ``cc``, token by token in plan order; yields each outcome.

    A ``rotate`` plan needs ``deliver``, the async callable that receives each new
    token's secret (README "Rotating tokens"); without it, a :class:`~._plan.PlanError`
    before anything is sent.

    The journal at ``journal_path`` is created, or gone on with after a kill (it must be
    this plan's). ``write_rate`` writes a second at most, ``write_burst`` at once. A
    ``dry_run`` reads every token and yields what would happen (``planned`` for a write);
    it sends no write and writes no journal. A plan for another account or API, a plan
    that deletes an active token, or a journal of another plan or that was edited is a
    :class:`~._plan.PlanError` before anything is sent.
    """
    check_account(plan, cc)
    check_items(plan)
    if deliver is None and any(item.action == "rotate" for item in plan.items):
        raise PlanError("a rotate plan needs a sink for the new secrets (deliver)")
    budget = WriteRate(write_rate, write_burst)
    journal = _journal_for(cc, plan, journal_path, dry_run)
    try:
        run = _Run(cc, journal, budget, dry_run, deliver)
        for item in plan.items:
            yield await run.one(item)
    finally:
        if journal is not None:
            journal.close()


def _journal_for(
    cc: CellcastSession, plan: Plan, path: str | os.PathLike[str], dry_run: bool
) -> Journal | None:
    if not dry_run:
        return Journal.open(path, plan, cc)
    if not os.path.exists(path):
        return None
    journal = Journal.read(path, cc)
    # Another plan's journal says nothing about this one.
    return journal if journal.plan.digest == plan.digest else None


def reverse_plan(journal: Journal) -> Plan:
    """The plan that undoes ``journal``: reactivate every token it deactivated (``done``).

    Made from the journal alone, so the same journal gives the same plan (and an undo
    resumes on its own journal).
    """
    done = journal.deactivated()
    items = tuple(
        PlanItem(
            id=item.id,
            name=item.name,
            sub_account_id=item.sub_account_id,
            status="inactive",
            created_at=item.created_at,
            action="reactivate",
        )
        for item in journal.plan.items
        if item.id in done
    )
    last = journal.records[-1].at if journal.records else journal.plan.as_of
    return Plan(
        account=journal.plan.account,
        base_url=journal.plan.base_url,
        as_of=last,
        action="reactivate",
        selection={"undo_of": journal.plan.digest, "records": len(journal.records)},
        items=items,
    )


def deleted(journal: Journal) -> list[PlanItem]:
    """The tokens ``journal`` deleted: no undo brings them back."""
    gone = {
        r.token_id
        for r in journal.records
        if r.event == "outcome" and r.step is None and r.result == "done"
    }
    return [i for i in journal.plan.items if i.action == "delete" and i.id in gone]


async def undo_plan(
    cc: CellcastSession,
    journal_path: str | os.PathLike[str],
    *,
    journal_path_out: str | os.PathLike[str],
    write_rate: float = DEFAULT_WRITE_RATE,
    write_burst: int = DEFAULT_WRITE_BURST,
    dry_run: bool = False,
) -> AsyncGenerator[Outcome, None]:
    """Undo what the journal at ``journal_path`` did: reactivate each token it deactivated,
    journaled in ``journal_path_out`` and resumed like :func:`apply_plan` (a token changed
    since is skipped). Deleted tokens cannot come back: each is yielded first as
    ``skipped`` with that reason."""
    source = Journal.read(journal_path, cc)
    for item in deleted(source):
        yield Outcome(item.id, item.name, "delete", "skipped", "deleted: a delete cannot be undone")
    async for outcome in apply_plan(
        cc,
        reverse_plan(source),
        journal_path=journal_path_out,
        write_rate=write_rate,
        write_burst=write_burst,
        dry_run=dry_run,
    ):
        yield outcome
