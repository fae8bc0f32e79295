"""Rotation as an action of the plan -> apply engine, and the plan that retires what it
replaced (README "Rotating tokens").

- :func:`build_rotate_plan` chooses active tokens (by age, or by id) for a ``rotate`` plan;
  no request is sent.
- :func:`rotate_item` is the engine's ``rotate`` action for one plan item: the steps of
  :mod:`._rotate`, each journaled as a step of the token in the apply journal (intent
  before, outcome after, fsynced, non-secret data only), every write within the apply's
  write budget, and a restart going on from the journal and the server.
- :func:`finished_rotations` reads, from an apply journal, when each old token's rotation finished;
  :func:`build_retire_plan` chooses those that finished at least ``grace_days`` before
  ``as_of`` for a ``deactivate`` plan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from ._exceptions import CellcastError, NotFoundError, RateLimitError, ServerError, TransportError
from ._journal import Journal, JournalRecord
from ._models import ApiToken, CreatedToken, TokenStatus
from ._plan import Plan, PlanError, PlanItem, check_days, check_items, key_of
from ._rotate import (
    Deliver,
    Delivered,
    RotationError,
    RotationStep,
    RotationTarget,
    StepRecord,
    resume_rotation,
)
from ._session import CellcastSession

if TYPE_CHECKING:
    from ._pager import Pager
    from ._tokens import TokensResource

__all__ = [
    "Budget",
    "BudgetedTokens",
    "build_retire_plan",
    "build_rotate_plan",
    "rotate_item",
    "finished_rotations",
    "step_records",
]

# Attempts of one PUT or DELETE whose answer was lost (the engine's own retries: the
# session's are off for writes, so the budget sees every attempt).
WRITE_ATTEMPTS: Final = 8
_MAX_IDS_SHOWN: Final = 5


class Budget(Protocol):
    """The apply's write budget: one ``acquire`` per write attempt."""

    async def acquire(self) -> None: ...


def _pause(exc: CellcastError, attempt: int) -> float:
    if isinstance(exc, RateLimitError) and exc.retry_after is not None:
        return min(max(float(exc.retry_after), 0.0), 60.0)
    return min(0.05 * 2.0**attempt, 2.0)


