"""``cellcast-tokens audit``: records, summary and progress, checked against the sandbox's data."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ._support import (
    AS_OF,
    AS_OF_TIME,
    LiveSandbox,
    TtyStringIO,
    expected_summary,
    flagged_fields,
    parse_time,
    report_of,
)

HEADER = "id,name,status,sub_account_id,sub_account_name,created_at,age_days,stale,token"
MASKED = re.compile(r"\*{4}.{0,4}")


def expected_record(item: dict[str, Any], stale_days: int) -> dict[str, Any]:
    """One audit record as JSON Lines should hold it, from a raw listing item."""
    created = parse_time(item["createdAt"])
    return {
        **flagged_fields(item, AS_OF_TIME),
        "stale": AS_OF_TIME - created > timedelta(days=stale_days),
        "token": "****" + item["token"][-4:],
    }


def as_csv_row(record: dict[str, Any]) -> dict[str, str]:
    """CSV cells: booleans as ``true``/``false``, as other tools read them."""
    return {
        key: ("true" if value else "false") if isinstance(value, bool) else str(value)
        for key, value in record.items()
    }


def report_lines(text: str) -> list[str]:
    """The text report's lines, trailing spaces gone (rich pads table rows)."""
    return [line.rstrip() for line in text.splitlines()]


def without_progress(err: str) -> str:
    """stderr without the progress lines (``audit: N/M tokens...``): the report beside
    records is printed only without --quiet, which also shows progress."""
    return "".join(line for line in err.splitlines(True) if not line.startswith("audit: "))


