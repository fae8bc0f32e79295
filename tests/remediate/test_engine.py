"""The plan/apply/undo engine against the embedded sandbox (issue 18): plans choose
without writing and are byte-identical, apply writes each unchanged token once and skips
the changed, resumes from its journal, keeps its write budget, and undo restores."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest

from cellcast_async import (
    CellcastSession,
    Journal,
    Plan,
    PlanError,
    PlanItem,
    apply_plan,
    build_plan,
    undo_plan,
)
from cellcast_async.sandbox import Faults, Sandbox

from ._support import (
    FAST,
    collect,
    deactivate_plan,
    later,
    run_all,
    session,
    tokens_of,
)

SECRET_SHAPE = re.compile(r"ccst_[A-Za-z0-9_-]{40}")


def assert_no_secret(text: str, sb: Sandbox) -> None:
    assert sb.api_key not in text
    assert sb.other_api_key not in text
    assert not SECRET_SHAPE.search(text)


class TestPlan:
    async def test_chooses_old_active_tokens_sends_no_write_and_is_byte_identical(
        self, sb: Sandbox, cc: CellcastSession
    ) -> None:
        first = (await deactivate_plan(cc, sb)).dumps(cc)
        async with session(sb) as other:
            second = (await deactivate_plan(other, sb)).dumps(other)
        assert first == second
        assert sb.writes() == []
        plan = Plan.loads(first, cc)
        assert len(plan.items) == 4
        assert {i.status for i in plan.items} == {"active"}
        assert {i.action for i in plan.items} == {"deactivate"}
        assert_no_secret(first, sb)

    async def test_exempt_ids_and_names_and_sub_accounts_are_never_chosen(
        self, sb: Sandbox, cc: CellcastSession
    ) -> None:
        whole = await deactivate_plan(cc, sb)
        first, second = whole.items[0], whole.items[1]
        plan = await deactivate_plan(cc, sb, exempt=[first.id, second.name])
        assert [i.id for i in plan.items] == [i.id for i in whole.items[2:]]
        other = await deactivate_plan(cc, sb, sub_accounts=[sb.sub_account_ids[1]])
        assert other.items == ()

    async def test_delete_chooses_inactive_tokens_by_age_or_by_journal_and_grace(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        tokens = await tokens_of(cc)
        by_age = build_plan(
            tokens, action="delete", stale_days=365, as_of=sb.reference_time, account=cc
        )
        assert len(by_age.items) == 2
        assert {i.status for i in by_age.items} == {"inactive"}
        plan = await deactivate_plan(cc, sb)
        await run_all(cc, plan, tmp_path / "j")
        journal = Journal.read(tmp_path / "j", cc)
        assert set(journal.deactivated()) == {i.id for i in plan.items}
        tokens = await tokens_of(cc)
        grace = {
            "action": "delete",
            "account": cc,
            "deactivated_by": journal.deactivated(),
            "grace_days": 30,
        }
        too_soon = build_plan(tokens, as_of=later(sb, 0), **grace)  # type: ignore[arg-type]
        assert too_soon.items == ()
        import datetime as dt

        after = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=31)
        due = build_plan(tokens, as_of=after, **grace)  # type: ignore[arg-type]
        assert {i.id for i in due.items} == {i.id for i in plan.items}

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"action": "deactivate"}, "a deactivate plan chooses by stale_days only"),
            (
                {"action": "delete", "stale_days": 1, "grace_days": 3},
                "a delete plan chooses by stale_days, or by deactivated_by and grace_days",
            ),
            ({"action": "delete", "grace_days": 3}, "deactivated_by and grace_days go together"),
            ({"action": "rotate", "stale_days": 3}, "a plan deactivates or deletes, not 'rotate'"),
            ({"action": "deactivate", "stale_days": -1}, "stale_days must be a whole number >= 0"),
        ],
    )
    async def test_bad_options_are_plan_errors(
        self, sb: Sandbox, cc: CellcastSession, options: dict[str, object], message: str
    ) -> None:
        with pytest.raises(PlanError) as caught:
            build_plan([], as_of=sb.reference_time, account=cc, **options)  # type: ignore[arg-type]
        assert caught.value.message == message
        assert isinstance(caught.value, ValueError)


class TestLoadingAPlan:
    async def test_an_edited_plan_is_refused(self, sb: Sandbox, cc: CellcastSession) -> None:
        text = (await deactivate_plan(cc, sb)).dumps(cc)
        edited = text.replace('"deactivate"', '"delete"', 1)
        with pytest.raises(PlanError, match=r"^the plan is not authentic: it was changed after"):
            Plan.loads(edited, cc)

    async def test_a_plan_of_another_key_or_api_is_refused(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        plan = await deactivate_plan(cc, sb)
        text = plan.dumps(cc)
        async with session(sb, key=sb.other_api_key) as other:
            with pytest.raises(PlanError, match=r"^the plan was made under another API key"):
                Plan.loads(text, other)
            with pytest.raises(PlanError, match=r"^the plan was made under another API key"):
                await collect(apply_plan(other, plan, journal_path=tmp_path / "j"))
        async with CellcastSession(api_key=sb.api_key, base_url=sb.url + "/v2") as moved:
            with pytest.raises(PlanError, match=r"^the plan was made for another API"):
                Plan.loads(text, moved)
        assert sb.writes() == []
        assert not (tmp_path / "j").exists()

    async def test_a_fifo_a_folder_and_a_huge_file_are_refused(
        self, cc: CellcastSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(PlanError, match=r"fifo: not a plan \(not a regular file\)$"):
            Plan.load(tmp_path / "fifo", cc)
        with pytest.raises(PlanError, match=r"not a plan \(not a regular file\)$"):
            Plan.load(tmp_path, cc)
        monkeypatch.setattr("cellcast_async._plan.MAX_PLAN_BYTES", 10)
        (tmp_path / "big").write_text("x" * 11)
        with pytest.raises(PlanError, match=r"big: not a plan \(larger than 10 bytes\)$"):
            Plan.load(tmp_path / "big", cc)

    async def test_deleting_an_active_token_is_refused_before_anything_is_sent(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        plan = await deactivate_plan(cc, sb)
        bad = Plan(
            account=plan.account,
            base_url=plan.base_url,
            as_of=plan.as_of,
            action="delete",
            selection={},
            items=tuple(
                PlanItem(**{**i.as_json(), "created_at": i.created_at, "action": "delete"})
                for i in plan.items
            ),
        )
        sb.reset_requests()
        with pytest.raises(PlanError, match=r"is 'active': only an inactive token is deleted"):
            await collect(apply_plan(cc, bad, journal_path=tmp_path / "j"))
        with pytest.raises(PlanError, match=r"is 'active': only an inactive token is deleted"):
            Plan.loads(bad.dumps(cc), cc)
        assert sb.requests == []


class TestApply:
    async def test_writes_each_planned_token_once_and_journals_one_outcome_each(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        plan = await deactivate_plan(cc, sb)
        sb.reset_requests()
        outcomes = await run_all(cc, plan, tmp_path / "j")
        assert [o.token_id for o in outcomes] == [i.id for i in plan.items]
        assert {o.result for o in outcomes} == {"done"}
        planned = {i.id for i in plan.items}
        assert Counter(r.path.rsplit("/", 1)[-1] for r in sb.writes()) == dict.fromkeys(planned, 1)
        for token in await tokens_of(cc):
            assert (token.status == "inactive") == (
                token.id in planned or token.created_at < later(sb, -450)
            )
        journal = Journal.read(tmp_path / "j", cc)
        finals = Counter(r.token_id for r in journal.records if r.event == "outcome")
        assert finals == dict.fromkeys(planned, 1)
        assert_no_secret((tmp_path / "j").read_text(), sb)

    async def test_tokens_changed_since_the_plan_are_skipped_and_never_written(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        plan = await deactivate_plan(cc, sb)
        renamed, gone, deactivated, kept = (i.id for i in plan.items)
        await cc.tokens.update(renamed, name="renamed meanwhile")
        await cc.tokens.delete(gone)
        await cc.tokens.update(deactivated, status="inactive")
        sb.reset_requests()
        outcomes = {o.token_id: o for o in await run_all(cc, plan, tmp_path / "j")}
        assert (outcomes[renamed].result, outcomes[renamed].reason) == (
            "skipped",
            "name changed since the plan",
        )
        assert (outcomes[gone].result, outcomes[gone].reason) == (
            "skipped",
            "gone: the token no longer exists",
        )
        assert (outcomes[deactivated].result, outcomes[deactivated].reason) == (
            "already",
            "already inactive",
        )
        assert outcomes[kept].result == "done"
        assert [r.path.rsplit("/", 1)[-1] for r in sb.writes()] == [kept]

    async def test_a_dry_run_reads_and_writes_nothing(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        plan = await deactivate_plan(cc, sb)
        outcomes = await run_all(cc, plan, tmp_path / "j", dry_run=True)
        assert {o.result for o in outcomes} == {"planned"}
        assert sb.writes() == []
        assert not (tmp_path / "j").exists()

    async def test_a_restart_never_writes_a_finished_token_again(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        plan = await deactivate_plan(cc, sb)
        run = apply_plan(cc, plan, journal_path=tmp_path / "j", write_rate=FAST)
        first = [await anext(run), await anext(run)]
        await run.aclose()
        sb.reset_requests()
        outcomes = await run_all(cc, plan, tmp_path / "j")
        assert [o.resumed for o in outcomes] == [True, True, False, False]
        assert {r.path.rsplit("/", 1)[-1] for r in sb.writes()} == {i.id for i in plan.items[2:]}
        assert [o.token_id for o in first] == [i.id for i in plan.items[:2]]

    async def test_an_intent_without_outcome_is_settled_by_reading(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        plan = await deactivate_plan(cc, sb)
        lost, unsent = plan.items[0].id, plan.items[1].id
        with Journal.open(tmp_path / "j", plan, cc) as journal:
            journal.record(lost, "intent")
            journal.record(unsent, "intent")
        await cc.tokens.update(lost, status="inactive")  # the write whose answer was lost
        sb.reset_requests()
        outcomes = {o.token_id: o for o in await run_all(cc, plan, tmp_path / "j")}
        assert (outcomes[lost].result, outcomes[lost].reason) == (
            "done",
            "found done after a restart",
        )
        assert outcomes[unsent].result == "done"
        assert lost not in {r.path.rsplit("/", 1)[-1] for r in sb.writes()}

    async def test_with_mutation_faults_every_token_ends_in_the_planned_state(
        self, tmp_path: Path
    ) -> None:
        async with Sandbox(tokens=60, seed=3) as sb, session(sb) as cc:
            plan = await deactivate_plan(cc, sb)
            sb.faults = Faults(
                error_rate=0.2, mutations_only=True, seed=7, kinds=("500", "drop", "429")
            )
            outcomes = await run_all(cc, plan, tmp_path / "j")
            assert {o.result for o in outcomes} == {"done"}
            sb.faults = Faults()
            by_id = {t.id: t for t in await tokens_of(cc)}
            assert all(by_id[i.id].status == "inactive" for i in plan.items)
            planned = {i.id for i in plan.items}
            assert {r.path.rsplit("/", 1)[-1] for r in sb.writes()} <= planned

    async def test_no_sliding_second_sees_more_than_rate_plus_burst_writes(
        self, tmp_path: Path
    ) -> None:
        async with Sandbox(tokens=0, sub_accounts=1) as sb, session(sb) as cc:
            sb.add_tokens(36, status="active", age_days=400)
            plan = await deactivate_plan(cc, sb)
            sb.reset_requests()
            await run_all(cc, plan, tmp_path / "j", write_rate=40.0, write_burst=2)
            times = sorted(r.received_at for r in sb.writes())
            assert len(times) == 36
            most = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
            assert most <= 40 + 2
            assert times[-1] - times[0] >= 0.8  # paced: (36 - burst 2) / 40 = 0.85 s


class TestJournal:
    async def journal(self, sb: Sandbox, cc: CellcastSession, path: Path) -> Plan:
        plan = await deactivate_plan(cc, sb)
        await run_all(cc, plan, path)
        return plan

    async def test_an_edited_or_reordered_or_cut_journal_is_refused(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        plan = await self.journal(sb, cc, tmp_path / "j")
        lines = (tmp_path / "j").read_bytes().split(b"\n")
        cases = {
            "edited": [lines[0], lines[1].replace(b'"intent"', b'"outcome"'), *lines[2:]],
            "reordered": [lines[0], lines[2], lines[1], *lines[3:]],
            "cut": [lines[0], *lines[2:]],
        }
        messages = {
            "edited": "line 2 is not authentic: the journal was changed",
            "reordered": "line 2 is out of place: lines were removed, added or moved",
            "cut": "line 2 is out of place: lines were removed, added or moved",
        }
        for name, changed in cases.items():
            path = tmp_path / name
            path.write_bytes(b"\n".join(changed))
            with pytest.raises(PlanError) as caught:
                Journal.read(path, cc)
            assert caught.value.message == f"{path}: {messages[name]}"
            sb.reset_requests()
            with pytest.raises(PlanError):
                await run_all(cc, plan, path)
            assert sb.requests == []

    async def test_a_torn_last_line_is_dropped(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        plan = await deactivate_plan(cc, sb)
        path = tmp_path / "j"
        run = apply_plan(cc, plan, journal_path=path, write_rate=FAST)
        await anext(run)
        await run.aclose()
        whole = path.read_bytes()
        path.write_bytes(whole + b'{"seq":3,"tok')
        outcomes = await run_all(cc, plan, path)
        assert [o.result for o in outcomes] == ["done"] * 4
        assert b'{"seq":3,"tok' not in path.read_bytes()
        assert len(Journal.read(path, cc).records) == 8

    async def test_a_journal_of_another_plan_or_account_is_refused(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        await self.journal(sb, cc, tmp_path / "j")
        other = await deactivate_plan(cc, sb, exempt=["nothing"])
        with pytest.raises(PlanError, match=r"j: the journal belongs to another plan$"):
            await run_all(cc, other, tmp_path / "j")
        async with session(sb, key=sb.other_api_key) as foreign:
            with pytest.raises(PlanError, match=r"written under another API key"):
                Journal.read(tmp_path / "j", foreign)

    async def test_steps_and_data_replay_per_token_and_step(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        plan = await deactivate_plan(cc, sb)
        token = plan.items[0].id
        with Journal.open(tmp_path / "j", plan, cc) as journal:
            journal.record(token, "intent", step="rename", data={"to": "old-1"})
            journal.record(token, "outcome", step="rename", result="done")
            journal.record(token, "intent", step="create")
        read = Journal.read(tmp_path / "j", cc)
        assert read.last(token, "rename") is not None
        assert read.last(token, "rename").result == "done"  # type: ignore[union-attr]
        assert read.last(token, "create").event == "intent"  # type: ignore[union-attr]
        assert read.final(token) is None
        assert read.records[0].data == {"to": "old-1"}

    async def test_a_second_apply_on_the_same_journal_is_refused(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        plan = await deactivate_plan(cc, sb)
        with (
            Journal.open(tmp_path / "j", plan, cc),
            pytest.raises(PlanError, match=r"j: the journal is in use by another apply$"),
        ):
            Journal.open(tmp_path / "j", plan, cc)


class TestUndo:
    async def test_undo_reactivates_exactly_what_apply_deactivated(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        before = {t.id: t.status for t in await tokens_of(cc)}
        plan = await deactivate_plan(cc, sb)
        await cc.tokens.update(plan.items[0].id, status="inactive")  # "already": not undone
        await run_all(cc, plan, tmp_path / "j")
        renamed = plan.items[1].id
        await cc.tokens.update(renamed, name="changed after apply")
        sb.reset_requests()
        outcomes = await collect(
            undo_plan(cc, tmp_path / "j", journal_path_out=tmp_path / "u", write_rate=FAST)
        )
        results = {o.token_id: (o.action, o.result) for o in outcomes}
        assert plan.items[0].id not in results
        assert results[renamed] == ("reactivate", "skipped")
        assert {results[i.id] for i in plan.items[2:]} == {("reactivate", "done")}
        after = {t.id: t.status for t in await tokens_of(cc)}
        expected = dict(before, **{plan.items[0].id: "inactive", renamed: "inactive"})
        assert after == expected
        assert {r.path.rsplit("/", 1)[-1] for r in sb.writes()} == {i.id for i in plan.items[2:]}

    async def test_deletes_are_listed_as_not_undoable(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        plan = build_plan(
            await tokens_of(cc),
            action="delete",
            stale_days=365,
            as_of=sb.reference_time,
            account=cc,
        )
        await run_all(cc, plan, tmp_path / "j")
        sb.reset_requests()
        outcomes = await collect(undo_plan(cc, tmp_path / "j", journal_path_out=tmp_path / "u"))
        assert [(o.action, o.result, o.reason) for o in outcomes] == [
            ("delete", "skipped", "deleted: a delete cannot be undone")
        ] * 2
        assert sb.writes() == []


class TestJournalFiles:
    async def test_a_header_cut_short_by_a_kill_is_started_again(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        plan = await deactivate_plan(cc, sb)
        (tmp_path / "j").write_bytes(b'{"format":"cellcast-jour')
        outcomes = await run_all(cc, plan, tmp_path / "j")
        assert {o.result for o in outcomes} == {"done"}
        assert len(Journal.read(tmp_path / "j", cc).records) == 2 * len(plan.items)

    async def test_a_fifo_is_refused_as_a_journal(
        self, sb: Sandbox, cc: CellcastSession, tmp_path: Path
    ) -> None:
        plan = await deactivate_plan(cc, sb)
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(PlanError, match=r"fifo: not a journal \(not a regular file\)$"):
            await run_all(cc, plan, tmp_path / "fifo")
        with pytest.raises(PlanError, match=r"fifo: not a journal \(not a regular file\)$"):
            Journal.read(tmp_path / "fifo", cc)
        assert sb.writes() == []
