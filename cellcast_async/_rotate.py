"""Rotating a token: a new one under the same name, the secret delivered once (README
"Rotating tokens").

Cellcast has no rotate endpoint (seeds 000-003), and a token's full value comes back only
once, on create (seed 001), so rotation is composed of update, create and delete as a small
state machine of named steps:

    rename   the old token takes a retiring name ("<name> (retired YYYY-MM-DD)"), still active
    create   a new token under the original name, in the same sub-account
    deliver  the new secret goes to the sink, exactly once
    verify   the new token reads back active, under the original name

and, when something goes wrong:

    discard  delete a new token whose secret is unknowable (the create's answer was lost,
             or a restart no longer holds it) or was not delivered
    restore  the old token gets its original name back (the rotation failed)

Every step journals an intent before it acts and an outcome after it, with non-secret data
only (a retiring name, a new token's id, a reason), so that a restart recovers from the last
journaled step and what the server shows (:func:`plan_recovery`, pure). The old token stays
active throughout: a service using it keeps working whatever happens.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import attrs

from ._exceptions import (
    APIError,
    CellcastError,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from ._models import ApiToken, CreatedToken, Secret, TokenStatus

if TYPE_CHECKING:
    from ._pager import Pager

__all__ = [
    "MAX_NAME_LENGTH",
    "Deliver",
    "Delivered",
    "MemoryJournal",
    "Observed",
    "Recovery",
    "RotationError",
    "RotationResult",
    "RotationStep",
    "RotationTarget",
    "StepJournal",
    "StepRecord",
    "TokensLike",
    "observe",
    "plan_recovery",
    "resume_rotation",
    "retiring_names",
    "rotate_token",
]


class TokensLike(Protocol):
    """What a rotation calls: ``cc.tokens``, or the apply engine's budgeted writer."""

    async def get(self, token_id: str) -> ApiToken: ...

    def list_for_sub_account(
        self, sub_account_id: str, *, limit: int = ..., search: str | None = ...
    ) -> Pager[ApiToken]: ...

    async def create(self, name: str, sub_account_id: str) -> CreatedToken: ...

    async def update(
        self, token_id: str, name: str | None = None, status: TokenStatus | str | None = None
    ) -> ApiToken: ...

    async def delete(self, token_id: str) -> None: ...


Deliver = Callable[[CreatedToken], Awaitable[object]]
"""The sink: an async callable that receives the new token, its full value included."""

Delivered = Callable[[str, str], "bool | None"]
"""Whether the sink already holds the secret of (token id, name): True, False, or None
when it cannot tell (a command's sink). Used only by a restart."""

# The seeds state no limit on a token's name and the sandbox enforces none; the names this
# module makes stay within 100 characters, a limit common to name columns, so that a
# retiring name is never the reason a rotation fails (README "Rotating tokens").
MAX_NAME_LENGTH: Final = 100
# Retiring names tried when the first is taken (a second rotation the same day).
_RETIRING_CANDIDATES: Final = 5
# Creates tried when answers are lost: each lost one is found and deleted first.
_MAX_CREATES: Final = 5
_REASON_LIMIT: Final = 300


class RotationStep(str, enum.Enum):
    """A step of a rotation, as its journal names it (README "Rotating tokens")."""

    RENAME = "rename"
    CREATE = "create"
    DISCARD = "discard"
    DELIVER = "deliver"
    VERIFY = "verify"
    RESTORE = "restore"

    def __str__(self) -> str:
        return self.value


Phase = Literal["intent", "outcome"]
Result = Literal["ok", "taken", "lost", "failed", "gone"]


@attrs.frozen
class StepRecord:
    """One journal entry of a rotation: the intent before a step, or its outcome after.

    ``data`` holds non-secret strings only: ``retiring_name``, ``new_id``, ``result``
    (``ok``, ``taken``, ``lost``, ``failed``, ``gone``) and ``reason``.
    """

    step: RotationStep
    phase: Phase
    data: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def result(self) -> str:
        return self.data.get("result", "ok")