class TestRecords:
    """One record per token, masked, as CSV or JSON Lines, to a file or to stdout."""

    def test_csv_file_has_the_exact_header_and_one_row_per_token(
        self, live: LiveSandbox, tmp_path: Path
    ) -> None:
        target = tmp_path / "tokens.csv"
        result = live.cli("audit", "--output", str(target), "--as-of", AS_OF, "--quiet")
        items = live.items()
        text = target.read_bytes().decode()
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert (result.code, result.err) == (0, "")
        assert text.startswith(HEADER + "\r\n")
        assert len(rows) == live.call(live.sb.token_count) == 300
        assert rows == [as_csv_row(expected_record(item, 365)) for item in items]
        assert all(MASKED.fullmatch(row["token"]) for row in rows)
        assert {row["stale"] for row in rows} == {"true", "false"}
        assert result.out == ""  # --quiet: the records are the output, no report beside

    def test_jsonl_file(self, live: LiveSandbox, tmp_path: Path) -> None:
        target = tmp_path / "tokens.jsonl"
        argv = ["audit", "--format", "jsonl", "--output", str(target), "--stale-days", "90"]
        result = live.cli(*argv, "--as-of", AS_OF, "--quiet")
        records = [json.loads(line) for line in target.read_bytes().decode().splitlines()]
        assert (result.code, result.err) == (0, "")
        assert records == [expected_record(item, 90) for item in live.items()]
        assert {r["stale"] for r in records} == {True, False}

    def test_csv_to_stdout_sends_the_summary_to_stderr(self, live: LiveSandbox) -> None:
        result = live.cli("audit", "--output", "-", "--as-of", AS_OF)
        rows = list(csv.DictReader(io.StringIO(result.out, newline="")))
        expected = expected_summary(live.items(), as_of=AS_OF_TIME, stale_days=365)
        assert result.code == 0
        assert result.out.startswith(HEADER + "\r\n")
        assert [row["id"] for row in rows] == [item["_id"] for item in live.items()]
        assert report_lines(without_progress(result.err))[0] == (
            "Audit of 300 token(s) as of 2025-07-16 00:00 UTC (stale: older than 365 days)"
        )
        assert f"Stale, older than 365 days: {expected['stale']['count']} (the 20 oldest)" in (
            report_lines(result.err)
        )

    def test_jsonl_to_stdout_with_a_json_summary_on_stderr(self, live: LiveSandbox) -> None:
        argv = ["--json", "audit", "--format", "jsonl", "--output", "-", "--as-of", AS_OF]
        result = live.cli(*argv, "--quiet")
        items = live.items()
        assert result.code == 0
        assert [json.loads(line) for line in result.out.splitlines()] == [
            expected_record(item, 365) for item in items
        ]
        assert report_of(json.loads(result.err)) == expected_summary(
            items, as_of=AS_OF_TIME, stale_days=365
        )

    def test_status_filter(self, live: LiveSandbox, tmp_path: Path) -> None:
        target = tmp_path / "inactive.csv"
        result = live.cli("audit", "--status", "inactive", "--output", str(target), "--quiet")
        rows = list(csv.DictReader(io.StringIO(target.read_bytes().decode(), newline="")))
        expected = live.items(status="inactive")
        assert result.code == 0
        assert [row["id"] for row in rows] == [item["_id"] for item in expected]
        assert {row["status"] for row in rows} == {"inactive"}
        assert live.cli_requests()[0][2]["status"] == "inactive"

    def test_sub_account_filter(self, live: LiveSandbox, tmp_path: Path) -> None:
        sub = live.sb.sub_account_ids[2]
        target = tmp_path / "one.csv"
        result = live.cli("audit", "--sub-account", sub, "--output", str(target), "--quiet")
        rows = list(csv.DictReader(io.StringIO(target.read_bytes().decode(), newline="")))
        assert result.code == 0
        assert len(rows) == live.call(lambda: live.sb.token_count(sub))
        assert {row["sub_account_id"] for row in rows} == {sub}

    def test_concurrency_changes_nothing_in_the_records(
        self, live: LiveSandbox, tmp_path: Path
    ) -> None:
        outputs = []
        for concurrency in ("1", "8"):
            target = tmp_path / f"c{concurrency}.csv"
            argv = ["audit", "--concurrency", concurrency, "--page-size", "20", "--as-of", AS_OF]
            result = live.cli(*argv, "--output", str(target))
            assert result.code == 0
            # The report, without the walk's closing block (its costs differ, as they should).
            report = result.out.split("\nWalk: ")[0]
            assert "Walk: complete" in result.out
            outputs.append((target.read_bytes().decode(), report))
        pages = sorted(int(query["page"]) for _, _, query, _ in live.cli_requests())
        assert outputs[0] == outputs[1]
        assert outputs[0][0].count("\r\n") == 301
        # Concurrency 8 reads page 1 once more at the end, to prove the list stayed quiet.
        assert pages == sorted([*range(1, 16), *range(1, 16), 1])

    def test_a_retried_page_loses_nothing(self, live: LiveSandbox, fake_sleep: Any) -> None:
        live.script({2: "503"})
        result = live.cli("--json", "audit", "--as-of", AS_OF, "--quiet", "--concurrency", "1")
        assert result.code == 0
        assert json.loads(result.out)["total"] == 300
        assert len(fake_sleep.delays) == 1

    def test_a_failed_page_is_one_error_line(self, live: LiveSandbox, tmp_path: Path) -> None:
        live.script({2: "500"})
        target = tmp_path / "partial.csv"
        argv = ["--max-retries", "0", "audit", "--concurrency", "1", "--output", str(target)]
        result = live.cli(*argv)
        assert (result.code, result.out) == (1, "")
        assert len(result.err_lines) == 2
        assert re.fullmatch(
            r"audit: 100/300 tokens, [\d,]+/s, 0:00:\d\d elapsed", result.err_lines[0]
        )
        assert result.err_lines[1] == (
            "error: GET /api/v1/apiClient/token -> 500 Internal server error: Something went wrong"
        )

    def test_output_folder_missing(self, live: LiveSandbox, tmp_path: Path) -> None:
        target = tmp_path / "missing" / "tokens.csv"
        result = live.cli("audit", "--output", str(target), "--quiet")
        assert (result.code, result.out) == (1, "")
        assert result.err == f"error: [Errno 2] No such file or directory: '{target}'\n"


