"""Hostile names, ids, sub-accounts and statuses in the machine-readable outputs: OCSF
findings keep them as JSON strings, escaped as ``--json`` escapes them, and every output
(findings, records, ``audit --json``, ``diff --json``) stays valid against its schema
(README "What the command line prints", "Schemas")."""

from __future__ import annotations

import csv
import io
import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .._schemas import assert_valid
from ..cli._support import run_cli
from ._cli_output_server import (
    AS_OF,
    HOSTILE,
    RAW_CONTROLS,
    SUB_ID,
    SUB_NAME,
    HostileApi,
    items,
)


@pytest.fixture(scope="module")
def api() -> Iterator[HostileApi]:
    server = HostileApi()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def output(api: HostileApi) -> str:
    result = run_cli(*api.args("audit", "--format", "ocsf", "--as-of", AS_OF, "--quiet"))
    assert result.code == 0, result.err
    return result.out


def findings(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.split("\n") if line]


class TestHostileFindings:
    def test_one_json_object_a_line_each_valid(self, api: HostileApi, output: str) -> None:
        found = findings(output)
        assert output.endswith("\n")
        assert output.count("\n") == len(found)
        assert assert_valid("ocsf", found) == len(found)
        assert assert_valid("ocsf-finding.schema.json", found) == len(found)
        rules = {f["compliance"]["control"] for f in found}
        assert rules == {"stale_active", "inactive", "duplicate_name"}

    def test_no_raw_control_reaches_the_stream(self, output: str) -> None:
        for char in RAW_CONTROLS:
            assert char not in output, repr(char)
        assert "\\u001b[2J" in output  # escaped, as --json writes it
        assert "\\u202e" in output

    def test_every_text_comes_back_exactly(self, api: HostileApi, output: str) -> None:
        items = {item["_id"]: item for item in api.tokens}
        found = findings(output)
        names = {f["resources"][0]["name"] for f in found}
        for finding in found:
            item = items[finding["resources"][0]["uid"]]
            assert finding["resources"][0]["name"] == item["name"]
            assert finding["cloud"]["account"] == {
                "type": "Cellcast sub-account",
                "type_id": 99,
                "uid": item["subAccount"]["_id"],
                "name": item["subAccount"]["name"],
            }
        assert {f["cloud"]["account"]["uid"] for f in found} == {SUB_ID}
        assert {f["cloud"]["account"]["name"] for f in found} == {SUB_NAME}
        assert names == set(HOSTILE.values())  # each staged stale or inactive, by turns

    def test_a_hostile_sub_account_is_one_shell_word_in_the_remediation(self, output: str) -> None:
        for finding in findings(output):
            desc = finding["remediation"]["desc"]
            if finding["compliance"]["control"] == "duplicate_name":
                command = desc[desc.index("cellcast-tokens update") : desc.index(" --name")]
                assert shlex.split(command)[2] == finding["resources"][0]["uid"]
                continue
            command = desc[desc.index("cellcast-tokens plan") : desc.index(", review")]
            words = shlex.split(command)
            assert words[words.index("--sub-account") + 1] == SUB_ID
            assert words[-2:] == ["--output", "plan.json"]


class TestHostileOutputsStayValid:
    def test_records_report_and_diff(self, api: HostileApi, tmp_path: Path) -> None:
        old, new = tmp_path / "old.jsonl", tmp_path / "new.csv"
        common = ("--as-of", AS_OF, "--quiet", "--json")
        first = run_cli(*api.args("audit", "--format", "jsonl", "--output", str(old), *common))
        api.tokens = items(names={"osc8": "renamed \x1b]52;c;QQ==\x07", "rlo": "=cmd\u202e"})
        try:
            second = run_cli(*api.args("audit", "--format", "csv", "--output", str(new), *common))
        finally:
            api.tokens = items()
        assert (first.code, second.code) == (0, 0)
        assert assert_valid("audit.schema.json", [json.loads(first.out), json.loads(second.out)])
        records = [json.loads(line) for line in old.read_text("utf-8").split("\n") if line]
        assert assert_valid("record.schema.json", records) == len(api.tokens)
        rows = list(csv.DictReader(io.StringIO(new.read_text("utf-8"), newline="")))
        assert assert_valid("record-csv.schema.json", rows) == len(api.tokens)
        diff = run_cli("--json", "diff", str(old), str(new))
        assert diff.code == 1
        report = json.loads(diff.out)
        assert assert_valid("diff.schema.json", [report]) == 1
        assert report["counts"]["renamed"] == 4  # two names, each in two sub-accounts