class BudgetedTokens:
    """``cc.tokens`` for a rotation inside ``apply``: reads as usual; each write attempt
    takes its turn at the write budget. PUT and DELETE whose answer was lost are sent
    again (both are idempotent here); a POST is sent once per call, and a lost answer is
    the rotation's to settle (it looks the token up by name)."""

    def __init__(self, reader: TokensResource, writer: TokensResource, budget: Budget) -> None:
        self._reader = reader
        self._writer = writer
        self._budget = budget

    async def get(self, token_id: str) -> ApiToken:
        return await self._reader.get(token_id)

    def list_for_sub_account(
        self, sub_account_id: str, *, limit: int = 100, search: str | None = None
    ) -> Pager[ApiToken]:
        return self._reader.list_for_sub_account(sub_account_id, limit=limit, search=search)

    async def create(self, name: str, sub_account_id: str) -> CreatedToken:
        await self._budget.acquire()
        return await self._writer.create(name=name, sub_account_id=sub_account_id)

    async def update(
        self, token_id: str, name: str | None = None, status: TokenStatus | str | None = None
    ) -> ApiToken:
        for attempt in range(WRITE_ATTEMPTS):
            await self._budget.acquire()
            try:
                return await self._writer.update(token_id, name=name, status=status)
            except (TransportError, ServerError, RateLimitError) as exc:
                if attempt + 1 == WRITE_ATTEMPTS:
                    raise
                await asyncio.sleep(_pause(exc, attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def delete(self, token_id: str) -> None:
        for attempt in range(WRITE_ATTEMPTS):
            await self._budget.acquire()
            try:
                await self._writer.delete(token_id)
                return
            except NotFoundError:
                if attempt == 0:
                    raise
                return  # an earlier attempt whose answer was lost deleted it
            except (TransportError, ServerError, RateLimitError) as exc:
                if attempt + 1 == WRITE_ATTEMPTS:
                    raise
                await asyncio.sleep(_pause(exc, attempt))


# ------------------------------------------------------------------------------ journal


def step_records(journal: Journal | None, token_id: str) -> list[StepRecord]:
    """The rotation steps ``journal`` holds for ``token_id``, in order.

    An apply journal is authenticated, so a step name it holds was written by this
    module; one that is not a :class:`RotationStep` is still refused.
    """
    if journal is None:
        return []
    found: list[StepRecord] = []
    for record in journal.records:
        if record.token_id != token_id or record.step is None:
            continue
        try:
            step = RotationStep(record.step)
        except ValueError:
            raise PlanError(f"{journal.path}: unknown rotation step {record.step!r}") from None
        data = {str(k): str(v) for k, v in record.data.items() if v is not None}
        if record.reason is not None:
            data["reason"] = record.reason
        found.append(StepRecord(step, record.event, data))
    return found


class _ItemJournal:
    """A rotation's :class:`~._rotate.StepJournal` over the apply journal: each step is an
    event of the token with ``step`` set; the step's own result rides in ``data``."""

    def __init__(self, journal: Journal, token_id: str) -> None:
        self._journal = journal
        self._token_id = token_id

    async def record(self, record: StepRecord) -> None:
        data: dict[str, str | int | bool | None] = {
            k: v for k, v in record.data.items() if k != "reason"
        }
        result: Literal["done", "failed"] | None = None
        if record.phase == "outcome":
            result = "done" if record.result in ("ok", "gone") else "failed"
        self._journal.record(
            self._token_id,
            record.phase,
            step=record.step.value,
            result=result,
            reason=record.data.get("reason"),
            data=data,
        )


class _NoJournal:
    async def record(self, record: StepRecord) -> None:
        pass


# ------------------------------------------------------------------------------- action

ItemResult = Literal["done", "skipped", "failed", "planned"]


async def _read(tokens: TokensResource, token_id: str) -> ApiToken | None:
    try:
        return await tokens.get(token_id)
    except NotFoundError:
        return None


async def rotate_item(
    item: PlanItem,
    *,
    cc: CellcastSession,
    writer: CellcastSession,
    journal: Journal | None,
    budget: Budget,
    deliver: Deliver,
    dry_run: bool = False,
    now: datetime | None = None,
) -> tuple[ItemResult, str | None]:
    """The ``rotate`` action of ``apply`` for one plan item: its result and reason.

    A token with no rotation step journaled yet is read first: gone or changed since the
    plan, it is ``skipped`` and not written. One with steps journaled (a restart) goes on
    from them and what the server shows, whatever its name now (this rotation renamed it).
    A dry run reads and reports ``planned``; it sends no write and delivers nothing.
    """
    records = step_records(journal, item.id)
    if not records:
        try:
            token = await _read(cc.tokens, item.id)
        except (CellcastError, ValueError) as exc:  # ValueError: an id no request can carry
            return ("failed", _reason(exc))
        if token is None:
            return ("skipped", "gone: the token no longer exists")
        changed = item.changed(token)
        if changed is not None:
            return ("skipped", changed)
    if dry_run:
        return ("planned", "a rotation under way goes on" if records else None)
    if item.sub_account_id is None:
        return ("failed", "the plan names no sub-account for the token")
    if journal is not None and journal.last(item.id) is None:
        journal.record(item.id, "intent")
    day = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).date()
    target = RotationTarget(item.id, item.name, item.sub_account_id, day)
    steps = _ItemJournal(journal, item.id) if journal is not None else _NoJournal()
    delivered: Delivered | None = getattr(deliver, "delivered", None)
    try:
        await resume_rotation(
            BudgetedTokens(cc.tokens, writer.tokens, budget),
            target,
            records,
            journal=steps,
            deliver=deliver,
            delivered=delivered,
        )
    except RotationError as exc:
        return ("failed", exc.reason)
    except CellcastError as exc:  # reading what a restart needs failed: this token only
        return ("failed", _reason(exc))
    return ("done", None)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


# ------------------------------------------------------------------------------- plans


def _order(item: PlanItem) -> tuple[datetime, str]:
    return (item.created_at, item.id)  # the order build_plan gives: oldest first, by id


def _plan(
    items: Iterable[PlanItem],
    *,
    action: Literal["rotate", "deactivate"],
    as_of: datetime,
    account: CellcastSession,
    selection: Mapping[str, Any],
) -> Plan:
    plan = Plan(
        account=key_of(account).key_id,
        base_url=account.base_url,
        as_of=as_of,
        action=action,
        selection=dict(selection),
        items=tuple(sorted(items, key=_order)),
    )
    check_items(plan)
    return plan


def _shown_ids(ids: Iterable[str]) -> str:
    listed = sorted(ids)
    more = len(listed) - _MAX_IDS_SHOWN
    text = ", ".join(repr(i[:40]) for i in listed[:_MAX_IDS_SHOWN])
    return text + (f" and {more} more" if more > 0 else "")


def build_rotate_plan(
    tokens: Iterable[ApiToken],
    *,
    as_of: datetime,
    account: CellcastSession,
    stale_days: int | None = None,
    ids: Iterable[str] | None = None,
    exempt: Iterable[str] = (),
    sub_accounts: Iterable[str] = (),
    source: str | None = None,
) -> Plan:
    """A ``rotate`` plan: active tokens older than ``stale_days`` at ``as_of`` (the
    audit's rule), or exactly the tokens ``ids`` names; no request is sent.

    ``exempt`` (ids or exact names) and ``sub_accounts`` filter as for ``build_plan``. An
    id in ``ids`` that the tokens do not hold, or that is inactive, is a ``PlanError``: a
    rotation is asked for by name. ``account`` is the session the plan is for (its key id
    and base URL bind the plan); ``source`` names where the tokens came from.
    """
    if as_of.tzinfo is None:
        raise PlanError("as_of must be timezone-aware")
    if (stale_days is None) == (ids is None):
        raise PlanError("a rotate plan chooses by stale_days or by ids, one of them")
    check_days(stale_days, "stale_days")
    wanted = frozenset(ids or ())
    skip, limits = frozenset(exempt), frozenset(sub_accounts)
    age = timedelta(days=stale_days or 0)
    chosen: dict[str, PlanItem] = {}
    seen: dict[str, ApiToken] = {}
    for token in tokens:
        if token.id in wanted:
            seen[token.id] = token
        if token.id in skip or token.name in skip:
            continue
        if limits and token.sub_account_id not in limits:
            continue
        if str(token.status) != TokenStatus.ACTIVE.value:
            continue
        if (ids is not None and token.id in wanted) or (
            stale_days is not None and as_of - token.created_at > age
        ):
            chosen[token.id] = PlanItem.of(token, "rotate")
    _check_ids(wanted, seen)
    return _plan(
        chosen.values(),
        action="rotate",
        as_of=as_of,
        account=account,
        selection={
            "stale_days": stale_days,
            "ids": None if ids is None else len(wanted),
            "exempt": len(skip),
            "sub_accounts": sorted(limits),
            "source": source,
        },
    )


def _check_ids(wanted: frozenset[str], seen: Mapping[str, ApiToken]) -> None:
    missing = wanted - seen.keys()
    if missing:
        raise PlanError(f"no such token: {_shown_ids(missing)}")
    inactive = {i for i, t in seen.items() if str(t.status) != TokenStatus.ACTIVE.value}
    if inactive:
        raise PlanError(f"only active tokens are rotated; inactive: {_shown_ids(inactive)}")


def finished_rotations(journal: Journal) -> dict[str, datetime]:
    """Old token id -> when ``journal`` finished rotating it (a ``done`` ``rotate``)."""
    actions = {item.id: item.action for item in journal.plan.items}
    return {
        record.token_id: record.at
        for record in journal.records
        if _finished_rotation(record, actions)
    }


def _finished_rotation(record: JournalRecord, actions: Mapping[str, str]) -> bool:
    return (
        record.event == "outcome"
        and record.step is None
        and record.result == "done"
        and actions.get(record.token_id) == "rotate"
    )


def build_retire_plan(
    tokens: Iterable[ApiToken],
    *,
    as_of: datetime,
    account: CellcastSession,
    rotated_by: Mapping[str, datetime],
    grace_days: int,
    exempt: Iterable[str] = (),
    sub_accounts: Iterable[str] = (),
    source: str | None = None,
) -> Plan:
    """A ``deactivate`` plan for the old tokens of finished rotations: those in
    ``rotated_by`` (from :func:`finished_rotations`) still active, whose rotation finished at least
    ``grace_days`` before ``as_of``; no request is sent."""
    if as_of.tzinfo is None:
        raise PlanError("as_of must be timezone-aware")
    if grace_days is None:
        raise PlanError("grace_days must be a whole number >= 0")
    check_days(grace_days, "grace_days")
    grace = timedelta(days=grace_days)
    skip, limits = frozenset(exempt), frozenset(sub_accounts)
    chosen: dict[str, PlanItem] = {}
    for token in tokens:
        finished = rotated_by.get(token.id)
        if finished is None or as_of - finished < grace:
            continue
        if token.id in skip or token.name in skip:
            continue
        if limits and token.sub_account_id not in limits:
            continue
        if str(token.status) == TokenStatus.ACTIVE.value:
            chosen[token.id] = PlanItem.of(token, "deactivate")
    return _plan(
        chosen.values(),
        action="deactivate",
        as_of=as_of,
        account=account,
        selection={
            "rotated_by": len(rotated_by),
            "grace_days": grace_days,
            "exempt": len(skip),
            "sub_accounts": sorted(limits),
            "source": source,
        },
    )
