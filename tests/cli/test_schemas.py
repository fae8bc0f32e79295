"""The published JSON Schemas (``cellcast_async/schemas``, README "Command line",
"Schemas"): each a valid draft 2020-12 schema named as documented, and every output the
command line writes valid against its own: records (CSV and JSON Lines), ``audit
--json``, ``diff --json`` and ``audit --format ocsf``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from cellcast_async._cli._records import FIELDS

from .._schemas import ID_PREFIX, assert_valid, errors, package_schemas
from ._support import AS_OF, TOKENS_PATH, LiveSandbox, run_cli
from .test_sandbox_mode import first_lines

DRAFT = "https://json-schema.org/draft/2020-12/schema"
EXPECTED = {
    "audit.schema.json",
    "deleted.schema.json",
    "diff.schema.json",
    "error.schema.json",
    "ocsf-finding.schema.json",
    "record-csv.schema.json",
    "record.schema.json",
    "rotated.schema.json",
    "sandbox.schema.json",
    "token.schema.json",
}


def jsonl(text: str) -> list[Any]:
    return [json.loads(line) for line in text.split("\n") if line]


def csv_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


class TestTheSchemas:
    def test_each_is_a_draft_2020_12_schema_named_by_its_file(self) -> None:
        schemas = package_schemas()
        assert set(schemas) >= EXPECTED
        for name, schema in schemas.items():
            assert schema["$schema"] == DRAFT, name
            assert schema["$id"] == ID_PREFIX + name
            assert schema["title"].startswith("cellcast-tokens"), name
            assert schema["description"], name
            assert errors(name, None), name  # check_schema passed; null is no output

    def test_the_csv_schema_names_the_columns_in_their_order(self) -> None:
        schema = package_schemas()["record-csv.schema.json"]
        assert ", ".join(FIELDS) in schema["description"]
        assert schema["required"] == list(FIELDS)
        assert package_schemas()["record.schema.json"]["required"] == list(FIELDS)

    @pytest.mark.parametrize(
        ("name", "instance", "problem"),
        [
            (
                "record.schema.json",
                {"token": "ccst_" + "x" * 40},
                "token: 'ccst_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' is too long",
            ),
            ("record.schema.json", {"stale": "true"}, "stale: 'true' is not of type 'boolean'"),
            ("record.schema.json", {"extra": 1}, ": Additional properties are not allowed"),
            ("record-csv.schema.json", {"name": "=1+1"}, "name: '=1+1' does not match"),
            ("record-csv.schema.json", {"age_days": "-1"}, "age_days: '-1' does not match"),
        ],
    )
    def test_a_record_the_audit_would_never_write_is_refused(
        self, name: str, instance: dict[str, Any], problem: str
    ) -> None:
        good = {
            "id": "6877b1234567890abcdef123",
            "name": "Production API",
            "status": "active",
            "sub_account_id": "6877a383d68781beb3b14110",
            "sub_account_name": "Acme",
            "created_at": "2025-01-01T00:00:00+00:00",
            "age_days": 196,
            "stale": False,
            "token": "****abcd",
        }
        if name == "record-csv.schema.json":
            good = {**good, "age_days": "196", "stale": "false"}
        assert errors(name, good) == []
        found = errors(name, {**good, **instance})
        assert any(error.startswith(problem) for error in found), found


class TestEveryOutputIsValid:
    def test_records_as_jsonl_and_csv(self, live: LiveSandbox, tmp_path: Path) -> None:
        live.create('=HYPERLINK("http://evil.example/")')  # a formula, quoted in the CSV
        for fmt in ("jsonl", "csv"):
            target = tmp_path / f"records.{fmt}"
            result = live.cli(
                "audit", "--format", fmt, "--output", str(target), "--as-of", AS_OF, "-q"
            )
            assert result.code == 0, result.err
            text = target.read_text(encoding="utf-8")
            if fmt == "jsonl":
                assert assert_valid("record.schema.json", jsonl(text)) == 301
            else:
                header, rows = csv_rows(text)
                assert header == list(FIELDS)
                assert assert_valid("record-csv.schema.json", rows) == 301
                assert any(row["name"].startswith("'=HYPERLINK") for row in rows)

    def test_audit_json(self, live: LiveSandbox) -> None:
        full = live.cli("audit", "--json", "--as-of", AS_OF, "--verbose")
        with LiveSandbox(seed=0, tokens=0) as nothing:
            empty = nothing.cli("audit", "--json")
        with_records = live.cli("audit", "--json", "--format", "jsonl", "--as-of", AS_OF, "-q")
        reports = [json.loads(full.out), json.loads(empty.out), json.loads(with_records.err)]
        assert assert_valid("audit.schema.json", reports) == 3
        assert (reports[0]["total"], reports[1]["total"]) == (300, 0)
        assert reports[1]["oldest_created_at"] is None
        assert reports[0]["names_in_several_sub_accounts"]

    def test_diff_json(self, live: LiveSandbox, tmp_path: Path) -> None:
        old, new = tmp_path / "old.jsonl", tmp_path / "new.csv"
        assert live.cli("audit", "--format", "jsonl", "--output", str(old), "-q").code == 0
        items = live.items()
        live.create("Brand New")
        live.http("PUT", f"{TOKENS_PATH}/{items[0]['_id']}", {"name": "Renamed"})
        live.http("PUT", f"{TOKENS_PATH}/{items[1]['_id']}", {"status": "inactive"})
        live.http("PUT", f"{TOKENS_PATH}/{items[2]['_id']}", {"status": "active"})
        live.http("DELETE", f"{TOKENS_PATH}/{items[3]['_id']}")
        assert live.cli("audit", "--format", "csv", "--output", str(new), "-q").code == 0
        changed = live.cli("--json", "diff", str(old), str(new))
        same = live.cli("--json", "diff", str(new), str(new))
        assert (changed.code, same.code) == (1, 0)
        diffs = [json.loads(changed.out), json.loads(same.out)]
        assert assert_valid("diff.schema.json", diffs) == 2
        counts = diffs[0]["counts"]
        assert (counts["created"], counts["deleted"], counts["renamed"]) == (1, 1, 1)
        assert counts["status_changed"] >= 1
        assert diffs[1]["changed"] is False

    def test_ocsf_findings_against_both_schemas(self, live: LiveSandbox) -> None:
        result = live.cli("audit", "--format", "ocsf", "--as-of", AS_OF, "-q")
        found = jsonl(result.out)
        assert assert_valid("ocsf-finding.schema.json", found) == len(found) > 100
        assert assert_valid("ocsf", found) == len(found)

    def test_tokens_deletes_and_errors(self, live: LiveSandbox) -> None:
        sub = live.sb.sub_account_ids[0]
        listed = live.cli("--json", "list", "--max-items", "30")
        lines = live.cli("--json", "list", "--jsonl", "--status", "inactive")
        created = live.cli("--json", "create", "--name", "Schema check", "--sub-account", sub)
        new_id = json.loads(created.out)["id"]
        got = live.cli("--json", "get", new_id)
        updated = live.cli("--json", "update", new_id, "--status", "inactive")
        deleted = live.cli("--json", "delete", "--yes", new_id)
        missing = live.cli("--json", "get", new_id)
        usage = live.cli("--json", "update", new_id)
        runs = [listed, lines, created, got, updated, deleted]
        assert [run.code for run in runs] == [0] * 6
        tokens = [*json.loads(listed.out), *jsonl(lines.out)]
        tokens += [json.loads(run.out) for run in (created, got, updated)]
        assert assert_valid("token.schema.json", tokens) == 30 + len(jsonl(lines.out)) + 3
        assert assert_valid("deleted.schema.json", [json.loads(deleted.out)]) == 1
        assert (missing.code, usage.code) == (1, 2)
        problems = [json.loads(missing.err), json.loads(usage.err)]
        assert assert_valid("error.schema.json", problems) == 2
        assert [p["class"] for p in problems] == ["NotFoundError", "UsageError"]

    def test_a_usage_error_before_any_command(self) -> None:
        result = run_cli("--json", "audit", "--format", "xml")
        assert result.code == 2
        assert assert_valid("error.schema.json", [json.loads(result.err)]) == 1

    def test_the_sandbox_announcement(self) -> None:
        announced = [json.loads(line) for line in first_lines()]
        assert assert_valid("sandbox.schema.json", announced) == 2
