"""OCSF findings are data too: hostile names, ids, sub-accounts and statuses stay JSON
strings, escaped as ``--json`` escapes them, in valid findings (README "What the command
line prints")."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from typing import Any

import pytest

from ..cli._support import run_cli
from .._schemas import assert_valid
from ._cli_output_server import AS_OF, HOSTILE, RAW_CONTROLS, SUB_ID, SUB_NAME, HostileApi


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

    def test_a_hostile_sub_account_is_one_shell_word_in_the_remediation(
        self, output: str
    ) -> None:
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
