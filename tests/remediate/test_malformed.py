"""What a plan, a journal or the API can get wrong, each with its exact error or outcome:
sealed plans with bad fields, journals with bad lines, reads and writes that fail."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from cellcast_async import CellcastSession, Journal, Plan, PlanError, build_plan
from cellcast_async._plan import canonical
from cellcast_async._session import checkpoint_key
from cellcast_async.sandbox import Faults, Sandbox

from ._support import deactivate_plan, run_all, session, tokens_of


def sealed(cc: CellcastSession, body: dict[str, Any], purpose: str = "cellcast-plan") -> str:
    return json.dumps({**body, "mac": checkpoint_key(cc).mac(purpose, canonical(body))})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "a plan of version 2; this cellcast_async reads version 1"),
        ({"format": "x"}, "not a plan: no 'format' marker"),
        ({"items": {}}, "plan field 'items' is not a list of at most 200,000"),
        ({"selection": []}, "plan field 'selection' is not an object"),
        ({"items": [1]}, "a plan item is not an object"),
        ({"action": "purge"}, "unknown action 'purge'"),
        ({"as_of": "yesterday"}, "plan field 'as_of' is not a time"),
        ({"as_of": "2025-01-01T00:00:00"}, "plan field 'as_of' has no timezone"),
        ({"base_url": 5}, "plan field 'base_url' is not a string of at most 1024 characters"),
    ],
)
async def test_a_sealed_plan_with_a_bad_field(
    sb: Sandbox, cc: CellcastSession, change: dict[str, Any], message: str
) -> None:
    body = (await deactivate_plan(cc, sb)).body()
    with pytest.raises(PlanError) as caught:
        Plan.loads(sealed(cc, {**body, **change}), cc)
    assert caught.value.message == message


async def test_a_sealed_plan_with_a_token_twice(sb: Sandbox, cc: CellcastSession) -> None:
    body = (await deactivate_plan(cc, sb)).body()
    body["items"] = [body["items"][0]] * 2
    with pytest.raises(PlanError, match=r"^token '[0-9a-f]+' is in the plan twice$"):
        Plan.loads(sealed(cc, body), cc)


@pytest.mark.parametrize(
    ("text", "message"),
    [("[", "not a plan: not JSON"), ("[]", "not a plan: no 'format' marker")],
)
async def test_not_a_plan(cc: CellcastSession, text: str, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        Plan.loads(text, cc)
    assert caught.value.message == message


def no_record(cc: CellcastSession, plan: Plan, prev: str) -> bytes:
    """A line sealed as the journal's next, whose body is no journal record."""
    body = {
        "seq": 1,
        "token": "t",
        "event": "outcome",
        "at": "2025-01-01T00:00:00Z",
        "step": None,
        "result": "maybe",
        "reason": None,
        "data": {},
        "plan": plan.digest,
        "prev": prev,
    }
    return sealed(cc, body, "cellcast-journal").encode()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{", "line 2 is not JSON"),
        (b"[]", "line 2 is not a JSON object"),
        (b'{"prev":"x"}', "line 2 is out of place: lines were removed, added or moved"),
        pytest.param(no_record, "line 2 is not a journal record", id="sealed-no-record"),
    ],
)
async def test_a_journal_with_a_bad_line(
    sb: Sandbox,
    cc: CellcastSession,
    tmp_path: Path,
    line: bytes | Callable[[CellcastSession, Plan, str], bytes],
    message: str,
) -> None:
    plan = await deactivate_plan(cc, sb)
    path = tmp_path / "j"
    with Journal.open(path, plan, cc) as journal:
        prev = journal._mac
    if callable(line):
        line = line(cc, plan, prev)
    path.write_bytes(path.read_bytes() + line + b"\n")
    with pytest.raises(PlanError) as caught:
        Journal.read(path, cc)
    assert caught.value.message == f"{path}: {message}"


