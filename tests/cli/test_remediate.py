"""``plan``, ``show``, ``apply`` and ``undo`` against a live sandbox (issue 18): a plan
sends no write and is byte-identical; apply confirms, journals, skips changed tokens and
resumes; undo restores; bad plans and journals, foreign accounts and a missing
confirmation are usage errors with nothing sent; no secret anywhere."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from cellcast_async import CellcastSession, Plan
from cellcast_async.sandbox import Faults

from .._schemas import assert_valid
from ._support import AS_OF, FULL_SECRET, TOKENS_PATH, LiveSandbox, Run, TtyStringIO


@pytest.fixture
def live() -> Iterator[LiveSandbox]:
    """A small demo sandbox: about a dozen tokens to act on keep each test quick."""
    with LiveSandbox(seed=0, tokens=30) as sandbox:
        yield sandbox


FAST = ("--write-rate", "1000")


def plan(live: LiveSandbox, path: Path, *argv: str, action: str = "deactivate") -> Run:
    rule = ["--stale-days", "365"] if action == "deactivate" or not argv else []
    return live.cli("plan", action, *rule, "--as-of", AS_OF, *argv, "--output", str(path))


def writes(live: LiveSandbox) -> list[tuple[str, str]]:
    return [(m, p) for m, p, _, _ in live.cli_requests() if m in ("PUT", "DELETE", "POST")]


def no_secret(live: LiveSandbox, *texts: str) -> None:
    for text in texts:
        assert live.api_key not in text
        assert not FULL_SECRET.search(text)


@pytest.fixture
def planned(live: LiveSandbox, tmp_path: Path) -> Path:
    run = plan(live, tmp_path / "plan.json")
    assert run.code == 0, run.err
    return tmp_path / "plan.json"


class TestPlan:
    def test_sends_no_write_and_is_byte_identical(self, live: LiveSandbox, tmp_path: Path) -> None:
        live.script({})
        first = plan(live, tmp_path / "a.json")
        second = plan(live, tmp_path / "b.json")
        assert first.code == second.code == 0, first.err
        assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
        assert writes(live) == []
        body = json.loads((tmp_path / "a.json").read_text())
        assert_valid("plan.schema.json", [body])
        active_old = [
            t for t in live.items(status="active") if t["createdAt"] < "2024-07-16T00:00:00"
        ]
        assert {i["id"] for i in body["items"]} == {t["_id"] for t in active_old}
        no_secret(live, first.out, first.err, (tmp_path / "a.json").read_text())

    def test_exempt_sub_account_and_from_records(self, live: LiveSandbox, tmp_path: Path) -> None:
        audit = live.cli("audit", "--format", "jsonl", "--output", str(tmp_path / "r.jsonl"))
        assert audit.code == 0, audit.err
        walked = plan(live, tmp_path / "w.json")
        from_records = plan(live, tmp_path / "f.json", "--from", str(tmp_path / "r.jsonl"))
        assert walked.code == from_records.code == 0, from_records.err
        w = json.loads((tmp_path / "w.json").read_text())
        f = json.loads((tmp_path / "f.json").read_text())
        assert w["items"] == f["items"]
        first = w["items"][0]
        (tmp_path / "exempt").write_text(f"{first['id']}\n{w['items'][1]['name']}\n")
        sub = live.sb.sub_account_ids[0]
        run = plan(
            live, tmp_path / "e.json", "--exempt", str(tmp_path / "exempt"), "--sub-account", sub
        )
        assert run.code == 0, run.err
        e = json.loads((tmp_path / "e.json").read_text())
        assert first["id"] not in {i["id"] for i in e["items"]}
        assert w["items"][1]["name"] not in {i["name"] for i in e["items"]}
        assert {i["sub_account_id"] for i in e["items"]} == {sub}

    def test_delete_needs_one_rule(self, live: LiveSandbox, tmp_path: Path) -> None:
        run = live.cli("plan", "delete", "--output", str(tmp_path / "p"))
        assert run.code == 2
        assert run.err == (
            "usage error: plan delete needs --stale-days N, or --deactivated-by JOURNAL and"
            " --grace-days D\n"
        )


class TestApply:
    def test_with_yes_applies_journals_and_a_second_run_writes_nothing(
        self, live: LiveSandbox, planned: Path, tmp_path: Path
    ) -> None:
        ids = [i["id"] for i in json.loads(planned.read_text())["items"]]
        live.script({})
        journal = tmp_path / "j"
        run = live.cli("--json", "apply", str(planned), "--journal", str(journal), "--yes", *FAST)
        assert run.code == 0, run.err
        summary = json.loads(run.out)
        assert_valid("apply.schema.json", [summary])
        assert summary["counts"]["done"] == len(ids)
        assert sorted(p.rsplit("/", 1)[-1] for _, p in writes(live)) == sorted(ids)
        for line in journal.read_text().splitlines():
            assert_valid("journal.schema.json", [json.loads(line)])
        live.script({})
        again = live.cli("--json", "apply", str(planned), "--journal", str(journal), "--yes", *FAST)
        assert again.code == 0
        assert writes(live) == []
        assert {o["resumed"] for o in json.loads(again.out)["outcomes"]} == {True}
        shown = live.cli("--json", "show", str(journal))
        assert shown.code == 0
        assert json.loads(shown.out)["counts"] == {"done": len(ids)}
        no_secret(live, run.out, run.err, again.out, shown.out, journal.read_text())

    def test_no_confirmation_is_a_usage_error_and_nothing_is_sent(
        self, live: LiveSandbox, planned: Path, tmp_path: Path
    ) -> None:
        live.script({})
        run = live.cli("apply", str(planned), "--journal", str(tmp_path / "j"))
        assert run.code == 2
        assert run.err.endswith(
            "usage error: nothing was changed: confirm with --yes, or run on a terminal and"
            " type the number of changes\n"
        )
        assert writes(live) == []
        assert not (tmp_path / "j").exists()

    def test_on_a_terminal_the_count_typed_confirms(
        self, live: LiveSandbox, planned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        count = len(json.loads(planned.read_text())["items"])
        monkeypatch.setattr("sys.stdin", TtyStringIO("3\n"))
        live.script({})
        wrong = live.cli("apply", str(planned), "--journal", str(tmp_path / "j"), *FAST)
        assert wrong.code == 2
        assert wrong.err.endswith(f"usage error: nothing was changed: '3' is not {count}\n")
        assert writes(live) == []
        monkeypatch.setattr("sys.stdin", TtyStringIO(f"{count}\n"))
        right = live.cli("apply", str(planned), "--journal", str(tmp_path / "j"), *FAST)
        assert right.code == 0, right.err
        assert f"Type {count} to make these {count:,} change(s): " in right.err
        assert len(writes(live)) == count

    def test_an_edited_plan_or_another_account_is_a_usage_error(
        self, live: LiveSandbox, planned: Path, tmp_path: Path
    ) -> None:
        text = planned.read_text()
        edited = tmp_path / "edited.json"
        edited.write_text(text.replace('"status":"active"', '"status":"inactive"', 1))
        live.script({})
        run = live.cli("apply", str(edited), "--journal", str(tmp_path / "j"), "--yes", *FAST)
        assert (run.code, run.err) == (
            2,
            f"usage error: {edited}: the plan is not authentic: it was changed after it was made\n",
        )
        other = live.cli(
            "apply",
            str(planned),
            "--journal",
            str(tmp_path / "j"),
            "--yes",
            *FAST,
            key=live.sb.other_api_key,
        )
        assert (other.code, other.err) == (
            2,
            f"usage error: {planned}: the plan was made under another API key: it applies"
            " only to the account that made it\n",
        )
        assert writes(live) == []

    def test_an_edited_journal_is_a_usage_error(
        self, live: LiveSandbox, planned: Path, tmp_path: Path
    ) -> None:
        journal = tmp_path / "j"
        assert live.cli("apply", str(planned), "--journal", str(journal), "--yes", *FAST).code == 0
        lines = journal.read_text().split("\n")
        lines[1] = lines[1].replace('"intent"', '"outcome"')
        journal.write_text("\n".join(lines))
        live.script({})
        run = live.cli("apply", str(planned), "--journal", str(journal), "--yes", *FAST)
        assert (run.code, run.err.splitlines()[-1]) == (
            2,
            f"usage error: {journal}: line 2 is not authentic: the journal was changed",
        )
        assert writes(live) == []

    def test_changed_tokens_are_skipped_and_a_dry_run_writes_nothing(
        self, live: LiveSandbox, planned: Path, tmp_path: Path
    ) -> None:
        items = json.loads(planned.read_text())["items"]
        renamed = items[0]["id"]
        status, _ = live.http("PUT", f"{TOKENS_PATH}/{renamed}", {"name": "\x1b[31mred\x07"})
        assert status == 200
        live.script({})
        dry = live.cli(
            "--json", "apply", str(planned), "--journal", str(tmp_path / "j"), "--dry-run"
        )
        assert dry.code == 0, dry.err
        assert json.loads(dry.out)["counts"]["planned"] == len(items) - 1
        assert writes(live) == []
        run = live.cli(
            "--json", "apply", str(planned), "--journal", str(tmp_path / "j"), "--yes", *FAST
        )
        assert run.code == 0, run.err
        reasons = {o["id"]: o["reason"] for o in json.loads(run.out)["outcomes"]}
        assert reasons[renamed] == "name changed since the plan"
        assert renamed not in {p.rsplit("/", 1)[-1] for _, p in writes(live)}

    def test_names_are_printed_safely(
        self, live: LiveSandbox, planned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        token = json.loads(planned.read_text())["items"][0]["id"]
        hostile = "\x1b[31mred\x07\u202e"
        assert live.http("PUT", f"{TOKENS_PATH}/{token}", {"name": hostile})[0] == 200
        assert plan(live, tmp_path / "p.json").code == 0
        monkeypatch.setenv("COLUMNS", "300")
        shown = live.cli("show", str(tmp_path / "p.json"))
        assert "\\x1b[31mred\\x07\\u202e" in shown.out
        run = live.cli(
            "apply", str(tmp_path / "p.json"), "--journal", str(tmp_path / "j"), "--yes", *FAST
        )
        journal = live.cli("show", str(tmp_path / "j"))
        for text in (shown.out, shown.err, run.out, run.err, journal.out, journal.err):
            assert "\x1b" not in text
            assert "\u202e" not in text

    def test_a_delete_plan_of_the_deactivated_after_grace(
        self, live: LiveSandbox, planned: Path, tmp_path: Path
    ) -> None:
        journal = tmp_path / "j"
        assert live.cli("apply", str(planned), "--journal", str(journal), "--yes", *FAST).code == 0
        ids = {i["id"] for i in json.loads(planned.read_text())["items"]}

        def plan_delete(output: Path, *extra: str) -> Any:
            """``plan delete`` of what ``journal`` deactivated, 30 days' grace: the plan."""
            argv = ["--deactivated-by", str(journal), "--grace-days", "30", *extra]
            result = live.cli("plan", "delete", *argv, "--output", str(output))
            assert result.code == 0, result.err
            return json.loads(output.read_text())

        assert plan_delete(tmp_path / "d0.json")["items"] == []  # not yet due
        body = plan_delete(tmp_path / "d.json", "--as-of", "2999-01-01T00:00:00Z")
        assert {i["id"] for i in body["items"]} == ids
        assert {i["action"] for i in body["items"]} == {"delete"}
        live.script({})
        run = live.cli(
            "--json",
            "apply",
            str(tmp_path / "d.json"),
            "--journal",
            str(tmp_path / "dj"),
            "--yes",
            *FAST,
        )
        assert run.code == 0, run.err
        assert {m for m, _ in writes(live)} == {"DELETE"}
        undo = live.cli(
            "--json", "undo", str(tmp_path / "dj"), "--journal", str(tmp_path / "u"), "--yes", *FAST
        )
        assert undo.code == 0, undo.err
        assert {(o["action"], o["result"]) for o in json.loads(undo.out)["outcomes"]} == {
            ("delete", "skipped")
        }


