"""``cc.tokens.rotate`` against the sandbox, and a rotation killed at every step and resumed.

What holds after every test (README "Rotating tokens"): one active token under the
original name in the sub-account, the old one renamed and active (or, for a failed
rotation, back under its name and active), the sink holding one secret per rotated token,
and no secret anywhere but the sink.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Sequence
from datetime import datetime, timezone

import pytest

from cellcast_async import (
    ApiToken,
    CellcastSession,
    CreatedToken,
    RotationError,
    RotationResult,
    RotationStep,
    TokenStatus,
)
from cellcast_async._rotate import (
    MAX_NAME_LENGTH,
    MemoryJournal,
    RotationTarget,
    StepRecord,
    resume_rotation,
    retiring_names,
)
from cellcast_async.sandbox import Faults, Sandbox

from .._rotation import FULL_SECRET, RETIRED, Sink, assert_rotated, by_name

AS_OF = datetime(2026, 12, 4, 9, 30, tzinfo=timezone.utc)


async def some_tokens(cc: CellcastSession, n: int) -> list[ApiToken]:
    tokens = await cc.tokens.list(status="active", limit=50).collect()
    return tokens[:n]


class TestRotate:
    """One token rotated: renamed, replaced, delivered once, verified."""

    async def test_rotates(self, cellcast_session: CellcastSession) -> None:
        """The old token keeps working under its retiring name; the sink gets the secret."""
        cc = cellcast_session
        (old,) = await some_tokens(cc, 1)
        sink = Sink()

        result = await cc.tokens.rotate(old.id, deliver=sink, as_of=AS_OF)

        assert isinstance(result, RotationResult)
        new = await assert_rotated(cc, old, sink, old.name + RETIRED)
        assert sink.calls == 1
        assert result.new_token_id == new.id
        assert result.old_token_id == old.id
        assert result.retiring_name == old.name + RETIRED
        assert result.name == old.name
        assert result.sub_account_id == old.sub_account_id
        assert result.discarded == ()
        assert not FULL_SECRET.search(repr(result))

    async def test_second_rotation_same_day(self, cellcast_session: CellcastSession) -> None:
        """Rotated twice the same day: the second retiring name takes a number."""
        cc = cellcast_session
        (old,) = await some_tokens(cc, 1)
        sink = Sink()
        await cc.tokens.rotate(old.id, deliver=sink, as_of=AS_OF)
        (middle,) = await by_name(cc, old.sub_account_id or "", old.name)

        result = await cc.tokens.rotate(middle.id, deliver=sink, as_of=AS_OF)

        assert result.retiring_name == f"{old.name} (retired 2026-12-04 #2)"
        await assert_rotated(cc, middle, sink, retiring=result.retiring_name)

    async def test_long_name(
        self, cellcast_session: CellcastSession, cellcast_sandbox: Sandbox
    ) -> None:
        """A name near the length limit gets a retiring name within it."""
        cc = cellcast_session
        sub = cellcast_sandbox.sub_account_ids[0]
        long = await cc.tokens.create(name="x" * 95 + " tail", sub_account_id=sub)
        sink = Sink()

        result = await cc.tokens.rotate(long.id, deliver=sink, as_of=AS_OF)

        assert len(result.retiring_name) <= MAX_NAME_LENGTH
        assert result.retiring_name.endswith(RETIRED)
        assert result.retiring_name == "x" * (MAX_NAME_LENGTH - len(RETIRED)) + RETIRED

    async def test_naive_as_of(
        self, cellcast_session: CellcastSession, cellcast_sandbox: Sandbox
    ) -> None:
        """A naive ``as_of`` is misuse: ValueError, nothing sent."""
        with pytest.raises(ValueError, match="as_of must be a timezone-aware datetime"):
            await cellcast_session.tokens.rotate("abc", deliver=Sink(), as_of=datetime(2026, 12, 4))
        assert cellcast_sandbox.requests == []


class TestLostCreate:
    """A create whose answer is lost: found by name, deleted, made again; never two."""

    async def test_dropped_answer(
        self, cellcast_session: CellcastSession, cellcast_sandbox: Sandbox
    ) -> None:
        """The POST is applied, its answer dropped: the token it made is deleted."""
        cc = cellcast_session
        (old,) = await some_tokens(cc, 1)
        cellcast_sandbox.reset_requests()
        # 1 GET old, 2 PUT rename, 3 POST create: dropped after it is applied.
        cellcast_sandbox.script({3: "drop"})
        sink = Sink()

        result = await cc.tokens.rotate(old.id, deliver=sink, as_of=AS_OF)

        assert len(result.discarded) == 1
        assert result.discarded[0] != result.new_token_id
        await assert_rotated(cc, old, sink, old.name + RETIRED)
        assert sink.calls == 1
        posts = [r for r in cellcast_sandbox.requests if r.method == "POST"]
        deletes = [r for r in cellcast_sandbox.requests if r.method == "DELETE"]
        assert len(posts) == 2
        assert [d.path.rsplit("/", 1)[1] for d in deletes] == list(result.discarded)

    async def test_server_error(
        self, cellcast_session: CellcastSession, cellcast_sandbox: Sandbox
    ) -> None:
        """A 500 on the POST (nothing made): none found by name, created again."""
        cc = cellcast_session
        (old,) = await some_tokens(cc, 1)
        cellcast_sandbox.reset_requests()
        cellcast_sandbox.script({3: "500"})
        sink = Sink()

        result = await cc.tokens.rotate(old.id, deliver=sink, as_of=AS_OF)

        assert result.discarded == ()
        await assert_rotated(cc, old, sink, old.name + RETIRED)
        assert not [r for r in cellcast_sandbox.requests if r.method == "DELETE"]


class TestDeliveryFails:
    """The sink fails: the new token is deleted, the old one gets its name back."""

    async def test_rolled_back(
        self, cellcast_session: CellcastSession, cellcast_sandbox: Sandbox
    ) -> None:
        """RotationError(step=deliver), the old active under its name, no other token."""
        cc = cellcast_session
        (old,) = await some_tokens(cc, 1)
        assert old.sub_account_id is not None
        before = cellcast_sandbox.token_count()
        sink = Sink(fail=OSError("vault is sealed"))

        with pytest.raises(RotationError) as caught:
            await cc.tokens.rotate(old.id, deliver=sink, as_of=AS_OF)

        error = caught.value
        assert error.step is RotationStep.DELIVER
        assert error.reason == "OSError: vault is sealed"
        assert error.restored is True
        assert error.new_token_id is None
        assert error.token_id == old.id
        assert str(error) == (
            f"rotation of token {old.id!r} failed at deliver: OSError: vault is sealed"
        )
        again = await cc.tokens.get(old.id)
        assert (again.name, again.status) == (old.name, TokenStatus.ACTIVE)
        assert [t.id for t in await by_name(cc, old.sub_account_id, old.name)] == [old.id]
        assert cellcast_sandbox.token_count() == before

    async def test_secret_never_in_the_error(self, cellcast_session: CellcastSession) -> None:
        """A sink whose own error quotes the secret: the reason masks it."""
        cc = cellcast_session
        (old,) = await some_tokens(cc, 1)
        seen: list[str] = []

        async def leaky(token: CreatedToken) -> None:
            seen.append(token.token.reveal())
            raise ValueError(f"rejected {token.token.reveal()}")

        with pytest.raises(RotationError) as caught:
            await cc.tokens.rotate(old.id, deliver=leaky, as_of=AS_OF)

        (secret,) = seen
        error = caught.value
        for text in (
            str(error),
            repr(error),
            error.reason,
            repr(pickle.loads(pickle.dumps(error))),
        ):
            assert secret not in text
        assert error.reason == f"ValueError: rejected ****{secret[-4:]}"


@pytest.mark.cellcast_sandbox(faults=Faults(every=4, mutations_only=True))
async def test_under_faults(cellcast_session: CellcastSession) -> None:
    """Every 4th write fails (answers lost after the change, 5xx, 429): ten rotations
    each end with one active token under the name and one delivered secret."""
    cc = cellcast_session
    olds = await some_tokens(cc, 10)
    sink = Sink()

    for old in olds:
        await cc.tokens.rotate(old.id, deliver=sink, as_of=AS_OF)

    for old in olds:
        await assert_rotated(cc, old, sink, old.name + RETIRED)
    assert len(sink.received) == len(set(sink.received.values())) == 10


# --------------------------------------------------------------------------- kills


class Killed(BaseException):
    """A SIGKILL, as far as the rotation can tell: nothing after it runs."""


class KillingJournal(MemoryJournal):
    """Kills the run at its ``at``-th record, before the record lands."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    async def record(self, record: StepRecord) -> None:
        if len(self.records) + 1 == self.at:
            raise Killed
        await super().record(record)