class TestSummary:
    """The summary's figures equal what we compute from the listing ourselves."""

    @pytest.mark.parametrize(
        ("stale_days", "as_of"),
        [("365", AS_OF), ("180", AS_OF), ("0", AS_OF), ("30", "2027-01-01T00:00:00+00:00")],
    )
    def test_json_summary(self, live: LiveSandbox, stale_days: str, as_of: str) -> None:
        argv = ["--json", "audit", "--stale-days", stale_days, "--as-of", as_of, "--quiet"]
        result = live.cli(*argv)
        items = live.items()
        expected = expected_summary(items, as_of=parse_time(as_of), stale_days=int(stale_days))
        assert (result.code, result.err) == (0, "")
        assert report_of(json.loads(result.out)) == expected
        assert set(expected["names_in_several_sub_accounts"]) == {
            "Development API",
            "Production API",
        }
        assert 0 < expected["inactive"]["count"] < expected["total"] == 300

    def test_text_report_names_what_needs_action(self, live: LiveSandbox) -> None:
        """The as-of time, statuses per sub-account, and the 20 oldest stale and inactive."""
        result = live.cli("audit", "--stale-days", "200", "--as-of", AS_OF, "--quiet")
        expected = expected_summary(live.items(), as_of=AS_OF_TIME, stale_days=200)
        lines = report_lines(result.out)
        assert (result.code, result.err) == (0, "")
        assert lines[0] == (
            "Audit of 300 token(s) as of 2025-07-16 00:00 UTC (stale: older than 200 days)"
        )
        assert lines[2].split() == ["SUB-ACCOUNT", "NAME", "ACTIVE", "INACTIVE", "TOTAL"]
        for n, sub in enumerate(expected["by_sub_account"]):
            counts = sub["by_status"]
            assert lines[4 + n].split() == [
                sub["id"],
                *sub["name"].split(),
                str(counts.get("active", 0)),
                str(counts.get("inactive", 0)),
                str(sub["tokens"]),
            ]
        by_status = expected["by_status"]
        assert ["all", str(by_status["active"]), str(by_status["inactive"]), "300"] in [
            line.split() for line in lines
        ]
        for kind, title in (("stale", "Stale, older than 200 days"), ("inactive", "Inactive")):
            flagged = expected[kind]
            heading = lines.index(f"{title}: {flagged['count']} (the 20 oldest)")
            assert lines[heading + 1].split() == ["ID", "NAME", "SUB-ACCOUNT", "AGE"]
            rows = [
                line
                for line in lines[heading:]
                if line[:24] in {t["id"] for t in flagged["tokens"]}
            ][:20]
            assert [row[:24] for row in rows] == [t["id"] for t in flagged["tokens"][:20]]
            for row, token in zip(rows, flagged["tokens"], strict=False):
                assert row.endswith(f" {token['age_days']} d")
            assert (
                f"and {flagged['count'] - 20} more (all of them: --json, or the records)" in lines
            )
            shown = "\n".join(lines[heading:])
            assert all(t["id"] in shown for t in flagged["tokens"][:20])
            assert flagged["tokens"][20]["id"] not in shown.split("and ", 1)[0]
        # Shared names across sub-accounts are normal: not shown without --verbose.
        assert not any("more than one sub-account" in line for line in lines)

    def test_a_name_twice_in_one_sub_account_is_a_warning(self, live: LiveSandbox) -> None:
        """Within one sub-account: warned. Across sub-accounts: only with --verbose."""
        first, twin = live.plant_duplicate("Zapier Hook")
        sub = first["subAccount"]["_id"]
        for other in [s for s in live.sb.sub_account_ids if s != sub]:
            live.create("Zapier Hook", other)
        result = live.cli("audit", "--as-of", AS_OF, "--quiet")
        verbose = live.cli("audit", "--as-of", AS_OF, "--quiet", "--verbose")
        ids = sorted([first["_id"], twin["_id"]])
        warning = (
            f"warning: 2 tokens named {first['name']!r} in sub-account {sub} "
            f"({first['subAccount']['name']}): {', '.join(ids)}"
        )
        assert (result.code, verbose.code) == (0, 0)
        assert warning in report_lines(result.out)
        assert warning in report_lines(verbose.out)
        assert "Names used in more than one sub-account" not in result.out
        shared = expected_summary(live.items(), as_of=AS_OF_TIME, stale_days=365)[
            "names_in_several_sub_accounts"
        ]
        assert "Zapier Hook" in shared
        assert f"Names used in more than one sub-account: {len(shared)}" in verbose.out
        assert f"  'Production API': {', '.join(sorted(live.sb.sub_account_ids))}" in (
            report_lines(verbose.out)
        )

    def test_every_flagged_token_is_in_the_json(self, live: LiveSandbox) -> None:
        result = live.cli("--json", "audit", "--stale-days", "30", "--as-of", AS_OF, "--quiet")
        summary = report_of(json.loads(result.out))
        assert result.code == 0
        assert summary["stale"]["count"] == len(summary["stale"]["tokens"]) > 20
        assert summary["inactive"]["count"] == len(summary["inactive"]["tokens"]) > 20

    def test_one_sub_account_shares_no_names(self, live: LiveSandbox) -> None:
        sub = live.sb.sub_account_ids[0]
        result = live.cli("--json", "audit", "--sub-account", sub, "--as-of", AS_OF, "--quiet")
        items = live.items(subAccountId=sub)
        summary = report_of(json.loads(result.out))
        assert result.code == 0
        assert summary == expected_summary(items, as_of=AS_OF_TIME, stale_days=365)
        assert summary["names_in_several_sub_accounts"] == {}

    def test_stale_days_0_without_as_of_counts_every_token(self, live: LiveSandbox) -> None:
        result = live.cli("--json", "audit", "--stale-days", "0", "--quiet")
        summary = report_of(json.loads(result.out))
        assert (result.code, summary["stale"]["count"], summary["total"]) == (0, 300, 300)

    def test_bad_as_of_is_a_usage_error(self, live: LiveSandbox) -> None:
        result = live.cli("audit", "--as-of", "yesterday")
        assert (result.code, result.out) == (2, "")
        assert result.err == (
            "usage error: cellcast-tokens audit: Invalid value for '--as-of': "
            "expected an ISO-8601 time, got 'yesterday'\n"
        )
        assert live.cli_requests() == []

    @pytest.mark.parametrize(
        "as_of",
        ["2025-07-16T00:00:00Z", " 2025-07-16T02:00:00+02:00 ", "2025-07-16", "2025-07-16T00:00z"],
    )
    def test_as_of_reads_as_the_sdk_reads_a_time(self, live: LiveSandbox, as_of: str) -> None:
        """A ``Z``, an offset or none (UTC): the same moment, reported in UTC."""
        result = live.cli("--json", "audit", "--as-of", as_of, "--quiet")
        assert result.code == 0, result.err
        assert json.loads(result.out)["as_of"] == "2025-07-16T00:00:00+00:00"


