"""``cellcast-tokens diff OLD NEW``: drift between two audits, any mix of CSV and JSON Lines."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cellcast_async._cli._diff import Change, compare, parse_records
from cellcast_async._cli._records import FIELDS, Record

from ._support import AS_OF, ROOT, LiveSandbox, run_cli

SUB_A, SUB_B = "a" * 24, "b" * 24


def record(token_id: str, name: str, status: str = "active", sub: str = SUB_A) -> dict[str, Any]:
    """One audit record as the audit writes it (a masked token, never a full one)."""
    return {
        "id": token_id,
        "name": name,
        "status": status,
        "sub_account_id": sub,
        "sub_account_name": "Acme SMS" if sub == SUB_A else "Coral Coast",
        "created_at": "2025-01-01T00:00:00+00:00",
        "age_days": 196,
        "stale": False,
        "token": "****abcd",
    }


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    """Records as CSV (``.csv``) or JSON Lines (anything else), as ``audit`` writes them."""
    if path.suffix == ".csv":
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=FIELDS)
        writer.writeheader()
        for row in records:
            writer.writerow(
                {k: str(v).lower() if isinstance(v, bool) else v for k, v in row.items()}
            )
        path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


OLD = [
    record("1" * 24, "Kept"),
    record("2" * 24, "Going Away"),
    record("3" * 24, "Will Sleep"),
    record("4" * 24, "Old Name", sub=SUB_B),
    record("5" * 24, "Both Change", sub=SUB_B),
]
NEW = [
    record("1" * 24, "Kept"),
    record("3" * 24, "Will Sleep", status="inactive"),
    record("4" * 24, "New Name", sub=SUB_B),
    record("5" * 24, "Both Changed", status="inactive", sub=SUB_B),
    record("6" * 24, "Brand New"),
]


@pytest.fixture(
    params=[(".csv", ".csv"), (".jsonl", ".jsonl"), (".csv", ".jsonl"), (".jsonl", ".csv")]
)
def files(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """OLD and NEW in every mix of formats."""
    old_ext, new_ext = request.param
    return (
        str(write(tmp_path / f"old{old_ext}", OLD)),
        str(write(tmp_path / f"new{new_ext}", NEW)),
    )


class TestCompare:
    """compare(): every change kind, keyed by token id, in a stable order."""

    def test_every_kind(self) -> None:
        old = {r["id"]: Record(r["id"], r["name"], r["status"], r["sub_account_id"]) for r in OLD}
        new = {r["id"]: Record(r["id"], r["name"], r["status"], r["sub_account_id"]) for r in NEW}
        changes = compare(old, new)
        assert [(c.kind, c.record.id[0], c.old, c.new) for c in changes] == [
            ("created", "6", None, None),
            ("deleted", "2", None, None),
            ("status_changed", "3", "active", "inactive"),
            ("status_changed", "5", "active", "inactive"),
            ("renamed", "5", "Both Change", "Both Changed"),
            ("renamed", "4", "Old Name", "New Name"),
        ]
        assert all(isinstance(c, Change) for c in changes)

    def test_nothing_changed(self) -> None:
        same = {"x": Record("x", "n", "active", SUB_A)}
        assert compare(same, dict(same)) == []


class TestParse:
    """parse_records(): JSON Lines or CSV, found from the text; anything else is a usage error."""

    def test_blank_lines_and_a_bom_free_csv(self) -> None:
        text = "\n" + json.dumps(record("1" * 24, "A")) + "\n\n"
        assert list(parse_records(text, "f")) == ["1" * 24]

    def test_empty_file_is_no_records(self) -> None:
        assert parse_records("", "f") == {}


class TestCommand:
    """The command: a table grouped by sub-account or --json; exit 0, 1 or 2."""

    def test_table_in_every_format_mix(self, files: tuple[str, str]) -> None:
        old, new = files
        result = run_cli("diff", old, new)
        lines = [line.rstrip() for line in result.out.splitlines()]
        assert (result.code, result.err) == (1, "")
        assert lines[0] == (
            f"6 change(s) from {old} to {new}: 1 created, 1 deleted, 2 status, 2 renamed"
        )
        a_at = lines.index(f"sub-account {SUB_A} Acme SMS")
        b_at = lines.index(f"sub-account {SUB_B} Coral Coast")
        rows = [line.split() for line in lines]
        assert rows[a_at + 1] == ["CHANGE", "ID", "NAME", "DETAIL"]
        assert rows[a_at + 3 : a_at + 6] == [
            ["created", "6" * 24, "Brand", "New", "active"],
            ["deleted", "2" * 24, "Going", "Away", "active"],
            ["status", "3" * 24, "Will", "Sleep", "active", "->", "inactive"],
        ]
        assert rows[b_at + 3 : b_at + 6] == [
            ["status", "5" * 24, "Both", "Changed", "active", "->", "inactive"],
            ["renamed", "5" * 24, "Both", "Changed", "'Both", "Change'", "->", "'Both", "Changed'"],
            ["renamed", "4" * 24, "New", "Name", "'Old", "Name'", "->", "'New", "Name'"],
        ]

    def test_json_in_every_format_mix(self, files: tuple[str, str]) -> None:
        old, new = files
        result = run_cli("diff", "--json", old, new)
        body = json.loads(result.out)
        assert (result.code, result.err) == (1, "")
        assert body["changed"] is True
        assert body["counts"] == {"created": 1, "deleted": 1, "status_changed": 2, "renamed": 2}
        (group_a, group_b) = body["sub_accounts"]
        assert (group_a["sub_account_id"], group_a["sub_account_name"]) == (SUB_A, "Acme SMS")
        assert group_a["created"] == [{"id": "6" * 24, "name": "Brand New", "status": "active"}]
        assert group_a["deleted"] == [{"id": "2" * 24, "name": "Going Away", "status": "active"}]
        assert group_a["status_changed"] == [
            {"id": "3" * 24, "name": "Will Sleep", "old_status": "active", "new_status": "inactive"}
        ]
        assert group_a["renamed"] == []
        assert group_b["renamed"] == [
            {
                "id": "5" * 24,
                "name": "Both Changed",
                "old_name": "Both Change",
                "new_name": "Both Changed",
            },
            {"id": "4" * 24, "name": "New Name", "old_name": "Old Name", "new_name": "New Name"},
        ]

    def test_no_change_exits_0(self, tmp_path: Path) -> None:
        old = write(tmp_path / "a.csv", OLD)
        new = write(tmp_path / "b.jsonl", OLD)
        result = run_cli("diff", str(old), str(new))
        assert (result.code, result.err) == (0, "")
        assert result.out == f"No changes between {old} and {new}.\n"
        as_json = json.loads(run_cli("--json", "diff", str(old), str(new)).out)
        assert as_json["changed"] is False
        assert as_json["sub_accounts"] == []

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (
                '{"id": "x"}\n',
                "{path} line 1: not an audit record (no name, status, sub_account_id)",
            ),
            ("{not json\n", "{path} line 1: not valid JSON"),
            (
                '{"id": "x", "name": "n", "status": "a", "sub_account_id": "s"}\n[1]\n',
                "{path} line 2: not a JSON object",
            ),
            (
                "a,b\n1,2\n",
                "{path}: neither JSON Lines nor an audit CSV "
                "(its header needs id, name, status, sub_account_id)",
            ),
            (
                "id,name,status,sub_account_id\n,n,active,s\n",
                "{path} line 2: a record without an id",
            ),
        ],
        ids=["missing-fields", "bad-json", "not-object", "bad-csv", "no-id"],
    )
    def test_bad_input_is_a_usage_error(self, tmp_path: Path, content: str, message: str) -> None:
        good = write(tmp_path / "good.csv", OLD)
        bad = tmp_path / "bad.txt"
        bad.write_text(content, encoding="utf-8")
        result = run_cli("diff", str(good), str(bad))
        assert (result.code, result.out) == (2, "")
        assert result.err == f"usage error: {message.format(path=bad)}\n"

    def test_missing_file_is_a_usage_error(self, tmp_path: Path) -> None:
        missing = tmp_path / "nope.csv"
        result = run_cli("--json", "diff", str(missing), str(missing))
        assert (result.code, result.out) == (2, "")
        assert json.loads(result.err) == {
            "class": "UsageError",
            "status": None,
            "message": f"cannot read {missing}: No such file or directory",
        }

    def test_one_argument_is_a_usage_error(self) -> None:
        result = run_cli("diff", "only-one.csv")
        assert (result.code, result.out) == (2, "")
        assert result.err == "usage error: cellcast-tokens diff: Missing argument 'NEW'.\n"

    def test_between_two_real_audits(self, live: LiveSandbox, tmp_path: Path) -> None:
        """An audit, some changes through the API, another audit: diff names exactly those."""
        before, after = tmp_path / "before.csv", tmp_path / "after.jsonl"
        assert live.cli("audit", "--output", str(before), "--as-of", AS_OF, "-q").code == 0
        items = live.items()
        created = live.create("Nightly Export")
        live.http("DELETE", f"/api/v1/apiClient/token/{items[0]['_id']}")
        live.http("PUT", f"/api/v1/apiClient/token/{items[1]['_id']}", {"name": "Renamed One"})
        argv = ["audit", "--format", "jsonl", "--output", str(after), "--as-of", AS_OF, "-q"]
        assert live.cli(*argv).code == 0
        result = run_cli("--json", "diff", str(before), str(after))
        body = json.loads(result.out)
        found = {
            kind: [entry["id"] for group in body["sub_accounts"] for entry in group[kind]]
            for kind in ("created", "deleted", "status_changed", "renamed")
        }
        assert result.code == 1
        assert found == {
            "created": [created["_id"]],
            "deleted": [items[0]["_id"]],
            "status_changed": [],
            "renamed": [items[1]["_id"]],
        }


class TestSubprocess:
    """The installed entry point, exit codes included."""

    @pytest.mark.parametrize(("new_records", "code"), [(OLD, 0), (NEW, 1)], ids=["same", "changed"])
    def test_exit_codes(self, tmp_path: Path, new_records: list[dict[str, Any]], code: int) -> None:
        old = write(tmp_path / "old.csv", OLD)
        new = write(tmp_path / "new.jsonl", new_records)
        done = subprocess.run(
            [sys.executable, "-m", "cellcast_async", "diff", str(old), str(new)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert (done.returncode, done.stderr) == (code, "")
        assert done.stdout.startswith("No changes" if code == 0 else "6 change(s)")