class StepJournal(Protocol):
    """Where a rotation records its steps; a journal's ``record`` returns once the entry
    is durable (the apply engine fsyncs it)."""

    async def record(self, record: StepRecord) -> None: ...


@attrs.define
class MemoryJournal:
    """A :class:`StepJournal` in memory: what ``cc.tokens.rotate`` uses, and the tests."""

    records: list[StepRecord] = attrs.field(factory=list)

    async def record(self, record: StepRecord) -> None:
        self.records.append(record)


@attrs.frozen
class RotationTarget:
    """What one rotation is about: the old token, its name and sub-account, and the day
    that names its retiring name."""

    old_token_id: str
    name: str
    sub_account_id: str
    day: date


@attrs.frozen
class RotationResult:
    """A finished rotation. It holds no secret: the new value went to the sink only.

    ``retiring_name`` is the old token's name now (still active, to retire after a grace
    period); ``discarded`` the ids of new tokens deleted on the way because their secret
    was unknowable (a create whose answer was lost).
    """

    old_token_id: str
    new_token_id: str
    name: str
    retiring_name: str
    sub_account_id: str
    new_token: ApiToken
    discarded: tuple[str, ...] = ()


class RotationError(CellcastError):
    """A rotation that could not complete.

    ``step`` names where it failed, ``reason`` says why (never a secret). ``restored`` is
    True when the old token has its original name (it was never renamed, or got it back);
    ``new_token_id`` names a new token left behind (None: there is none). The old token
    stays active in every case.
    """

    def __init__(
        self,
        message: str,
        *,
        token_id: str,
        step: RotationStep,
        reason: str,
        restored: bool,
        new_token_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.token_id = token_id
        self.step = step
        self.reason = reason
        self.restored = restored
        self.new_token_id = new_token_id


def retiring_names(name: str, day: date) -> Iterator[str]:
    """The retiring names to try for ``name``, best first, each within
    :data:`MAX_NAME_LENGTH` characters: ``"<name> (retired 2026-12-04)"``, then with
    ``#2``, ``#3``... for a name rotated twice the same day."""
    for number in range(1, _RETIRING_CANDIDATES + 1):
        tag = "" if number == 1 else f" #{number}"
        suffix = f" (retired {day.isoformat()}{tag})"
        # Stripped: the server strips names (seed 002), so a cut before a space would
        # read back as another name.
        head = name[: MAX_NAME_LENGTH - len(suffix)].rstrip()
        yield f"{head}{suffix}"


def _reason(exc: BaseException, secret: Secret | None = None) -> str:
    """``exc`` as a journal or an error may hold it: its class and message, the secret
    (if any) masked, cut short."""
    text = f"{type(exc).__name__}: {exc}"
    if secret is not None:
        value = secret.reveal()
        if value:
            text = text.replace(value, secret.masked)
    return _cut(text)


def _cut(text: str) -> str:
    return text if len(text) <= _REASON_LIMIT else text[: _REASON_LIMIT - 3] + "..."


def _definite(exc: CellcastError) -> bool:
    """A create the server refused for sure (400, 401, 403, 404...): nothing was made.

    A 5xx, a lost or unreadable answer may come after the token was made (README
    "Reliability", "No double create"); a 429 was not applied, and is tried again.
    """
    return isinstance(exc, APIError) and not isinstance(exc, ServerError | RateLimitError)


def _name_taken(exc: CellcastError) -> bool:
    # seed 002, 400 "Duplicate Token Name": "Token name already exists for this sub-account".
    return (
        isinstance(exc, APIError)
        and exc.status_code == 400
        and "already exists" in str(exc.detail or "")
    )


# ----------------------------------------------------------------------------- running


@attrs.define
class _State:
    """One rotation under way. ``new`` holds the secret, in memory only, until delivered."""

    target: RotationTarget
    retiring_name: str | None = None
    new: CreatedToken | None = None
    new_id: str | None = None
    discard_id: str | None = None
    after_discard: RotationStep = RotationStep.CREATE
    failure: tuple[RotationStep, str] | None = None
    creates: int = 0
    renamed: bool = False
    restored: bool = False
    verified: ApiToken | None = None
    discarded: list[str] = attrs.field(factory=list)


@attrs.frozen
class _Context:
    tokens: TokensLike
    journal: StepJournal
    deliver: Deliver

    async def intent(self, step: RotationStep, **data: str) -> None:
        await self.journal.record(StepRecord(step, "intent", data))

    async def outcome(self, step: RotationStep, result: Result = "ok", **data: str) -> None:
        await self.journal.record(StepRecord(step, "outcome", {"result": result, **data}))


StepFunction = Callable[[_Context, _State], Awaitable["RotationStep | None"]]


async def _read(tokens: TokensLike, token_id: str) -> ApiToken | None:
    try:
        return await tokens.get(token_id)
    except NotFoundError:
        return None


async def _holder(tokens: TokensLike, target: RotationTarget) -> ApiToken | None:
    """The token other than the old one under the original name in its sub-account."""
    pager = tokens.list_for_sub_account(target.sub_account_id, limit=100, search=target.name)
    async for token in pager:
        if token.name == target.name and token.id != target.old_token_id:
            return token
    return None


async def _rename(ctx: _Context, state: _State) -> RotationStep | None:
    target = state.target
    for candidate in retiring_names(target.name, target.day):
        await ctx.intent(RotationStep.RENAME, retiring_name=candidate)
        try:
            await ctx.tokens.update(target.old_token_id, name=candidate)
        except CellcastError as exc:
            if _name_taken(exc):
                await ctx.outcome(RotationStep.RENAME, "taken", reason=_reason(exc))
                continue
            # PUT is retried; after the last retry its answer may still have been lost
            # with the change made: the server says.
            current = await _read(ctx.tokens, target.old_token_id)
            if current is None or current.name != candidate:
                reason = _reason(exc)
                await ctx.outcome(RotationStep.RENAME, "failed", reason=reason)
                state.failure, state.restored = (RotationStep.RENAME, reason), True
                return None
        state.retiring_name, state.renamed = candidate, True
        await ctx.outcome(RotationStep.RENAME)
        return RotationStep.CREATE
    reason = f"no free retiring name (tried {_RETIRING_CANDIDATES})"
    state.failure, state.restored = (RotationStep.RENAME, reason), True
    return None


async def _create(ctx: _Context, state: _State) -> RotationStep | None:
    target = state.target
    if state.creates >= _MAX_CREATES:
        state.failure = (RotationStep.CREATE, f"no create answered in {_MAX_CREATES} attempts")
        return RotationStep.RESTORE
    state.creates += 1
    await ctx.intent(RotationStep.CREATE)
    try:
        created = await ctx.tokens.create(name=target.name, sub_account_id=target.sub_account_id)
    except CellcastError as exc:
        reason = _reason(exc)
        if _definite(exc):
            await ctx.outcome(RotationStep.CREATE, "failed", reason=reason)
            state.failure = (RotationStep.CREATE, reason)
            return RotationStep.RESTORE
        # The token may exist, but its secret is unknowable: find it by name (README
        # "No double create"), delete it, create again. Never two new tokens.
        await ctx.outcome(RotationStep.CREATE, "lost", reason=reason)
        found = await _holder(ctx.tokens, target)
        if found is None:
            return RotationStep.CREATE
        state.discard_id, state.after_discard = found.id, RotationStep.CREATE
        return RotationStep.DISCARD
    state.new, state.new_id = created, created.id
    try:
        await ctx.outcome(RotationStep.CREATE, new_id=created.id)
    except ValueError as exc:  # the journal cannot hold the id the server answered
        return await _unjournaled(ctx, state, created, exc)
    return RotationStep.DELIVER


async def _unjournaled(
    ctx: _Context, state: _State, created: CreatedToken, exc: ValueError
) -> RotationStep:
    """A new token whose id no journal line can hold (a hostile or broken server): it
    cannot be recovered after a kill, so it is deleted at once, before anything else is
    journaled, and the rotation rolls back (the old token gets its name back)."""
    state.new, state.new_id = None, None
    reason = (
        f"the server answered the create with an id of {len(created.id):,} characters,"
        f" which the journal cannot hold ({_reason(exc)})"
    )
    try:
        await ctx.tokens.delete(created.id)
    except NotFoundError:
        pass
    except CellcastError as error:
        reason = f"{reason}; deleting that token failed: {_reason(error)}"
    reason = _cut(reason)
    await ctx.outcome(RotationStep.CREATE, "failed", reason=reason)
    state.failure = (RotationStep.CREATE, reason)
    return RotationStep.RESTORE


async def _discard(ctx: _Context, state: _State) -> RotationStep | None:
    token_id = state.discard_id
    assert token_id is not None
    await ctx.intent(RotationStep.DISCARD, new_id=token_id)
    result: Result = "ok"
    try:
        await ctx.tokens.delete(token_id)
    except NotFoundError:
        result = "gone"
    state.discarded.append(token_id)
    if state.new_id == token_id:
        state.new, state.new_id = None, None
    state.discard_id = None
    await ctx.outcome(RotationStep.DISCARD, result, new_id=token_id)
    return state.after_discard


async def _deliver(ctx: _Context, state: _State) -> RotationStep | None:
    new, new_id = state.new, state.new_id
    assert new is not None
    assert new_id is not None
    await ctx.intent(RotationStep.DELIVER, new_id=new_id)
    try:
        await ctx.deliver(new)
    except Exception as exc:  # the sink's own failure, whatever it is
        reason = _reason(exc, new.token)
        await ctx.outcome(RotationStep.DELIVER, "failed", new_id=new_id, reason=reason)
        state.failure = (RotationStep.DELIVER, reason)
        state.discard_id, state.after_discard = new_id, RotationStep.RESTORE
        return RotationStep.DISCARD
    finally:
        state.new = None  # delivered or not, this process keeps no copy
    await ctx.outcome(RotationStep.DELIVER, new_id=new_id)
    return RotationStep.VERIFY


def _verify_problem(token: ApiToken, target: RotationTarget) -> str | None:
    if token.status != TokenStatus.ACTIVE:
        return f"the new token reads back {str(token.status)!r}, not active"
    if token.name != target.name:
        return f"the new token reads back named {token.name!r}, not {target.name!r}"
    if token.sub_account_id not in (None, target.sub_account_id):
        return f"the new token reads back in sub-account {token.sub_account_id!r}"
    return None


async def _verify(ctx: _Context, state: _State) -> RotationStep | None:
    new_id = state.new_id
    assert new_id is not None
    await ctx.intent(RotationStep.VERIFY, new_id=new_id)
    token = await _read(ctx.tokens, new_id)
    problem = "the new token is gone" if token is None else _verify_problem(token, state.target)
    if problem is not None:
        await ctx.outcome(RotationStep.VERIFY, "failed", new_id=new_id, reason=problem)
        state.failure = (RotationStep.VERIFY, problem)
        return None
    state.verified = token
    await ctx.outcome(RotationStep.VERIFY, new_id=new_id)
    return None


async def _restore(ctx: _Context, state: _State) -> RotationStep | None:
    target = state.target
    await ctx.intent(RotationStep.RESTORE)
    result: Result = "ok"
    try:
        await ctx.tokens.update(target.old_token_id, name=target.name)
    except NotFoundError:
        result = "gone"
    state.restored, state.renamed = True, False
    await ctx.outcome(RotationStep.RESTORE, result)
    return None


_STEPS: Final[Mapping[RotationStep, StepFunction]] = {
    RotationStep.RENAME: _rename,
    RotationStep.CREATE: _create,
    RotationStep.DISCARD: _discard,
    RotationStep.DELIVER: _deliver,
    RotationStep.VERIFY: _verify,
    RotationStep.RESTORE: _restore,
}


async def _undo_quietly(ctx: _Context, state: _State) -> None:
    """After an unexpected failure before delivery: delete the undelivered new token and
    give the old one its name back, as far as the server lets us. What fails here stays
    in the journal for a restart."""
    try:
        if state.new_id is not None:
            state.discard_id, state.after_discard = state.new_id, RotationStep.RESTORE
            await _discard(ctx, state)
        if state.renamed:
            await _restore(ctx, state)
    except (CellcastError, ValueError):
        pass


async def _drive(ctx: _Context, state: _State, step: RotationStep | None) -> RotationResult:
    delivered = False
    current = step or RotationStep.RENAME
    try:
        while step is not None:
            delivered = delivered or step is RotationStep.VERIFY
            current = step
            step = await _STEPS[step](ctx, state)
    except (CellcastError, ValueError) as exc:
        reason = _reason(exc)
        if state.failure is not None:  # failed while undoing an earlier failure: both said
            first_step, first_reason = state.failure
            current, reason = first_step, f"{first_reason}; then {current} failed: {reason}"
        if not delivered:
            await _undo_quietly(ctx, state)
        raise _error(state, current, reason) from exc
    if state.failure is not None:
        raise _error(state, *state.failure)
    if state.verified is None:
        raise _error(state, current, "the rotation ended without a verified token")
    assert state.verified is not None
    assert state.new_id is not None
    assert state.retiring_name is not None
    target = state.target
    return RotationResult(
        old_token_id=target.old_token_id,
        new_token_id=state.new_id,
        name=target.name,
        retiring_name=state.retiring_name,
        sub_account_id=target.sub_account_id,
        new_token=state.verified,
        discarded=tuple(state.discarded),
    )


def _error(state: _State, step: RotationStep, reason: str) -> RotationError:
    target = state.target
    restored = state.restored or not state.renamed
    return RotationError(
        f"rotation of token {target.old_token_id!r} failed at {step}: {reason}",
        token_id=target.old_token_id,
        step=step,
        reason=reason,
        restored=restored,
        new_token_id=state.new_id,
    )


def _as_of_day(as_of: datetime | None) -> date:
    if as_of is None:
        return datetime.now(timezone.utc).date()
    if not isinstance(as_of, datetime) or as_of.tzinfo is None:
        raise ValueError("as_of must be a timezone-aware datetime")
    return as_of.astimezone(timezone.utc).date()


async def rotate_token(
    tokens: TokensLike,
    token_id: str,
    *,
    deliver: Deliver,
    as_of: datetime | None = None,
    journal: StepJournal | None = None,
) -> RotationResult:
    """``cc.tokens.rotate``: see :meth:`TokensLike.rotate`."""
    if not callable(deliver):
        raise ValueError("deliver must be an async callable taking the new CreatedToken")
    day = _as_of_day(as_of)
    old = await tokens.get(token_id)
    if old.sub_account_id is None:
        raise RotationError(
            f"rotation of token {token_id!r} failed at {RotationStep.RENAME}: "
            "the server names no sub-account for it",
            token_id=token_id,
            step=RotationStep.RENAME,
            reason="the server names no sub-account for it",
            restored=True,
        )
    target = RotationTarget(old.id, old.name, old.sub_account_id, day)
    ctx = _Context(tokens, journal if journal is not None else MemoryJournal(), deliver)
    return await _drive(ctx, _State(target), RotationStep.RENAME)


# ----------------------------------------------------------------------------- recovery


@attrs.frozen
class Observed:
    """What the server (and the sink) show at a restart: the old token (None: gone), the
    token other than it under the original name (None: none), and whether the sink holds
    the journaled new token's secret (None: it cannot tell, or nothing to ask)."""

    old: ApiToken | None
    holder: ApiToken | None = None
    delivered: bool | None = None


@attrs.frozen
class Recovery:
    """Where a restarted rotation goes on: ``step`` (None: nothing left to do), with what
    the journal and the server told. ``confirm`` is a step the server or the sink showed
    was done though its outcome was never journaled: journaled first, then on."""

    step: RotationStep | None
    retiring_name: str | None = None
    new_id: str | None = None
    discard_id: str | None = None
    after_discard: RotationStep = RotationStep.CREATE
    failure: tuple[RotationStep, str] | None = None
    confirm: RotationStep | None = None
    renamed: bool = False


@attrs.define
class _Facts:
    """What a rotation's journal says, folded from its records in order."""

    retiring_name: str | None = None
    renamed: bool = False
    create_pending: bool = False
    new_id: str | None = None
    deliver_pending: bool = False
    delivered: bool = False
    discard_pending: str | None = None
    failure: tuple[RotationStep, str] | None = None
    finished: bool = False

    def fold(self, record: StepRecord) -> None:
        _FOLDS[record.step](self, record)


def _fold_rename(facts: _Facts, record: StepRecord) -> None:
    if record.phase == "intent":
        facts.retiring_name, facts.renamed = record.data.get("retiring_name"), False
    elif record.result == "ok":
        facts.renamed = True
    elif record.result == "failed":
        facts.failure = (RotationStep.RENAME, record.data.get("reason", ""))
        facts.finished = True


def _fold_create(facts: _Facts, record: StepRecord) -> None:
    if record.phase == "intent":
        facts.create_pending = True
    elif record.result == "ok":
        facts.create_pending, facts.new_id = False, record.data.get("new_id")
    elif record.result == "failed":
        facts.create_pending = False
        facts.failure = (RotationStep.CREATE, record.data.get("reason", ""))


def _fold_discard(facts: _Facts, record: StepRecord) -> None:
    token_id = record.data.get("new_id")
    if record.phase == "intent":
        facts.discard_pending = token_id
        return
    facts.discard_pending = None
    if token_id is not None and token_id == facts.new_id:
        facts.new_id, facts.deliver_pending = None, False


def _fold_deliver(facts: _Facts, record: StepRecord) -> None:
    if record.phase == "intent":
        facts.deliver_pending = True
    elif record.result == "ok":
        facts.deliver_pending, facts.delivered = False, True
    else:
        facts.deliver_pending = False
        facts.failure = (RotationStep.DELIVER, record.data.get("reason", ""))


def _fold_verify(facts: _Facts, record: StepRecord) -> None:
    if record.phase == "outcome":
        facts.finished = True
        if record.result == "failed":
            facts.failure = (RotationStep.VERIFY, record.data.get("reason", ""))


def _fold_restore(facts: _Facts, record: StepRecord) -> None:
    if record.phase == "outcome":
        facts.finished = True


_FOLDS: Final[Mapping[RotationStep, Callable[[_Facts, StepRecord], None]]] = {
    RotationStep.RENAME: _fold_rename,
    RotationStep.CREATE: _fold_create,
    RotationStep.DISCARD: _fold_discard,
    RotationStep.DELIVER: _fold_deliver,
    RotationStep.VERIFY: _fold_verify,
    RotationStep.RESTORE: _fold_restore,
}


def facts_of(records: Sequence[StepRecord]) -> _Facts:
    facts = _Facts()
    for record in records:
        facts.fold(record)
    return facts


def _rollback(facts: _Facts, observed: Observed) -> Recovery:
    """A failure was journaled: finish undoing it (discard the new token, restore)."""
    base = Recovery(
        RotationStep.RESTORE,
        retiring_name=facts.retiring_name,
        failure=facts.failure,
        renamed=True,
    )
    pending = facts.discard_pending or facts.new_id
    if pending is not None:
        return attrs.evolve(
            base,
            step=RotationStep.DISCARD,
            new_id=facts.new_id,
            discard_id=pending,
            after_discard=RotationStep.RESTORE,
        )
    return base


def _unrenamed(target: RotationTarget, facts: _Facts, observed: Observed) -> Recovery:
    """A rename was journaled without its outcome: did it happen?"""
    old = observed.old
    if old is not None and old.name == facts.retiring_name:
        return Recovery(
            RotationStep.CREATE,
            retiring_name=facts.retiring_name,
            confirm=RotationStep.RENAME,
            renamed=True,
        )
    if old is not None and old.name == target.name:
        return Recovery(RotationStep.RENAME)
    reason = (
        "the old token is gone"
        if old is None
        else f"the old token was renamed to {old.name!r} by someone else"
    )
    return Recovery(None, failure=(RotationStep.RENAME, reason))


def plan_recovery(
    target: RotationTarget, records: Sequence[StepRecord], observed: Observed
) -> Recovery:
    """Where a rotation killed at any moment goes on, from its journal and the server.

    Pure. The rules (README "Rotating tokens"):

    - nothing journaled: from the start; a final outcome journaled: nothing to do;
    - a failure journaled: finish the rollback (delete the new token, restore the name);
    - the secret delivered: verify;
    - a new token whose delivery never finished: if the sink shows it holds it, verify;
      otherwise its secret is lost with the killed process: delete it, create again;
    - a create without an answer: a token under the original name is the one it made,
      secret unknowable: delete it, create again; none: create again;
    - a rename without an answer: the old token's name says whether it happened.
    """
    facts = facts_of(records)
    if facts.finished:
        return Recovery(
            None, retiring_name=facts.retiring_name, new_id=facts.new_id, failure=facts.failure
        )
    if facts.retiring_name is None:
        return Recovery(RotationStep.RENAME)
    if facts.failure is not None:
        return _rollback(facts, observed)
    known = Recovery(
        RotationStep.CREATE, retiring_name=facts.retiring_name, new_id=facts.new_id, renamed=True
    )
    if facts.delivered:
        return attrs.evolve(known, step=RotationStep.VERIFY)
    if facts.discard_pending is not None:
        return attrs.evolve(known, step=RotationStep.DISCARD, discard_id=facts.discard_pending)
    if facts.new_id is not None:
        if facts.deliver_pending and observed.delivered:
            return attrs.evolve(known, step=RotationStep.VERIFY, confirm=RotationStep.DELIVER)
        return attrs.evolve(known, step=RotationStep.DISCARD, discard_id=facts.new_id)
    if facts.create_pending and observed.holder is not None:
        return attrs.evolve(known, step=RotationStep.DISCARD, discard_id=observed.holder.id)
    if facts.create_pending or facts.renamed:
        return known
    return _unrenamed(target, facts, observed)


async def observe(
    tokens: TokensLike,
    target: RotationTarget,
    records: Sequence[StepRecord],
    delivered: Delivered | None = None,
) -> Observed:
    """What :func:`plan_recovery` needs from the server and the sink (reads only)."""
    facts = facts_of(records)
    if facts.finished or facts.retiring_name is None:
        return Observed(old=None)
    old = await _read(tokens, target.old_token_id)
    holder = await _holder(tokens, target) if facts.create_pending else None
    done: bool | None = None
    if facts.new_id is not None and facts.deliver_pending and delivered is not None:
        done = delivered(facts.new_id, target.name)
    return Observed(old=old, holder=holder, delivered=done)


async def resume_rotation(
    tokens: TokensLike,
    target: RotationTarget,
    records: Sequence[StepRecord],
    *,
    journal: StepJournal,
    deliver: Deliver,
    delivered: Delivered | None = None,
) -> RotationResult:
    """Run a rotation from wherever its journal ``records`` left it (the start, for none).

    Returns the result (for a rotation the journal shows finished, read back again);
    raises :class:`RotationError` when it cannot complete. New steps go to ``journal``.
    """
    recovery = plan_recovery(target, records, await observe(tokens, target, records, delivered))
    ctx = _Context(tokens, journal, deliver)
    if recovery.confirm is not None:
        await ctx.outcome(recovery.confirm, **_confirmed_data(recovery))
    state = _State(
        target,
        retiring_name=recovery.retiring_name,
        new_id=recovery.new_id,
        discard_id=recovery.discard_id,
        after_discard=recovery.after_discard,
        failure=recovery.failure,
        renamed=recovery.renamed,
    )
    if recovery.step is None:
        if recovery.failure is not None or recovery.new_id is None:
            raise _error(state, *(recovery.failure or (RotationStep.VERIFY, "nothing to verify")))
        # Finished before a restart: read back again for the result.
        state.verified = await _read(tokens, recovery.new_id)
        if state.verified is None:
            raise _error(state, RotationStep.VERIFY, "the new token is gone")
        state.restored = False
    return await _drive(ctx, state, recovery.step)


def _confirmed_data(recovery: Recovery) -> dict[str, Any]:
    if recovery.confirm is RotationStep.DELIVER and recovery.new_id is not None:
        return {"new_id": recovery.new_id}
    return {}