class TestUndo:
    def test_undo_restores_what_apply_changed(
        self, live: LiveSandbox, planned: Path, tmp_path: Path
    ) -> None:
        before = {t["_id"]: t["status"] for t in live.items()}
        assert (
            live.cli("apply", str(planned), "--journal", str(tmp_path / "j"), "--yes", *FAST).code
            == 0
        )
        assert {t["_id"]: t["status"] for t in live.items()} != before
        no_confirm = live.cli("undo", str(tmp_path / "j"), "--journal", str(tmp_path / "u"))
        assert no_confirm.code == 2
        run = live.cli(
            "undo", str(tmp_path / "j"), "--journal", str(tmp_path / "u"), "--yes", *FAST
        )
        assert run.code == 0, run.err
        assert {t["_id"]: t["status"] for t in live.items()} == before
        shown = live.cli("show", str(tmp_path / "u"))
        assert shown.code == 0
        assert "reactivate" in shown.out


def test_show_prints_a_plan_and_refuses_a_foreign_one(live: LiveSandbox, planned: Path) -> None:
    run = live.cli("show", str(planned))
    assert run.code == 0, run.err
    assert "deactivate" in run.out
    as_json = live.cli("--json", "show", str(planned))
    body: dict[str, Any] = json.loads(as_json.out)
    assert body["kind"] == "plan"
    other = live.cli("show", str(planned), key=live.sb.other_api_key)
    assert other.code == 2
    assert "made under another API key" in other.err