async def test_bad_records_are_refused_before_they_are_written(
    sb: Sandbox, cc: CellcastSession, tmp_path: Path
) -> None:
    plan = await deactivate_plan(cc, sb)
    with Journal.open(tmp_path / "j", plan, cc) as journal:
        with pytest.raises(PlanError, match=r"^an outcome has a result, an intent none$"):
            journal.record("t", "outcome")
        with pytest.raises(PlanError, match=r"^journal data holds str keys and str, int, bool"):
            journal.record("t", "intent", data={"x": 1.5})  # type: ignore[dict-item]
    with pytest.raises(PlanError, match=r"the journal is not open for writing$"):
        journal.record("t", "intent")
    assert Journal.read(tmp_path / "j", cc).records == []


async def test_writes_that_keep_failing_end_failed_and_the_others_go_on(
    sb: Sandbox, cc: CellcastSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cellcast_async._remediate._pause", lambda exc, attempt: 0.0)
    plan = await deactivate_plan(cc, sb)
    sb.faults = Faults(mutations_only=True, first_n=8, kinds=("500",))
    outcomes = await run_all(cc, plan, tmp_path / "j")
    assert outcomes[0].result == "failed"
    assert (outcomes[0].reason or "").startswith("ServerError: PUT /api/v1/apiClient/token/")
    assert [o.result for o in outcomes[1:]] == ["done"] * (len(plan.items) - 1)
    assert len(sb.writes(plan.items[0].id)) == 8


async def test_a_read_that_fails_ends_failed(sb: Sandbox, tmp_path: Path) -> None:
    async with session(sb, max_retries=0) as cc:
        plan = await deactivate_plan(cc, sb)
        sb.faults = Faults(first_n=1, kinds=("503",))
        outcomes = await run_all(cc, plan, tmp_path / "j")
    assert outcomes[0].result == "failed"
    assert (outcomes[0].reason or "").startswith("ServerError: GET /api/v1/apiClient/token/")
    assert sb.writes(plan.items[0].id) == []


async def test_an_unreadable_answer_to_a_write_is_settled_by_reading(
    sb: Sandbox, cc: CellcastSession, tmp_path: Path
) -> None:
    plan = await deactivate_plan(cc, sb)
    sb.faults = Faults(mutations_only=True, first_n=1, kinds=("malformed",))
    outcomes = await run_all(cc, plan, tmp_path / "j")
    assert {o.result for o in outcomes} == {"done"}
    assert len(sb.writes(plan.items[0].id)) == 1


async def test_an_id_no_journal_line_can_hold_is_refused_when_the_plan_is_made(
    sb: Sandbox, cc: CellcastSession
) -> None:
    """An id of 1,024 emoji (under the 1,024-character cap, 12,288 bytes once escaped)
    would stop ``apply`` at its first journal line: the plan names it at once."""
    chosen = (await deactivate_plan(cc, sb)).items[0].id
    wide = "\U0001f600" * 1024
    hostile = [attrs.evolve(t, id=wide) if t.id == chosen else t for t in await tokens_of(cc)]
    with pytest.raises(PlanError) as caught:
        build_plan(
            hostile, action="deactivate", stale_days=365, as_of=sb.reference_time, account=cc
        )
    assert caught.value.message == (
        f"token {wide[:200]!r} has an id 12,288 bytes long as a journal writes it; a plan"
        " holds at most 2,048: exempt it (by name)"
    )
    assert sb.writes() == []


async def test_a_long_reason_is_cut_to_fit_its_journal_line(
    sb: Sandbox, cc: CellcastSession, tmp_path: Path
) -> None:
    """A server's message of 500 emoji (6,000 bytes escaped) as a failure's reason, beside
    the longest id a plan holds: the line is written, the reason cut to 2 KiB escaped."""
    plan = await deactivate_plan(cc, sb)
    token_id = "\x01" * 341  # 2,046 bytes escaped
    with Journal.open(tmp_path / "j", plan, cc) as journal:
        journal.record(token_id, "intent")
        record = journal.record(token_id, "outcome", result="failed", reason="\U0001f600" * 500)
    assert record.reason == "\U0001f600" * 157  # 500, 375, 281, 210, 157: 1,884 bytes
    assert [r.reason for r in Journal.read(tmp_path / "j", cc).records] == [None, record.reason]