async def kill_and_resume(
    cc: CellcastSession, old: ApiToken, at: int, *, sink_can_tell: bool
) -> tuple[Sink, Sequence[StepRecord]]:
    assert old.sub_account_id is not None
    target = RotationTarget(old.id, old.name, old.sub_account_id, AS_OF.date())
    sink = Sink()
    journal = KillingJournal(at)
    with contextlib.suppress(Killed):
        await resume_rotation(cc.tokens, target, [], journal=journal, deliver=sink)
    delivered = sink.delivered if sink_can_tell else None
    rest = MemoryJournal(list(journal.records))
    await resume_rotation(
        cc.tokens, target, list(journal.records), journal=rest, deliver=sink, delivered=delivered
    )
    # A third start finds nothing to do: it reads the result back, and writes nothing.
    third = MemoryJournal()
    again = await resume_rotation(cc.tokens, target, rest.records, journal=third, deliver=sink)
    assert again.old_token_id == old.id
    assert third.records == []
    return sink, rest.records


@pytest.mark.cellcast_sandbox(faults=Faults(every=4, mutations_only=True))
async def test_killed_at_every_step(cellcast_session: CellcastSession) -> None:
    """Killed before each journal record in turn (before a step, or after its write and
    before its outcome), then started again: it ends rotated, the sink holding exactly
    one secret, the one of the token now under the name."""
    cc = cellcast_session
    olds = await some_tokens(cc, 12)
    for at, old in enumerate(olds, start=1):
        sink, records = await kill_and_resume(cc, old, at, sink_can_tell=True)
        new = await assert_rotated(cc, old, sink, old.name + RETIRED)
        assert list(sink.received) == [new.id]
        assert records[-1] == StepRecord(
            RotationStep.VERIFY, "outcome", {"result": "ok", "new_id": new.id}
        )
        assert not any(FULL_SECRET.search(repr(r)) for r in records)