def test_a_plan_deleting_an_active_token_is_a_usage_error(
    live: LiveSandbox, planned: Path, tmp_path: Path
) -> None:
    """Sealed with the right key (made with the SDK), still refused, and nothing is sent."""

    async def seal() -> None:
        async with CellcastSession(api_key=live.api_key, base_url=live.url) as cc:
            good = Plan.load(planned, cc)
            items = tuple(attrs.evolve(i, action="delete") for i in good.items)
            bad = attrs.evolve(good, action="delete", items=items)
            (tmp_path / "bad.json").write_text(bad.dumps(cc))

    asyncio.run(seal())
    live.script({})
    run = live.cli("apply", str(tmp_path / "bad.json"), "--journal", str(tmp_path / "j"), "--yes")
    first = json.loads(planned.read_text())["items"][0]["id"]
    assert (run.code, run.err) == (
        2,
        f"usage error: {tmp_path / 'bad.json'}: token {first!r} is 'active': only an inactive"
        " token is deleted (deactivate it first)\n",
    )
    assert live.cli_requests() == []
    assert not (tmp_path / "j").exists()


def test_a_failed_token_is_named_and_the_exit_code_is_1(
    live: LiveSandbox, planned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cellcast_async._remediate._pause", lambda exc, attempt: 0.0)
    first = json.loads(planned.read_text())["items"][0]["id"]
    live.call(
        lambda: setattr(live.sb, "faults", Faults(mutations_only=True, first_n=8, kinds=("500",)))
    )
    run = live.cli("apply", str(planned), "--journal", str(tmp_path / "j"), "--yes", *FAST)
    assert run.code == 1, run.err
    assert f"failed: {first} " in run.out
    again = live.cli(
        "--json", "apply", str(planned), "--journal", str(tmp_path / "j"), "--yes", *FAST
    )
    assert again.code == 1
    summary = json.loads(again.out)
    assert_valid("apply.schema.json", [summary])
    assert [f["id"] for f in summary["failed"]] == [first]
    assert summary["counts"]["failed"] == 1


@pytest.mark.parametrize(
    ("option", "content", "message"),
    [
        ("--exempt", b"\xff\xfe", "--exempt: {path} is not UTF-8 text"),
        ("--exempt", None, "--exempt: cannot read list of exemptions {path}: No such file"),
        ("--from", None, "cannot read {path}: No such file or directory"),
        ("--from", b'{"id": "x"}\n', "--from: {path} line 1: not an audit record (no name,"),
    ],
)
def test_bad_exempt_and_from_files_are_usage_errors(
    live: LiveSandbox, tmp_path: Path, option: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / "input"
    if content is not None:
        path.write_bytes(content)
    live.script({})
    run = plan(live, tmp_path / "p.json", option, str(path))
    assert run.code == 2
    assert run.err.startswith(f"usage error: {message.format(path=path)}"), run.err
    assert writes(live) == []
    assert not (tmp_path / "p.json").exists()
