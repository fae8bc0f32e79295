"""No API key and no full token value in any CLI output, except create's own new token once."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ._support import FULL_SECRET, LiveSandbox, Run, run_cli

MISSING = "0" * 24
MASKED = "****"
WARNING = "warning: this is the only time the full token is shown; store it securely now.\n"


class TestNoLeaks:
    """Every subcommand, error path and ``--debug`` run, searched for every secret."""

    def test_all_output(self, live: LiveSandbox, tmp_path: Path, closed_port: int) -> None:
        sub, other_sub = live.sb.sub_account_ids[0], live.sb.other_sub_account_ids[0]
        # Tokens created over plain HTTP: their full values are known, then always masked.
        known = [live.create(f"Known {n}", sub) for n in range(3)]
        http_secrets = [item["token"] for item in known]
        assert all(FULL_SECRET.fullmatch(secret) for secret in http_secrets)
        first, second, third = (item["_id"] for item in known)
        wrong_key = "cc_wrong_key_0123456789abcdef"

        created = {
            "text": live.cli("create", "--name", "Leak Check", "--sub-account", sub),
            "json": live.cli(
                "--json", "--debug", "create", "--name", "Leak Check 2", "--sub-account", sub
            ),
        }
        runs: list[Run] = [
            live.cli("list"),
            live.cli("--json", "list", "--search", "leak check"),
            live.cli("--debug", "list", "--status", "active", "--max-items", "50"),
            live.cli("get", first),
            live.cli("--json", "--debug", "get", second),
            live.cli("update", first, "--name", "Known Renamed"),
            live.cli("--json", "update", second, "--status", "inactive"),
            live.cli("--debug", "update", third),  # usage error
            live.cli("audit", "--quiet"),
            live.cli("--json", "--debug", "audit"),
            live.cli("audit", "--output", "-", "--quiet"),
            live.cli("audit", "--format", "jsonl", "--output", "-"),
            live.cli("audit", "--output", str(tmp_path / "a.csv")),
            live.cli("audit", "--format", "jsonl", "--output", str(tmp_path / "a.jsonl")),
            live.cli("--debug", "get", MISSING),  # 404
            live.cli("--debug", "create", "--name", "Leak Check", "--sub-account", sub),  # 400
            live.cli("--debug", "list", "--sub-account", other_sub),  # 403
            live.cli("--debug", "get", first, key=live.sb.other_api_key),  # 404, other key
            live.cli("--debug", "audit", key=wrong_key),  # 401
            live.cli("--debug", "list", key=f"{wrong_key}\r\nX: y"),  # CR/LF key
            run_cli(
                "--debug", "--api-key", live.api_key, "--base-url", "http://example.com", "list"
            ),
            run_cli(
                *("--debug", "--api-key", live.api_key, "--max-retries", "0"),
                *("--base-url", f"http://127.0.0.1:{closed_port}", "get", first),
            ),  # connection refused
            live.cli("delete", "--yes", third),
            live.cli("--json", "--debug", "delete", "--yes", first),
            live.cli("--debug", "delete", "--yes", first),  # 404
        ]
        assert [r.code for r in created.values()] == [0, 0]
        assert [r.code for r in runs] == [0] * 7 + [2] + [0] * 6 + [1] * 5 + [2, 2, 1] + [0, 0, 1]

        files = [p.read_text(encoding="utf-8") for p in sorted(tmp_path.iterdir())]
        everything = [r.out for r in runs] + [r.err for r in runs] + files
        everything += [r.err for r in created.values()]
        new_secrets = [
            created["text"].out.splitlines()[1].removeprefix("token: "),
            json.loads(created["json"].out)["token"],
        ]
        for secret in [*http_secrets, *new_secrets]:
            assert FULL_SECRET.fullmatch(secret)
            assert not any(secret in text for text in everything)
        for run, secret in zip(created.values(), new_secrets, strict=True):
            assert run.out.count(secret) == 1
            assert run.err.endswith(WARNING)
        assert created["text"].err == WARNING
        all_output = "".join(everything) + "".join(r.out for r in created.values())
        for key in (live.api_key, live.sb.other_api_key, wrong_key):
            assert key not in all_output
        assert [m.group() for m in FULL_SECRET.finditer(all_output)] == new_secrets
        assert "Known 0" in runs[0].out  # the searches above looked at real output

    def test_audit_records_hold_masked_tokens_only(self, live: LiveSandbox) -> None:
        live.create("Fresh Token")
        result = live.cli("audit", "--output", "-", "--quiet")
        tokens = [row["token"] for row in csv.DictReader(io.StringIO(result.out, newline=""))]
        assert result.code == 0
        assert len(tokens) == 301
        assert all(t.startswith(MASKED) and len(t) <= 8 for t in tokens)
        assert {len(t) for t in tokens} == {8}

    def test_new_outputs_hold_no_secret(self, live: LiveSandbox, tmp_path: Path) -> None:
        """diff, --json errors, list --json/--jsonl and the verbose report: no key, no token."""
        sub = live.sb.sub_account_ids[0]
        known = [live.create(f"Diff Known {n}", sub) for n in range(2)]
        secrets = [item["token"] for item in known]
        before, after = tmp_path / "before.csv", tmp_path / "after.jsonl"
        runs: list[Run] = [
            live.cli("audit", "--output", str(before), "--quiet"),
            live.cli("list", "--json"),
            live.cli("list", "--json", "--jsonl"),
            live.cli("audit", "--verbose", "--quiet"),
            live.cli("--json", "--debug", "get", MISSING),
            live.cli("--json", "audit", key="cc_wrong_key_0123456789abcdef"),
            live.cli("--json", "list", key="bad\r\nkey"),
        ]
        live.http("DELETE", f"/api/v1/apiClient/token/{known[0]['_id']}")
        runs.append(live.cli("audit", "--format", "jsonl", "--output", str(after), "-q"))
        runs += [
            run_cli("diff", str(before), str(after)),
            run_cli("--json", "diff", str(before), str(after)),
        ]
        assert [r.code for r in runs] == [0, 0, 0, 0, 1, 1, 2, 0, 1, 1]
        texts = [r.out + r.err for r in runs] + [before.read_text(), after.read_text()]
        for secret in [*secrets, live.api_key, "cc_wrong_key_0123456789abcdef"]:
            assert not any(secret in text for text in texts)
        assert known[0]["_id"] in runs[-1].out  # the diff did name the deleted token
