"""``audit --format ocsf``: OCSF 1.3.0 Compliance Findings, one per token per rule, each
valid against the vendored OCSF schema and the package's own (README "Command line").
"""

from __future__ import annotations

import json
import re
import shlex
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cellcast_async._cli._audit_report import AuditReport
from cellcast_async._cli._ocsf import (
    MAX_TEXT,
    FindingContext,
    duplicate_findings,
    finding_uid,
    scope_of,
    token_findings,
)

from .._schemas import assert_valid, errors
from ._support import AS_OF, AS_OF_TIME, FULL_SECRET, LiveSandbox, parse_time, run_cli

CONTEXT = FindingContext("api.cellcast.com", AS_OF_TIME, 365)


def findings(text: str) -> list[dict[str, Any]]:
    """JSON Lines, split on "\\n" only (a name may hold U+2028 or U+0085)."""
    return [json.loads(line) for line in text.split("\n") if line]


def check_valid(found: list[dict[str, Any]]) -> None:
    """Every finding valid against OCSF's schema of the class and against the package's."""
    assert assert_valid("ocsf", found) == len(found)
    assert assert_valid("ocsf-finding.schema.json", found) == len(found)


def by_rule(found: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Rule -> the token ids its findings name, in output order."""
    rules: dict[str, list[str]] = {"stale_active": [], "inactive": [], "duplicate_name": []}
    for finding in found:
        rules[finding["compliance"]["control"]].append(finding["resources"][0]["uid"])
    return rules


class TestFindings:
    """What the findings say, and that each is a valid OCSF Compliance Finding."""

    def test_one_finding_per_token_per_rule_each_valid(self, live: LiveSandbox) -> None:
        first, twin = live.plant_duplicate()
        result = live.cli("audit", "--format", "ocsf", "--as-of", AS_OF, "--quiet")
        assert result.code == 0, result.err
        found = findings(result.out)
        check_valid(found)
        items = live.items()
        old = AS_OF_TIME - timedelta(days=365)
        expected = {
            "stale_active": sorted(
                i["_id"]
                for i in items
                if i["status"] == "active" and parse_time(i["createdAt"]) < old
            ),
            "inactive": sorted(i["_id"] for i in items if i["status"] == "inactive"),
            "duplicate_name": sorted([first["_id"], twin["_id"]]),
        }
        rules = by_rule(found)
        assert {rule: sorted(ids) for rule, ids in rules.items()} == expected
        assert all(expected.values())
        # The duplicates are known once the walk is over: they come last, in id order.
        assert [f["compliance"]["control"] for f in found[-2:]] == ["duplicate_name"] * 2
        assert rules["duplicate_name"] == expected["duplicate_name"]
        uids = [f["finding_info"]["uid"] for f in found]
        assert len(set(uids)) == len(uids)

    def test_the_token_is_the_resource_and_its_sub_account_the_account(
        self, live: LiveSandbox
    ) -> None:
        result = live.cli("audit", "--format", "ocsf", "--as-of", AS_OF, "--quiet")
        items = {i["_id"]: i for i in live.items()}
        for finding in findings(result.out):
            resource = finding["resources"][0]
            item = items[resource["uid"]]
            created = parse_time(item["createdAt"])
            assert resource == {
                "uid": item["_id"],
                "name": item["name"],
                "type": "Cellcast API token",
                "data": {
                    "status": item["status"],
                    "created_at": created.isoformat(),
                    "age_days": (AS_OF_TIME - created).days,
                },
            }
            assert finding["cloud"] == {
                "provider": "Cellcast",
                "account": {
                    "type": "Cellcast sub-account",
                    "type_id": 99,
                    "uid": item["subAccount"]["_id"],
                    "name": item["subAccount"]["name"],
                },
            }
            assert finding["time"] == int(AS_OF_TIME.timestamp()) * 1000
            assert finding["metadata"]["version"] == "1.3.0"

    def test_severity_and_remediation_per_rule(self, live: LiveSandbox) -> None:
        live.plant_duplicate()
        result = live.cli(
            "audit", "--format", "ocsf", "--as-of", AS_OF, "--stale-days", "200", "--quiet"
        )
        seen: set[str] = set()
        for finding in findings(result.out):
            rule = finding["compliance"]["control"]
            seen.add(rule)
            token_id = finding["resources"][0]["uid"]
            sub = finding["cloud"]["account"]["uid"]
            desc = finding["remediation"]["desc"]
            severity = (finding["severity_id"], finding["severity"])
            if rule == "stale_active":
                assert severity == (3, "Medium")
                assert finding["compliance"]["status"] == "Fail"
                assert (
                    "cellcast-tokens plan deactivate --stale-days 200 --as-of"
                    f" 2025-07-16T00:00:00+00:00 --sub-account {sub} --output plan.json"
                ) in desc
            elif rule == "inactive":
                assert severity == (1, "Informational")
                assert (
                    "cellcast-tokens plan delete --stale-days 0 --as-of"
                    f" 2025-07-16T00:00:00+00:00 --sub-account {sub} --output plan.json"
                ) in desc
            else:
                assert severity == (2, "Low")
                assert f"cellcast-tokens update {token_id} --name NEW-NAME" in desc
            if rule != "duplicate_name":
                assert "cellcast-tokens apply plan.json --journal apply.journal" in desc
        assert seen == {"stale_active", "inactive", "duplicate_name"}

    def test_findings_on_stdout_send_the_report_to_stderr(self, live: LiveSandbox) -> None:
        result = live.cli("audit", "--format", "ocsf", "--as-of", AS_OF)
        assert result.code == 0
        assert result.out.startswith('{"activity_id": 1,')
        assert "Audit of 300 token(s)" in result.err
        assert "Walk: complete" in result.err

    def test_output_file_holds_what_stdout_would(self, live: LiveSandbox, tmp_path: Path) -> None:
        target = tmp_path / "findings.jsonl"
        to_file = live.cli(
            "audit", "--format", "ocsf", "--output", str(target), "--as-of", AS_OF, "-q"
        )
        to_stdout = live.cli("audit", "--format", "ocsf", "--as-of", AS_OF, "-q")
        assert (to_file.code, to_stdout.code) == (0, 0)
        assert target.read_text(encoding="utf-8") == to_stdout.out
        assert to_file.out == ""  # --quiet: the findings are the output, no report beside

    def test_checkpoint_is_a_usage_error_before_anything_is_sent(
        self, live: LiveSandbox, tmp_path: Path
    ) -> None:
        out, ckpt = tmp_path / "f.jsonl", tmp_path / "a.ckpt"
        result = live.cli(
            "audit", "--format", "ocsf", "--output", str(out), "--checkpoint", str(ckpt)
        )
        assert result.code == 2
        assert result.err == (
            "usage error: --checkpoint cannot resume --format ocsf (findings are not one"
            " record per token): checkpoint a --format jsonl audit instead\n"
        )
        assert live.cli_requests() == []
        assert not out.exists()
        assert not ckpt.exists()

    def test_no_secret_in_any_output(self, live: LiveSandbox, tmp_path: Path) -> None:
        created = live.create("Fresh secret")
        live.http("PUT", f"/api/v1/apiClient/token/{created['_id']}", {"status": "inactive"})
        target = tmp_path / "f.jsonl"
        runs = [
            live.cli("audit", "--format", "ocsf", "--as-of", AS_OF, "--json"),
            live.cli("audit", "--format", "ocsf", "--output", str(target), "--debug"),
        ]
        texts = [text for run in runs for text in (run.out, run.err)]
        texts.append(target.read_text(encoding="utf-8"))
        assert created["_id"] in texts[0]  # the new inactive token is a finding
        for text in texts:
            assert live.api_key not in text
            assert created["token"] not in text
            assert not FULL_SECRET.search(text)


class TestStableUids:
    """finding_info.uid: the same token and rule, the same uid, in every run."""

    def test_two_audits_of_the_same_sandbox_give_the_same_findings(self) -> None:
        """Two embedded demo sandboxes, each on a port of its own: the same output."""
        runs = [run_cli("--sandbox", "-q", "audit", "--format", "ocsf") for _ in range(2)]
        assert [run.code for run in runs] == [0, 0]
        first, second = (findings(run.out) for run in runs)
        assert len(first) > 100
        assert [f["finding_info"]["uid"] for f in first] == [
            f["finding_info"]["uid"] for f in second
        ]
        assert first == second

    def test_a_uid_depends_on_the_rule_and_the_token_not_the_threshold(
        self, live: LiveSandbox
    ) -> None:
        def uids(stale_days: str) -> dict[tuple[str, str], str]:
            result = live.cli(
                "audit", "--format", "ocsf", "--as-of", AS_OF, "--stale-days", stale_days, "-q"
            )
            return {
                (f["resources"][0]["uid"], f["compliance"]["control"]): f["finding_info"]["uid"]
                for f in findings(result.out)
            }

        wide, narrow = uids("100"), uids("500")
        assert set(narrow) < set(wide)
        assert all(wide[key] == uid for key, uid in narrow.items())

    def test_the_uid_is_a_digest_of_host_sub_account_token_and_rule(self) -> None:
        base = finding_uid("api.cellcast.com", "sub1", "tok1", "inactive")
        assert re.fullmatch("[0-9a-f]{32}", base)
        assert finding_uid("api.cellcast.com", "sub1", "tok1", "inactive") == base
        others = {
            finding_uid("127.0.0.1", "sub1", "tok1", "inactive"),
            finding_uid("api.cellcast.com", "sub2", "tok1", "inactive"),
            finding_uid("api.cellcast.com", "sub1", "tok2", "inactive"),
            finding_uid("api.cellcast.com", "sub1", "tok1", "stale_active"),
            finding_uid("api.cellcast.com", "sub1tok1", "", "inactive"),
        }
        assert base not in others
        assert len(others) == 5

    @pytest.mark.parametrize(
        ("url", "scope"),
        [
            ("https://api.cellcast.com", "api.cellcast.com"),
            ("https://API.Cellcast.com:443/", "api.cellcast.com"),
            ("http://127.0.0.1:41234", "127.0.0.1"),
            ("http://127.0.0.1:8080", "127.0.0.1"),
        ],
    )
    def test_the_scope_is_the_host_without_the_port(self, url: str, scope: str) -> None:
        assert scope_of(url) == scope


def record(**changes: Any) -> dict[str, Any]:
    """An audit record as ``_records.token_record`` makes one: stale and active."""
    return {
        "id": "6877b1234567890abcdef123",
        "name": "Production API",
        "status": "active",
        "sub_account_id": "6877a383d68781beb3b14110",
        "sub_account_name": "Acme",
        "created_at": "2024-01-01T00:00:00+00:00",
        "age_days": 562,
        "stale": True,
        "token": "****abcd",
        **changes,
    }


class TestEdges:
    """Findings built from records the server could send: each still valid."""

    @pytest.mark.parametrize(
        ("changes", "rules"),
        [
            ({}, ["stale_active"]),
            ({"stale": False}, []),
            ({"status": "inactive"}, ["inactive"]),
            ({"status": "inactive", "stale": False}, ["inactive"]),
            ({"status": "suspended"}, []),  # a status the SDK does not know: no rule
        ],
    )
    def test_which_rules_a_record_meets(self, changes: dict[str, Any], rules: list[str]) -> None:
        found = token_findings(record(**changes), CONTEXT)
        assert [f["compliance"]["control"] for f in found] == rules
        check_valid(found)

    def test_a_name_longer_than_ocsf_allows_is_cut_and_stays_valid(self) -> None:
        long = "n" * (MAX_TEXT + 10)
        [finding] = token_findings(record(name=long, id="i" * (MAX_TEXT + 1)), CONTEXT)
        assert finding["resources"][0]["name"] == "n" * (MAX_TEXT - 1) + "\u2026"
        assert len(finding["message"]) == MAX_TEXT
        check_valid([finding])
        # The uid is over the whole id, not the cut one.
        assert finding["finding_info"]["uid"] == finding_uid(
            CONTEXT.scope, record()["sub_account_id"], "i" * (MAX_TEXT + 1), "stale_active"
        )

    def test_a_token_without_a_sub_account_has_no_account(self) -> None:
        [finding] = token_findings(record(sub_account_id="", sub_account_name=""), CONTEXT)
        assert finding["cloud"] == {"provider": "Cellcast"}
        assert "--sub-account" not in finding["remediation"]["desc"]
        check_valid([finding])

    def test_duplicates_without_a_sub_account(self) -> None:
        report = AuditReport(as_of=AS_OF_TIME, stale_days=365)
        created = datetime(2025, 1, 1, tzinfo=timezone.utc)
        for token_id in ("b", "a"):
            report.add(record(id=token_id, sub_account_id="", sub_account_name=""), created)
        found = duplicate_findings(report, CONTEXT)
        assert [f["resources"][0]["uid"] for f in found] == ["a", "b"]
        assert found[0]["finding_info"]["uid"] == finding_uid(
            CONTEXT.scope, "", "a", "duplicate_name"
        )
        assert all(f["cloud"] == {"provider": "Cellcast"} for f in found)
        check_valid(found)

    def test_ids_in_a_remediation_are_quoted_for_a_shell(self) -> None:
        sub, token_id = "x; rm -rf ~ #", "$(reboot)"
        [stale] = token_findings(record(sub_account_id=sub), CONTEXT)
        desc = stale["remediation"]["desc"]
        command = desc[desc.index("cellcast-tokens plan") : desc.index(", review")]
        words = shlex.split(command)
        assert words[words.index("--sub-account") + 1] == sub
        report = AuditReport(as_of=AS_OF_TIME, stale_days=365)
        for one in (token_id, "other"):
            report.add(record(id=one), datetime(2025, 1, 1, tzinfo=timezone.utc))
        dup = duplicate_findings(report, CONTEXT)[0]["remediation"]["desc"]
        update = dup[dup.index("cellcast-tokens update") : dup.index(" --name")]
        assert shlex.split(update) == ["cellcast-tokens", "update", token_id]

    def test_the_schemas_refuse_what_is_not_a_finding(self) -> None:
        """The validators are not vacuous: an extra field, a wrong class or uid fails."""
        [good] = token_findings(record(), CONTEXT)
        extra = {**good, "token": "ccst_" + "x" * 40}
        other_class = {**good, "class_uid": 2001}
        bad_uid = {**good, "finding_info": {**good["finding_info"], "uid": "tok1"}}
        assert errors("ocsf", extra) == [
            ": Additional properties are not allowed ('token' was unexpected)"
        ]
        assert errors("ocsf", other_class) == ["class_uid: 2003 was expected"]
        assert errors("ocsf-finding.schema.json", bad_uid) == [
            "finding_info/uid: 'tok1' does not match '^[0-9a-f]{32}$'"
        ]