async def test_killed_during_delivery_sink_cannot_tell(
    cellcast_session: CellcastSession,
) -> None:
    """Killed after the sink took the secret and before the journal said so, with a sink
    that cannot tell (a command): the undelivered-as-far-as-known token is deleted and a
    new one delivered; the first secret belongs to a token that no longer exists."""
    cc = cellcast_session
    (old,) = await some_tokens(cc, 1)
    # Records: rename intent, outcome, create intent, outcome, deliver intent, outcome (6).
    sink, _ = await kill_and_resume(cc, old, 6, sink_can_tell=False)
    new = await assert_rotated(cc, old, sink, old.name + RETIRED)
    assert len(sink.received) == 2
    (first,) = set(sink.received) - {new.id}
    with pytest.raises(Exception, match="404"):
        await cc.tokens.get(first)


def test_retiring_names_stay_short() -> None:
    """Every candidate is within the limit, has no trailing space before its suffix, and
    the candidates differ."""
    names = list(retiring_names("y" * 70 + " " * 30 + "z", AS_OF.date()))
    assert len(set(names)) == len(names) == 5
    assert all(len(n) <= MAX_NAME_LENGTH for n in names)
    assert names[0] == "y" * 70 + RETIRED
    assert names[1] == "y" * 70 + " (retired 2026-12-04 #2)"


class Intruder(MemoryJournal):
    """Right after the rename lands, someone else takes the original name."""

    def __init__(self, cc: CellcastSession, old: ApiToken) -> None:
        super().__init__()
        self.cc, self.old = cc, old

    async def record(self, record: StepRecord) -> None:
        await super().record(record)
        if record == StepRecord(RotationStep.RENAME, "outcome", {"result": "ok"}):
            assert self.old.sub_account_id is not None
            await self.cc.tokens.create(name=self.old.name, sub_account_id=self.old.sub_account_id)


async def test_create_refused(cellcast_session: CellcastSession) -> None:
    """A 400 on the create (the name taken meanwhile) stops the rotation; the old token's
    name cannot come back either (the intruder holds it): both said, the old one active."""
    cc = cellcast_session
    (old,) = await some_tokens(cc, 1)
    assert old.sub_account_id is not None
    target = RotationTarget(old.id, old.name, old.sub_account_id, AS_OF.date())
    sink = Sink()

    with pytest.raises(RotationError) as caught:
        await resume_rotation(cc.tokens, target, [], journal=Intruder(cc, old), deliver=sink)

    error = caught.value
    assert error.step is RotationStep.CREATE
    assert error.reason.startswith("BadRequestError: POST /api/v1/apiClient/token -> 400")
    assert "; then restore failed: BadRequestError: PUT" in error.reason
    assert error.restored is False
    assert sink.calls == 0
    again = await cc.tokens.get(old.id)
    assert (again.name, again.status) == (old.name + RETIRED, TokenStatus.ACTIVE)
