"""Rotation as an action of the plan -> apply engine (README "Rotating tokens"): a rotate
plan chooses without writing, apply rotates each token with every step journaled, resumes,
and the retire plan picks the old tokens once their grace period is over."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from cellcast_async import CellcastSession, Journal, PlanError, apply_plan
from cellcast_async._rotate_plan import build_retire_plan, build_rotate_plan, finished_rotations
from cellcast_async.sandbox import Faults, Sandbox

from .._rotation import FULL_SECRET, Sink, assert_rotated
from ._support import FAST, aged_sandbox, run_all, tokens_of


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    """This file's sandbox fails every fourth write (``cc`` is conftest's, on this one)."""
    async with aged_sandbox(faults=Faults(every=4, mutations_only=True)) as sandbox:
        yield sandbox


class TestRotatePlan:
    """build_rotate_plan chooses active tokens by age or by id; nothing is sent."""

    async def test_by_age(self, sb: Sandbox, cc: CellcastSession) -> None:
        tokens = await tokens_of(cc)
        sb.reset_requests()
        plan = build_rotate_plan(tokens, as_of=sb.reference_time, account=cc, stale_days=365)
        assert [i.action for i in plan.items] == ["rotate"] * 4
        assert {i.status for i in plan.items} == {"active"}
        assert plan.action == "rotate"
        assert sb.requests == []
        again = build_rotate_plan(tokens, as_of=sb.reference_time, account=cc, stale_days=365)
        assert again.dumps(cc) == plan.dumps(cc)

    async def test_by_id(self, cc: CellcastSession, sb: Sandbox) -> None:
        tokens = await tokens_of(cc)
        young = [t for t in tokens if t.status == "active"][:2]
        plan = build_rotate_plan(
            tokens, as_of=sb.reference_time, account=cc, ids=[t.id for t in young]
        )
        assert sorted(i.id for i in plan.items) == sorted(t.id for t in young)

    async def test_refused(self, cc: CellcastSession, sb: Sandbox) -> None:
        tokens = await tokens_of(cc)
        inactive = next(t for t in tokens if t.status == "inactive")
        at = sb.reference_time
        with pytest.raises(PlanError, match="no such token: 'nope'"):
            build_rotate_plan(tokens, as_of=at, account=cc, ids=["nope"])
        with pytest.raises(PlanError, match="only active tokens are rotated; inactive: "):
            build_rotate_plan(tokens, as_of=at, account=cc, ids=[inactive.id])
        with pytest.raises(PlanError, match="by stale_days or by ids, one of them"):
            build_rotate_plan(tokens, as_of=at, account=cc)


async def test_apply_rotates_under_faults(sb: Sandbox, cc: CellcastSession, tmp_path: Path) -> None:
    """Every 4th write failing: each token rotated once, every step in the journal, no
    secret in it; a second apply writes nothing."""
    tokens = await tokens_of(cc)
    plan = build_rotate_plan(tokens, as_of=sb.reference_time, account=cc, stale_days=365)
    journal = tmp_path / "rotate.journal"
    sink = Sink()

    outcomes = await run_all(cc, plan, journal, deliver=sink)

    assert [o.result for o in outcomes] == ["done"] * 4
    olds = {t.id: t for t in tokens}
    for item in plan.items:
        await assert_rotated(cc, olds[item.id], sink)
    assert len(set(sink.received.values())) == 4
    text = journal.read_text()
    assert not FULL_SECRET.search(text)
    steps = {r.step for r in Journal.read(journal, cc).records}
    assert {"rename", "create", "deliver", "verify"} <= steps
    writes = len(sb.writes())
    again = await run_all(cc, plan, journal, deliver=sink)
    assert [o.resumed for o in again] == [True] * 4
    assert len(sb.writes()) == writes


async def test_needs_a_sink(sb: Sandbox, cc: CellcastSession, tmp_path: Path) -> None:
    """A rotate plan without a sink: PlanError, nothing sent, no journal."""
    plan = build_rotate_plan(
        await tokens_of(cc), as_of=sb.reference_time, account=cc, stale_days=365
    )
    sb.reset_requests()
    with pytest.raises(PlanError, match="a rotate plan needs a sink"):
        await run_all(cc, plan, tmp_path / "j")
    assert sb.requests == []
    assert not (tmp_path / "j").exists()


async def test_dry_run(sb: Sandbox, cc: CellcastSession, tmp_path: Path) -> None:
    plan = build_rotate_plan(
        await tokens_of(cc), as_of=sb.reference_time, account=cc, stale_days=365
    )
    sink = Sink()
    outcomes = await run_all(cc, plan, tmp_path / "j", deliver=sink, dry_run=True)
    assert [o.result for o in outcomes] == ["planned"] * 4
    assert sb.writes() == []
    assert sink.calls == 0


async def test_stopped_and_resumed(sb: Sandbox, cc: CellcastSession, tmp_path: Path) -> None:
    """Stopped after two tokens, started again: the others rotated, the first two not again."""
    tokens = await tokens_of(cc)
    plan = build_rotate_plan(tokens, as_of=sb.reference_time, account=cc, stale_days=365)
    journal = tmp_path / "rotate.journal"
    sink = Sink()
    run = apply_plan(cc, plan, journal_path=journal, write_rate=FAST, deliver=sink)
    first = [await run.__anext__(), await run.__anext__()]
    await run.aclose()
    done = {o.token_id for o in first}
    writes = {i: len(sb.writes(i)) for i in done}

    rest = await run_all(cc, plan, journal, deliver=sink)

    assert [o.resumed for o in rest] == [True, True, False, False]
    assert {i: len(sb.writes(i)) for i in done} == writes
    olds = {t.id: t for t in tokens}
    for item in plan.items:
        await assert_rotated(cc, olds[item.id], sink)


async def test_retire_after_grace(sb: Sandbox, cc: CellcastSession, tmp_path: Path) -> None:
    """The old tokens of a rotation are chosen for deactivation once the grace is over."""
    tokens = await tokens_of(cc)
    plan = build_rotate_plan(tokens, as_of=sb.reference_time, account=cc, stale_days=365)
    journal = tmp_path / "rotate.journal"
    await run_all(cc, plan, journal, deliver=Sink())
    finished = finished_rotations(Journal.read(journal, cc))
    assert sorted(finished) == sorted(i.id for i in plan.items)
    now = max(finished.values())

    rotated = await tokens_of(cc)
    early, late = (
        build_retire_plan(
            rotated, as_of=now + timedelta(days=days), account=cc, rotated_by=finished, grace_days=7
        )
        for days in (6, 7)  # a day before the grace is over, and the day it is
    )

    assert early.items == ()
    assert sorted(i.id for i in late.items) == sorted(finished)
    assert {i.action for i in late.items} == {"deactivate"}
    assert all(i.name.endswith(")") and " (retired " in i.name for i in late.items)
    outcomes = await run_all(cc, late, tmp_path / "retire.journal")
    assert [o.result for o in outcomes] == ["done"] * 4