class TestProgress:
    """Progress goes to stderr: plain lines, a rich bar on a terminal, or nothing."""

    def test_plain_lines_when_stderr_is_not_a_terminal(self, live: LiveSandbox) -> None:
        """The first page and the end (a walk this short takes well under 5 s)."""
        result = live.cli("audit", "--page-size", "150", "--concurrency", "1")
        line = r"audit: {}/300 tokens, [\d,]+/s, 0:00:0\d elapsed"
        assert result.code == 0
        assert len(result.err_lines) == 2
        assert re.fullmatch(line.format(150), result.err_lines[0])
        assert re.fullmatch(line.format(300), result.err_lines[1])
        assert result.out.startswith("Audit of 300 token(s)")

    def test_a_bar_when_stderr_is_a_terminal(self, live: LiveSandbox) -> None:
        result = live.cli("audit", "--page-size", "100", "--concurrency", "1", stderr=TtyStringIO())
        plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.err)
        assert result.code == 0
        assert "audit" in plain
        assert re.search(r"300/300 tokens\s+[\d,]+/s\s+0:00:0\d\s+eta\s+0:00:00", plain)
        assert result.out.startswith("Audit of 300 token(s)")

    @pytest.mark.parametrize("stderr", [io.StringIO, TtyStringIO])
    def test_quiet_shows_none(self, live: LiveSandbox, stderr: type[io.StringIO]) -> None:
        result = live.cli("audit", "--quiet", stderr=stderr())
        assert (result.code, result.err) == (0, "")
        assert result.out.startswith("Audit of 300 token(s)")


class TestFormatWithoutOutput:
    """`--format` without `--output` writes the records to stdout."""

    def test_jsonl_to_stdout(self, live: LiveSandbox) -> None:
        """One JSON line per token on stdout, the summary on stderr."""
        result = live.cli("audit", "--format", "jsonl", "--as-of", AS_OF)
        items = live.items()
        assert result.code == 0
        assert [json.loads(line) for line in result.out.splitlines()] == [
            expected_record(item, 365) for item in items
        ]
        assert without_progress(result.err).startswith(f"Audit of {len(items)} token(s)")
